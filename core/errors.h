// The etcd error vocabulary, defined once. Each function returns an absl::Status whose code
// equals the gRPC code etcd uses and whose message is etcd's exact text: clients (the Go
// client's rpctypes, Kubernetes) match on the strings. absl and gRPC share code numbering,
// so gateway/ converts a Status to a grpc::Status without a lookup table.
#ifndef GEOETCD_CORE_ERRORS_H_
#define GEOETCD_CORE_ERRORS_H_

#include "absl/status/status.h"

// Returns the absl::Status `expr` evaluates to from the enclosing function unless it is OK
// (the enclosing function returns absl::Status or an absl::StatusOr).
#define GEOETCD_RETURN_IF_ERROR(expr)                                           \
  do {                                                                          \
    if (absl::Status geoetcd_status_ = (expr); !geoetcd_status_.ok()) {         \
      return geoetcd_status_;                                                   \
    }                                                                           \
  } while (false)

namespace geoetcd::errors {

// KV
absl::Status EmptyKey();
absl::Status KeyNotFound();
absl::Status ValueProvided();
absl::Status LeaseProvided();
absl::Status TooManyOps();
absl::Status DuplicateKey();
absl::Status Compacted();
absl::Status FutureRev();
absl::Status NoSpace();
absl::Status RequestTooLarge();
absl::Status TooManyRequests();
absl::Status InvalidSortOption();
// Lease
absl::Status LeaseNotFound();
absl::Status LeaseExist();
absl::Status LeaseTTLTooLarge();
// Cluster / server
absl::Status NoLeader();
absl::Status NotLeader();
absl::Status Stopped();
absl::Status Timeout();
absl::Status Corrupt();
absl::Status NotCapable();
absl::Status MemberNotFound();
absl::Status MemberNotLearner();
// Auth
absl::Status AuthNotEnabled();
absl::Status PermissionDenied();
absl::Status InvalidAuthToken();
// A feature geoetcd does not provide (yet); `what` names it.
absl::Status Unimplemented(const char* what);

}  // namespace geoetcd::errors

#endif  // GEOETCD_CORE_ERRORS_H_
