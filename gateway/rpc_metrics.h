// grpc_server_started_total / grpc_server_handled_total, as go-grpc-prometheus (which etcd
// uses) counts them: per call, labelled grpc_type, grpc_service, grpc_method and, once
// handled, grpc_code (Go's code names: "OK", "NotFound", ...).
//
// Both client transports feed one RpcMetrics: gRPC C++'s server through the interceptor
// below (which also sees every call the native transport relays in-process), and the native
// transport's own KV and Watch handlers through Started()/Handled().
#ifndef GEOETCD_GATEWAY_RPC_METRICS_H_
#define GEOETCD_GATEWAY_RPC_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
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
  // Distinct (method, type) pairs counted; calls of further ones are not counted, so a
  // client naming ever new methods cannot grow memory.
  static constexpr size_t kMethodsMax = 1024;

  // The counters of one method and type; stable for the RpcMetrics' lifetime.
  struct Method {
    std::string service;
    std::string method;
    const char* type;
    std::atomic<uint64_t> started{0};
    std::array<std::atomic<uint64_t>, 17> handled{};  // by gRPC code; others go to Unknown
  };

  RpcMetrics() = default;
  RpcMetrics(const RpcMetrics&) = delete;
  RpcMetrics& operator=(const RpcMetrics&) = delete;

  // `full_method` is the HTTP/2 path, "/etcdserverpb.KV/Range". Null past kMethodsMax. Any
  // thread; a lookup after the first is one hash probe under a shared lock.
  Method* Find(absl::string_view full_method, const char* type);
  static void Started(Method* m) {
    if (m != nullptr) m->started.fetch_add(1, std::memory_order_relaxed);
  }
  // `code`: a gRPC status code.
  static void Handled(Method* m, int code);

  void Started(absl::string_view full_method, const char* type) {
    Started(Find(full_method, type));
  }
  void Handled(absl::string_view full_method, const char* type, int code) {
    Handled(Find(full_method, type), code);
  }

  // Appends both families to `out`: handled series only for codes seen.
  void Render(MetricsWriter* out) const;

 private:
  mutable absl::Mutex mu_;
  // Per grpc_type (kUnary ... kBidiStream), by path; found without allocating.
  using ByPath = std::map<std::string, std::unique_ptr<Method>, std::less<>>;
  std::array<ByPath, 4> methods_ ABSL_GUARDED_BY(mu_);
  size_t method_count_ ABSL_GUARDED_BY(mu_) = 0;
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
