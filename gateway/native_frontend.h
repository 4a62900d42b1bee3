// Client gRPC served by geoetcd's own HTTP/2 transport (gateway/h2/server.h).
//
// The KV methods, which carry nearly all traffic, are answered natively: the request is
// parsed straight from the connection's read buffer and handed to the Node on the I/O thread
// under the executor's state mutex (exclusive for mutations, shared for Range), exactly as
// gateway/kv_service.h does on gRPC C++'s threads. Every other method (Watch, Lease,
// Maintenance, Cluster, Auth, Health) is relayed to the gRPC C++ services through an
// in-process channel, so each method has one implementation and behaves the same on both
// transports.
#ifndef GEOETCD_GATEWAY_NATIVE_FRONTEND_H_
#define GEOETCD_GATEWAY_NATIVE_FRONTEND_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gateway/h2/server.h"

namespace grpc {
class Channel;
template <class RequestType, class ResponseType>
class TemplatedGenericStub;
class ByteBuffer;
typedef TemplatedGenericStub<ByteBuffer, ByteBuffer> GenericStub;
}  // namespace grpc

namespace geoetcd {

class AsioExecutor;
class Node;
class RpcMetrics;

class NativeFrontend {
 public:
  // `upstream` is an in-process channel to the gRPC C++ server holding every service. The
  // natively served KV and Watch calls are counted in `rpc` (optional; must outlive this);
  // relayed ones are counted by the gRPC C++ server's interceptor.
  NativeFrontend(Node* node, AsioExecutor* executor, std::shared_ptr<grpc::Channel> upstream,
                 h2::ServerOptions options, RpcMetrics* rpc = nullptr);
  ~NativeFrontend();

  absl::Status Start(const std::vector<std::string>& addresses);
  const std::vector<int>& bound_ports() const { return server_.bound_ports(); }
  // GOAWAY, up to `grace_ms` for calls in flight, then every connection closes.
  void Shutdown(int64_t grace_ms);

 private:
  std::shared_ptr<grpc::Channel> upstream_;
  std::unique_ptr<grpc::GenericStub> stub_;
  h2::Server server_;
};

}  // namespace geoetcd

#endif  // GEOETCD_GATEWAY_NATIVE_FRONTEND_H_
