// WatchStreamBuffer: the bounded outbound queue of one watch stream, implementing the
// WatchSink contract of core/watch_hub.h. The gateway keeps one per gRPC stream (under its
// own lock); tests and the simulator use it to model a client that reads slowly.
//
// Policy, while the buffer holds kWatchStreamBufferedResponsesMax responses or
// kWatchStreamBufferedBytesMax bytes:
// - a response with events is refused, unless it continues a fragmented response (the
//   previous one had fragment=true), which must stay whole;
// - a progress response is refused (dropped, as etcd drops it when its channel is full);
// - created and canceled responses are still accepted: there is at most one per request or
//   per watcher, and the gateway stops reading requests while the buffer is full.
// - After a refusal, TakeResume() turns true once, when the buffer has drained to half of
//   both bounds: the owner then calls Node::ResumeWatchStream.
// So the buffer never holds more than the bounds plus one response (or one fragment chain).
//
// Not thread-safe.
#ifndef GEOETCD_CORE_WATCH_BUFFER_H_
#define GEOETCD_CORE_WATCH_BUFFER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <utility>

#include "etcd/etcdserverpb/rpc.pb.h"

namespace geoetcd {

// Per-stream bounds of responses queued for the client (etcd buffers 128 responses in the
// watch stream's channel, unbounded in bytes).
inline constexpr size_t kWatchStreamBufferedResponsesMax = 128;
inline constexpr int64_t kWatchStreamBufferedBytesMax = 8LL << 20;

class WatchStreamBuffer {
 public:
  explicit WatchStreamBuffer(size_t responses_max = kWatchStreamBufferedResponsesMax,
                             int64_t bytes_max = kWatchStreamBufferedBytesMax)
      : responses_max_(responses_max), bytes_max_(bytes_max) {}

  // The sink: true when `resp` was queued.
  bool Offer(etcdserverpb::WatchResponse resp) {
    const bool progress = resp.events_size() == 0 && !resp.created() && !resp.canceled() &&
                          resp.compact_revision() == 0;
    const bool refusable = (resp.events_size() > 0 || progress) && !in_fragment_chain_;
    if (refusable && full()) {
      refused_ = true;
      ++refusals_;
      return false;
    }
    in_fragment_chain_ = resp.fragment();
    const int64_t size = static_cast<int64_t>(resp.ByteSizeLong());
    bytes_ += size;
    queue_.emplace_back(size, std::move(resp));
    if (bytes_ > bytes_max_seen_) bytes_max_seen_ = bytes_;
    if (queue_.size() > responses_max_seen_) responses_max_seen_ = queue_.size();
    return true;
  }

  bool empty() const { return queue_.empty(); }
  size_t size() const { return queue_.size(); }
  int64_t bytes() const { return bytes_; }
  bool full() const {
    return queue_.size() >= responses_max_ || bytes_ >= bytes_max_;
  }

  // REQUIRES: !empty().
  etcdserverpb::WatchResponse Pop() {
    etcdserverpb::WatchResponse resp = std::move(queue_.front().second);
    bytes_ -= queue_.front().first;
    queue_.pop_front();
    return resp;
  }

  // True once after a refusal, when the buffer has drained to half of its bounds.
  bool TakeResume() {
    if (!refused_ || queue_.size() > responses_max_ / 2 || bytes_ > bytes_max_ / 2) return false;
    refused_ = false;
    return true;
  }

  // High-water marks and refusals, for tests and metrics.
  int64_t bytes_max_seen() const { return bytes_max_seen_; }
  size_t responses_max_seen() const { return responses_max_seen_; }
  uint64_t refusals() const { return refusals_; }

 private:
  size_t responses_max_;
  int64_t bytes_max_;
  std::deque<std::pair<int64_t, etcdserverpb::WatchResponse>> queue_;  // (bytes, response)
  int64_t bytes_ = 0;
  bool in_fragment_chain_ = false;
  bool refused_ = false;
  int64_t bytes_max_seen_ = 0;
  size_t responses_max_seen_ = 0;
  uint64_t refusals_ = 0;
};

}  // namespace geoetcd

#endif  // GEOETCD_CORE_WATCH_BUFFER_H_
