// SimNode: one region's process in the simulator: the production Node over simulated ports
// (SimClock, SimExecutor, MemoryStorage as its disk, SimTransport), and the ability to crash
// it and restart it from what its disk made durable.
//
// The disk (MemoryStorage), clock, executor and transport outlive incarnations, as a
// machine's disk and NIC outlive the process; the Node object does not.
#ifndef GEOETCD_SIM_SIM_NODE_H_
#define GEOETCD_SIM_SIM_NODE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "core/memory_storage.h"
#include "core/node.h"
#include "core/random.h"
#include "sim/sim_clock.h"
#include "sim/sim_network.h"
#include "sim/sim_world.h"

namespace geoetcd::sim {

struct SimNodeConfig {
  NodeOptions options;
  int64_t wall_offset_ms = 0;
  int32_t drift_ppm = 0;
};

class SimNode {
 public:
  // Registers the node with `world` and an endpoint for it with `network` in zone `region`.
  SimNode(SimWorld* world, SimNetwork* network, uint64_t region,
          const std::vector<SimTransport*>* peers, SimNodeConfig config, Random random);
  SimNode(const SimNode&) = delete;
  SimNode& operator=(const SimNode&) = delete;

  // Builds a fresh Node over the durable state and starts it. REQUIRES: !up().
  absl::Status Start();
  // Kills the process: the disk loses unsynced batches except the oldest
  // `unsynced_batches_kept` (whole batches, as a prefix), every event the process had
  // queued is dropped, and the Node object is destroyed. REQUIRES: up().
  void Crash(size_t unsynced_batches_kept);

  bool up() const { return node_ != nullptr; }
  // The running Node; nullptr while down.
  Node* node() { return node_.get(); }
  const Node* node() const { return node_.get(); }
  int32_t index() const { return index_; }
  uint64_t region() const { return region_; }
  int32_t endpoint() const { return transport_.endpoint(); }
  int64_t starts() const { return starts_; }

  MemoryStorage& storage() { return storage_; }
  SimClock& clock() { return clock_; }
  SimExecutor& executor() { return executor_; }
  SimTransport& transport() { return transport_; }
  NodeOptions& options() { return config_.options; }
  // Merkle repairs this region installed, over every incarnation so far.
  uint64_t repairs_completed() const {
    return repairs_before_ + (node_ ? node_->peer_stats().repairs_completed : 0);
  }

 private:
  SimWorld* world_;
  int32_t index_;
  uint64_t region_;
  SimNodeConfig config_;
  Random random_;
  SimClock clock_;
  SimExecutor executor_;
  MemoryStorage storage_;
  SimTransport transport_;
  std::unique_ptr<Node> node_;
  int64_t starts_ = 0;
  uint64_t repairs_before_ = 0;  // by incarnations that crashed
};

}  // namespace geoetcd::sim

#endif  // GEOETCD_SIM_SIM_NODE_H_
