// The etcd error vocabulary must reach clients with etcd's exact gRPC code and message:
// the Go client's rpctypes and Kubernetes compare the strings.
#include "gateway/grpc_status.h"

#include <functional>
#include <string>
#include <vector>

#include "core/errors.h"
#include "gtest/gtest.h"

namespace geoetcd {
namespace {

struct Expected {
  std::function<absl::Status()> make;
  grpc::StatusCode code;
  std::string message;
};

TEST(GrpcStatusTest, EveryEtcdErrorMapsToEtcdsCodeAndText) {
  const std::vector<Expected> table = {
      {errors::EmptyKey, grpc::INVALID_ARGUMENT, "etcdserver: key is not provided"},
      {errors::KeyNotFound, grpc::INVALID_ARGUMENT, "etcdserver: key not found"},
      {errors::ValueProvided, grpc::INVALID_ARGUMENT, "etcdserver: value is provided"},
      {errors::LeaseProvided, grpc::INVALID_ARGUMENT, "etcdserver: lease is provided"},
      {errors::TooManyOps, grpc::INVALID_ARGUMENT,
       "etcdserver: too many operations in txn request"},
      {errors::DuplicateKey, grpc::INVALID_ARGUMENT,
       "etcdserver: duplicate key given in txn request"},
      {errors::InvalidSortOption, grpc::INVALID_ARGUMENT, "etcdserver: invalid sort option"},
      {errors::Compacted, grpc::OUT_OF_RANGE,
       "etcdserver: mvcc: required revision has been compacted"},
      {errors::FutureRev, grpc::OUT_OF_RANGE,
       "etcdserver: mvcc: required revision is a future revision"},
      {errors::NoSpace, grpc::RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded"},
      {errors::RequestTooLarge, grpc::INVALID_ARGUMENT, "etcdserver: request is too large"},
      {errors::TooManyRequests, grpc::RESOURCE_EXHAUSTED, "etcdserver: too many requests"},
      {errors::LeaseNotFound, grpc::NOT_FOUND, "etcdserver: requested lease not found"},
      {errors::LeaseExist, grpc::FAILED_PRECONDITION, "etcdserver: lease already exists"},
      {errors::LeaseTTLTooLarge, grpc::OUT_OF_RANGE, "etcdserver: too large lease TTL"},
      {errors::NoLeader, grpc::UNAVAILABLE, "etcdserver: no leader"},
      {errors::NotLeader, grpc::FAILED_PRECONDITION, "etcdserver: not leader"},
      {errors::Stopped, grpc::UNAVAILABLE, "etcdserver: server stopped"},
      {errors::Timeout, grpc::UNAVAILABLE, "etcdserver: request timed out"},
      {errors::Corrupt, grpc::DATA_LOSS, "etcdserver: corrupt cluster"},
      {errors::NotCapable, grpc::UNAVAILABLE, "etcdserver: not capable"},
      {errors::MemberNotFound, grpc::NOT_FOUND, "etcdserver: member not found"},
      {errors::MemberNotLearner, grpc::FAILED_PRECONDITION,
       "etcdserver: can only promote a learner member"},
      {errors::AuthNotEnabled, grpc::FAILED_PRECONDITION,
       "etcdserver: authentication is not enabled"},
      {errors::PermissionDenied, grpc::PERMISSION_DENIED, "etcdserver: permission denied"},
      {errors::InvalidAuthToken, grpc::UNAUTHENTICATED, "etcdserver: invalid auth token"},
  };
  for (const auto& e : table) {
    const grpc::Status s = ToGrpcStatus(e.make());
    EXPECT_EQ(s.error_code(), e.code) << e.message;
    EXPECT_EQ(s.error_message(), e.message);
  }
}

TEST(GrpcStatusTest, OkStaysOk) { EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok()); }

TEST(GrpcStatusTest, UnimplementedNamesTheFeature) {
  const grpc::Status s = ToGrpcStatus(errors::Unimplemented("snapshot"));
  EXPECT_EQ(s.error_code(), grpc::UNIMPLEMENTED);
  EXPECT_EQ(s.error_message(), "geoetcd: snapshot is not implemented");
}

}  // namespace
}  // namespace geoetcd
