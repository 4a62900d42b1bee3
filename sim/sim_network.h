// SimNetwork: message delivery between simulated endpoints (regions and clients) with a
// latency matrix, jitter, loss, duplication, reordering, partitions and clogging.
// SimTransport: the Transport port of one node over it.
//
// Partitions cut a link in both directions, one-way partitions one direction only (a route
// that fails asymmetrically); both drop messages at send and at arrival (a cut connection
// loses what was in flight). Clogging (FoundationDB's RandomClogging)
// holds every message to or from an endpoint until the clog ends: nothing is lost, all of
// it is late, and messages released together keep their send order.
//
// Not thread-safe: lives on the simulator's thread. All randomness comes from the Random
// passed in, drawn in Send() order, so delivery is deterministic per seed.
#ifndef GEOETCD_SIM_SIM_NETWORK_H_
#define GEOETCD_SIM_SIM_NETWORK_H_

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/ports.h"
#include "core/random.h"
#include "sim/sim_world.h"

namespace geoetcd::sim {

struct NetworkFaults {
  double loss = 0;                   // probability that a message is lost
  double duplicate = 0;              // probability that a duplicable message arrives twice
  double reorder = 0;                // probability that a message is held back to be overtaken
  int64_t jitter_us_max = 0;         // extra delay drawn uniformly from [0, jitter_us_max]
  int64_t reorder_delay_us_max = 0;  // extra delay of a held-back message
};

class SimNetwork {
 public:
  // Messages in flight beyond this are dropped (and counted): a bounded network buffer.
  static constexpr size_t kInFlightMessagesMax = size_t{1} << 16;
  static constexpr int64_t kLatencyUsDefault = 500;

  struct Stats {
    uint64_t sent = 0;
    uint64_t delivered = 0;
    uint64_t lost = 0;
    uint64_t duplicated = 0;
    uint64_t partitioned = 0;
    uint64_t clogged = 0;
    uint64_t reordered = 0;
    uint64_t overflowed = 0;
  };

  SimNetwork(SimWorld* world, Random random);
  SimNetwork(const SimNetwork&) = delete;
  SimNetwork& operator=(const SimNetwork&) = delete;

  // Adds an endpoint in `zone` (its region: the row and column of the latency matrix).
  int32_t AddEndpoint(int32_t zone);
  // Sets the one-way latency between two zones, in both directions.
  void SetLatencyUs(int32_t zone_a, int32_t zone_b, int64_t one_way_us);
  int64_t LatencyUs(int32_t zone_a, int32_t zone_b) const;
  void SetFaults(const NetworkFaults& faults) { faults_ = faults; }
  const NetworkFaults& faults() const { return faults_; }

  // Sends one message; `deliver` runs (in its own event) when it arrives. Client RPCs ride
  // one connection and are never duplicated; peer messages may be (`duplicable`).
  void Send(int32_t from, int32_t to, bool duplicable, std::function<void()> deliver);
  // Sends on an ordered flow (one direction of a stream connection): never duplicated, and
  // never overtaking an earlier message of the same flow. Loss and partitions still apply;
  // the receiver detects a lost message by its sequence number, as a broken connection.
  void SendOrdered(int32_t from, int32_t to, uint64_t flow, std::function<void()> deliver);
  // Forgets a flow's ordering state (its connection closed).
  void EndFlow(uint64_t flow) { flow_last_arrival_us_.erase(flow); }

  void Partition(int32_t a, int32_t b);
  void Heal(int32_t a, int32_t b);
  // Cuts only messages from `from` to `to`; the other direction keeps flowing.
  void PartitionOneWay(int32_t from, int32_t to);
  void HealOneWay(int32_t from, int32_t to);
  // Heals every partition, symmetric and one-way.
  void HealAll();
  // Whether a message from `from` reaches `to` now.
  bool Connected(int32_t from, int32_t to) const;
  // Holds messages to or from `endpoint` until world time until_us.
  void Clog(int32_t endpoint, int64_t until_us);
  void UnclogAll();

  const Stats& stats() const { return stats_; }
  size_t in_flight() const { return in_flight_; }

 private:
  static std::pair<int32_t, int32_t> Link(int32_t a, int32_t b) {
    return a < b ? std::make_pair(a, b) : std::make_pair(b, a);
  }
  int64_t DelayUs(int32_t from, int32_t to);
  void Deliver(int32_t from, int32_t to, int64_t delay_us, std::function<void()> deliver);

  SimWorld* world_;
  Random random_;
  NetworkFaults faults_;
  std::vector<int32_t> zone_of_;               // per endpoint
  std::vector<std::vector<int64_t>> latency_;  // [zone][zone], one way
  std::vector<int64_t> clogged_until_us_;      // per endpoint
  std::set<std::pair<int32_t, int32_t>> partitions_;  // Link()-normalized pairs
  std::set<std::pair<int32_t, int32_t>> one_way_;     // (from, to)
  std::map<uint64_t, int64_t> flow_last_arrival_us_;  // per open ordered flow
  size_t in_flight_ = 0;
  Stats stats_;
};

// The Transport port of one region's node. Messages to a node that is down are dropped on
// arrival: a dead process has no socket. Transport addresses are member ids, region
// index + 1, as the simulation numbers its Nodes.
class SimTransport : public Transport {
 public:
  // `peers` maps a region id to its transport; it must outlive this object.
  SimTransport(SimNetwork* network, int32_t endpoint, uint64_t region,
               const std::vector<SimTransport*>* peers);

  void Send(uint64_t to_region, std::string payload) override;
  void SetReceiver(Receiver receiver) override { receiver_ = std::move(receiver); }

  // Down: the receiver is forgotten (the next incarnation installs its own).
  void SetUp(bool up);
  int32_t endpoint() const { return endpoint_; }
  uint64_t delivered() const { return delivered_; }

 private:
  void Arrive(uint64_t from_region, std::string payload);

  SimNetwork* network_;
  int32_t endpoint_;
  uint64_t region_;
  const std::vector<SimTransport*>* peers_;
  Receiver receiver_;
  bool up_ = true;
  uint64_t delivered_ = 0;
};

}  // namespace geoetcd::sim

#endif  // GEOETCD_SIM_SIM_NETWORK_H_
