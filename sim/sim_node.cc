#include "sim/sim_node.h"

#include <utility>

#include "core/check.h"

namespace geoetcd::sim {

SimNode::SimNode(SimWorld* world, SimNetwork* network, uint64_t region,
                 const std::vector<SimTransport*>* peers, SimNodeConfig config, Random random)
    : world_(world),
      index_(world->AddNode()),
      region_(region),
      config_(std::move(config)),
      random_(std::move(random)),
      clock_(world, config_.wall_offset_ms, config_.drift_ppm),
      executor_(world, index_, &clock_),
      storage_(&executor_),
      transport_(network, network->AddEndpoint(static_cast<int32_t>(region)), region, peers) {
  transport_.SetUp(false);
}

absl::Status SimNode::Start() {
  CHECK(!up());
  Ports ports;
  ports.clock = &clock_;
  ports.executor = &executor_;
  ports.transport = &transport_;
  ports.storage = &storage_;
  auto node = std::make_unique<Node>(config_.options, ports, random_.Fork());
  transport_.SetUp(true);
  if (auto s = node->Start(); !s.ok()) {
    transport_.SetUp(false);
    return s;
  }
  node_ = std::move(node);
  ++starts_;
  return absl::OkStatus();
}

void SimNode::Crash(size_t unsynced_batches_kept) {
  CHECK(up());
  storage_.CrashKeepingUnsynced(unsynced_batches_kept);
  world_->BumpIncarnation(index_);
  executor_.OnCrash();
  transport_.SetUp(false);
  repairs_before_ += node_->peer_stats().repairs_completed;
  node_.reset();
}

}  // namespace geoetcd::sim
