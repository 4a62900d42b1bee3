// etcdserverpb.Watch over gRPC's callback API: one bidi reactor per stream. The reactor
// holds no watch logic: it forwards each request to the Node on its executor and writes the
// Node's responses back, one write in flight at a time, from a bounded outbound queue
// (core/watch_buffer.h). When the queue is full the Node drops the stream's watchers to
// catch-up-from-history and the reactor stops reading requests until the queue drains.
#ifndef GEOETCD_GATEWAY_WATCH_SERVICE_H_
#define GEOETCD_GATEWAY_WATCH_SERVICE_H_

#include "core/node.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"

namespace geoetcd {

class WatchService final : public etcdserverpb::Watch::CallbackService {
 public:
  // `node` and `executor` must outlive every call.
  WatchService(Node* node, Executor* executor) : node_(node), executor_(executor) {}

  grpc::ServerBidiReactor<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>* Watch(
      grpc::CallbackServerContext* ctx) override;

 private:
  Node* node_;
  Executor* executor_;
};

}  // namespace geoetcd

#endif  // GEOETCD_GATEWAY_WATCH_SERVICE_H_
