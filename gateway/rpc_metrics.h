// grpc_server_started_total / grpc_server_handled_total, as go-grpc-prometheus (which etcd
// uses) counts them: per call, labelled grpc_type, grpc_service, grpc_method and, once
// handled, grpc_code (Go's code names: "OK", "NotFound", ...).
//
// Both client transports feed one RpcMetrics: gRPC C++'s server through the interceptor
// below (which also sees every call the native transport relays in-process), and the native
// transport's own KV and Watch handlers through Started()/Handled().
#ifndef GEOETCD_GATEWAY_RPC_METRICS_H_
#define GEOETCD_GATEWAY_RPC_METRICS_H_

#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "gateway/metrics.h"

namespace grpc {
namespace experimental {
class ServerInterceptorFactoryInterface;
}  // namespace experimental
}  // namespace grpc

namespace geoetcd {

class RpcMetrics {
 public:
  // grpc_type values.
  static constexpr const char* kUnary = "unary";
  static constexpr const char* kClientStream = "client_stream";
  static constexpr const char* kServerStream = "server_stream";
  static constexpr const char* kBidiStream = "bidi_stream";

  // `full_method` is the HTTP/2 path, "/etcdserverpb.KV/Range"; `code` a gRPC status code.
  // Any thread.
  void Started(absl::string_view full_method, const char* type);
  void Handled(absl::string_view full_method, const char* type, int code);

  // Appends both families to `out`.
  void Render(MetricsWriter* out) const;

 private:
  CounterMap started_;
  CounterMap handled_;
};

// Go's name of a gRPC status code ("OK", "Canceled", ..., "Unauthenticated"); "Code(n)" for
// an unknown one, as Go prints it.
std::string GrpcCodeName(int code);

// A gRPC C++ server interceptor counting every call into `metrics`, which must outlive the
// server.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeRpcMetricsInterceptorFactory(RpcMetrics* metrics);

}  // namespace geoetcd

#endif  // GEOETCD_GATEWAY_RPC_METRICS_H_
