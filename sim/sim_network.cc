#include "sim/sim_network.h"

#include <algorithm>
#include <utility>

#include "core/check.h"

namespace geoetcd::sim {

SimNetwork::SimNetwork(SimWorld* world, Random random)
    : world_(world), random_(std::move(random)) {}

int32_t SimNetwork::AddEndpoint(int32_t zone) {
  CHECK(zone >= 0);
  const size_t zones = std::max(latency_.size(), static_cast<size_t>(zone) + 1);
  latency_.resize(zones);
  for (auto& row : latency_) row.resize(zones, kLatencyUsDefault);
  zone_of_.push_back(zone);
  clogged_until_us_.push_back(0);
  return static_cast<int32_t>(zone_of_.size()) - 1;
}

void SimNetwork::SetLatencyUs(int32_t zone_a, int32_t zone_b, int64_t one_way_us) {
  CHECK(one_way_us >= 0);
  const size_t zones = static_cast<size_t>(std::max(zone_a, zone_b)) + 1;
  if (latency_.size() < zones) latency_.resize(zones);
  for (auto& row : latency_) row.resize(latency_.size(), kLatencyUsDefault);
  latency_[zone_a][zone_b] = latency_[zone_b][zone_a] = one_way_us;
}

int64_t SimNetwork::LatencyUs(int32_t zone_a, int32_t zone_b) const {
  return latency_.at(zone_a).at(zone_b);
}

int64_t SimNetwork::DelayUs(int32_t from, int32_t to) {
  int64_t delay = latency_[zone_of_[from]][zone_of_[to]];
  if (faults_.jitter_us_max > 0) delay += random_.Range(0, faults_.jitter_us_max);
  if (faults_.reorder > 0 && random_.Chance(faults_.reorder)) {
    ++stats_.reordered;
    delay += random_.Range(0, std::max<int64_t>(faults_.reorder_delay_us_max, 1));
  }
  const int64_t clogged_until =
      std::max(clogged_until_us_[from], clogged_until_us_[to]) - world_->now_us();
  if (clogged_until > delay) {
    ++stats_.clogged;
    delay = clogged_until;
  }
  return delay;
}

void SimNetwork::Send(int32_t from, int32_t to, bool duplicable, std::function<void()> deliver) {
  CHECK(from >= 0 && static_cast<size_t>(from) < zone_of_.size());
  CHECK(to >= 0 && static_cast<size_t>(to) < zone_of_.size());
  ++stats_.sent;
  if (!Connected(from, to)) {
    ++stats_.partitioned;
    return;
  }
  if (faults_.loss > 0 && random_.Chance(faults_.loss)) {
    ++stats_.lost;
    return;
  }
  if (duplicable && faults_.duplicate > 0 && random_.Chance(faults_.duplicate)) {
    ++stats_.duplicated;
    Deliver(from, to, DelayUs(from, to), deliver);
  }
  Deliver(from, to, DelayUs(from, to), std::move(deliver));
}

void SimNetwork::SendOrdered(int32_t from, int32_t to, uint64_t flow,
                             std::function<void()> deliver) {
  ++stats_.sent;
  if (!Connected(from, to)) {
    ++stats_.partitioned;
    return;
  }
  if (faults_.loss > 0 && random_.Chance(faults_.loss)) {
    ++stats_.lost;
    return;
  }
  const int64_t arrival_us = world_->now_us() + DelayUs(from, to);
  int64_t& last = flow_last_arrival_us_[flow];
  last = std::max(last, arrival_us);
  // Equal arrival times keep send order: the world breaks ties by scheduling sequence.
  Deliver(from, to, last - world_->now_us(), std::move(deliver));
}

void SimNetwork::Deliver(int32_t from, int32_t to, int64_t delay_us,
                         std::function<void()> deliver) {
  if (in_flight_ >= kInFlightMessagesMax) {
    ++stats_.overflowed;
    return;
  }
  ++in_flight_;
  const bool scheduled = world_->Schedule(
      delay_us, EventType::kNetDeliver, kNoNode, [this, from, to, deliver = std::move(deliver)] {
        --in_flight_;
        if (!Connected(from, to)) {
          ++stats_.partitioned;  // the link was cut while the message was in flight
          return;
        }
        ++stats_.delivered;
        deliver();
      });
  if (!scheduled) --in_flight_;
}

void SimNetwork::Partition(int32_t a, int32_t b) { partitions_.insert(Link(a, b)); }

void SimNetwork::Heal(int32_t a, int32_t b) { partitions_.erase(Link(a, b)); }

void SimNetwork::PartitionOneWay(int32_t from, int32_t to) { one_way_.insert({from, to}); }

void SimNetwork::HealOneWay(int32_t from, int32_t to) { one_way_.erase({from, to}); }

void SimNetwork::HealAll() {
  partitions_.clear();
  one_way_.clear();
}

bool SimNetwork::Connected(int32_t from, int32_t to) const {
  return (partitions_.empty() || partitions_.count(Link(from, to)) == 0) &&
         (one_way_.empty() || one_way_.count({from, to}) == 0);
}

void SimNetwork::Clog(int32_t endpoint, int64_t until_us) {
  int64_t& until = clogged_until_us_.at(endpoint);
  until = std::max(until, until_us);
}

void SimNetwork::UnclogAll() { std::fill(clogged_until_us_.begin(), clogged_until_us_.end(), 0); }

SimTransport::SimTransport(SimNetwork* network, int32_t endpoint, uint64_t region,
                           const std::vector<SimTransport*>* peers)
    : network_(network), endpoint_(endpoint), region_(region), peers_(peers) {}

void SimTransport::Send(uint64_t to_region, std::string payload) {
  // Region ids are member ids: region index + 1 (0 is no region).
  if (to_region == 0 || to_region > peers_->size()) return;  // unknown: as if unroutable
  SimTransport* peer = (*peers_)[to_region - 1];
  network_->Send(
      endpoint_, peer->endpoint_, /*duplicable=*/true,
      [peer, from = region_ + 1, payload = std::move(payload)] { peer->Arrive(from, payload); });
}

void SimTransport::SetUp(bool up) {
  up_ = up;
  if (!up) receiver_ = nullptr;
}

void SimTransport::Arrive(uint64_t from_region, std::string payload) {
  if (!up_ || !receiver_) return;
  ++delivered_;
  receiver_(from_region, std::move(payload));
}

}  // namespace geoetcd::sim
