// The one place where the Node's absl::Status becomes a gRPC status. absl and gRPC share
// code numbers; the message is etcd's exact text (core/errors.h).
#ifndef GEOETCD_GATEWAY_GRPC_STATUS_H_
#define GEOETCD_GATEWAY_GRPC_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace geoetcd {

inline grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

}  // namespace geoetcd

#endif  // GEOETCD_GATEWAY_GRPC_STATUS_H_
