#include "core/errors.h"

#include <string>

namespace geoetcd::errors {

absl::Status EmptyKey() { return absl::InvalidArgumentError("etcdserver: key is not provided"); }
absl::Status KeyNotFound() { return absl::InvalidArgumentError("etcdserver: key not found"); }
absl::Status ValueProvided() { return absl::InvalidArgumentError("etcdserver: value is provided"); }
absl::Status LeaseProvided() { return absl::InvalidArgumentError("etcdserver: lease is provided"); }
absl::Status TooManyOps() {
  return absl::InvalidArgumentError("etcdserver: too many operations in txn request");
}
absl::Status DuplicateKey() {
  return absl::InvalidArgumentError("etcdserver: duplicate key given in txn request");
}
absl::Status Compacted() {
  return absl::OutOfRangeError("etcdserver: mvcc: required revision has been compacted");
}
absl::Status FutureRev() {
  return absl::OutOfRangeError("etcdserver: mvcc: required revision is a future revision");
}
absl::Status NoSpace() {
  return absl::ResourceExhaustedError("etcdserver: mvcc: database space exceeded");
}
absl::Status RequestTooLarge() {
  return absl::InvalidArgumentError("etcdserver: request is too large");
}
absl::Status TooManyRequests() {
  return absl::ResourceExhaustedError("etcdserver: too many requests");
}
absl::Status InvalidSortOption() {
  return absl::InvalidArgumentError("etcdserver: invalid sort option");
}
absl::Status LeaseNotFound() { return absl::NotFoundError("etcdserver: requested lease not found"); }
absl::Status LeaseExist() {
  return absl::FailedPreconditionError("etcdserver: lease already exists");
}
absl::Status LeaseTTLTooLarge() { return absl::OutOfRangeError("etcdserver: too large lease TTL"); }
absl::Status NoLeader() { return absl::UnavailableError("etcdserver: no leader"); }
absl::Status NotLeader() { return absl::FailedPreconditionError("etcdserver: not leader"); }
absl::Status Stopped() { return absl::UnavailableError("etcdserver: server stopped"); }
absl::Status Timeout() { return absl::UnavailableError("etcdserver: request timed out"); }
absl::Status Corrupt() { return absl::DataLossError("etcdserver: corrupt cluster"); }
absl::Status NotCapable() { return absl::UnavailableError("etcdserver: not capable"); }
absl::Status MemberNotFound() { return absl::NotFoundError("etcdserver: member not found"); }
absl::Status MemberNotLearner() {
  return absl::FailedPreconditionError("etcdserver: can only promote a learner member");
}
absl::Status AuthNotEnabled() {
  return absl::FailedPreconditionError("etcdserver: authentication is not enabled");
}
absl::Status PermissionDenied() {
  return absl::PermissionDeniedError("etcdserver: permission denied");
}
absl::Status InvalidAuthToken() {
  return absl::UnauthenticatedError("etcdserver: invalid auth token");
}
absl::Status Unimplemented(const char* what) {
  return absl::UnimplementedError(std::string("geoetcd: ") + what + " is not implemented");
}

}  // namespace geoetcd::errors
