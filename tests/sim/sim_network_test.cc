// SimNetwork's latency matrix and faults, and SimTransport over it.
#include "sim/sim_network.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace geoetcd::sim {
namespace {

class SimNetworkTest : public ::testing::Test {
 protected:
  SimNetworkTest() : world_(1), net_(&world_, Random(2)) {
    a_ = net_.AddEndpoint(0);
    b_ = net_.AddEndpoint(1);
    c_ = net_.AddEndpoint(1);
    net_.SetLatencyUs(0, 1, 40'000);
    net_.SetLatencyUs(1, 1, 300);
  }

  // Sends `n` numbered messages a -> b, one per `gap_us`; returns arrival order and times.
  void SendMany(int n, int64_t gap_us, bool duplicable, bool ordered = false) {
    for (int i = 0; i < n; ++i) {
      world_.Schedule(i * gap_us, EventType::kControl, kNoNode, [this, i, duplicable, ordered] {
        auto deliver = [this, i] {
          arrived_.push_back(i);
          times_.push_back(world_.now_us());
        };
        if (ordered) {
          net_.SendOrdered(a_, b_, /*flow=*/7, deliver);
        } else {
          net_.Send(a_, b_, duplicable, deliver);
        }
      });
    }
    while (world_.RunOne()) {
    }
  }

  SimWorld world_;
  SimNetwork net_;
  int32_t a_, b_, c_;
  std::vector<int> arrived_;
  std::vector<int64_t> times_;
};

TEST_F(SimNetworkTest, LatencyComesFromTheMatrixBothWays) {
  int64_t at = -1;
  net_.Send(b_, a_, false, [&] { at = world_.now_us(); });
  net_.Send(b_, c_, false, [] {});
  while (world_.RunOne()) {
  }
  EXPECT_EQ(at, 40'000);
  EXPECT_EQ(net_.LatencyUs(1, 0), 40'000);
  EXPECT_EQ(net_.LatencyUs(1, 1), 300);
  EXPECT_EQ(net_.LatencyUs(0, 0), SimNetwork::kLatencyUsDefault);
  EXPECT_EQ(net_.stats().delivered, 2u);
}

TEST_F(SimNetworkTest, JitterStaysWithinItsBound) {
  NetworkFaults f;
  f.jitter_us_max = 5'000;
  net_.SetFaults(f);
  SendMany(200, 0, false);
  ASSERT_EQ(times_.size(), 200u);
  bool varied = false;
  for (int64_t t : times_) {
    EXPECT_GE(t, 40'000);
    EXPECT_LE(t, 45'000);
    varied = varied || t != times_[0];
  }
  EXPECT_TRUE(varied);
}

TEST_F(SimNetworkTest, LossDropsEverythingAtProbabilityOne) {
  NetworkFaults f;
  f.loss = 1.0;
  net_.SetFaults(f);
  SendMany(20, 10, true);
  EXPECT_TRUE(arrived_.empty());
  EXPECT_EQ(net_.stats().lost, 20u);
}

TEST_F(SimNetworkTest, LossIsPartialAtALowerProbability) {
  NetworkFaults f;
  f.loss = 0.3;
  net_.SetFaults(f);
  SendMany(1000, 10, true);
  EXPECT_GT(arrived_.size(), 500u);
  EXPECT_LT(arrived_.size(), 900u);
  EXPECT_EQ(net_.stats().lost + arrived_.size(), 1000u);
}

TEST_F(SimNetworkTest, DuplicatesOnlyDuplicableMessages) {
  NetworkFaults f;
  f.duplicate = 1.0;
  net_.SetFaults(f);
  SendMany(10, 10, /*duplicable=*/true);
  EXPECT_EQ(arrived_.size(), 20u);
  arrived_.clear();
  SendMany(10, 10, /*duplicable=*/false);
  EXPECT_EQ(arrived_.size(), 10u);  // a client RPC's connection never duplicates
}

TEST_F(SimNetworkTest, ReorderingLetsLaterMessagesOvertake) {
  NetworkFaults f;
  f.reorder = 0.5;
  f.reorder_delay_us_max = 100'000;
  net_.SetFaults(f);
  SendMany(100, 100, false);
  ASSERT_EQ(arrived_.size(), 100u);
  bool overtaken = false;
  for (size_t i = 1; i < arrived_.size(); ++i)
    overtaken = overtaken || arrived_[i] < arrived_[i - 1];
  EXPECT_TRUE(overtaken);
  EXPECT_GT(net_.stats().reordered, 0u);
}

TEST_F(SimNetworkTest, OrderedFlowsNeverReorderOrDuplicate) {
  NetworkFaults f;
  f.reorder = 0.5;
  f.reorder_delay_us_max = 100'000;
  f.jitter_us_max = 20'000;
  f.duplicate = 1.0;
  net_.SetFaults(f);
  SendMany(100, 100, true, /*ordered=*/true);
  ASSERT_EQ(arrived_.size(), 100u);
  for (size_t i = 0; i < arrived_.size(); ++i) EXPECT_EQ(arrived_[i], static_cast<int>(i));
}

TEST_F(SimNetworkTest, PartitionDropsAtSendAndInFlightUntilHealed) {
  int delivered = 0;
  net_.Send(a_, b_, false, [&] { ++delivered; });  // in flight when the link is cut
  net_.Partition(b_, a_);
  EXPECT_FALSE(net_.Connected(a_, b_));
  EXPECT_TRUE(net_.Connected(b_, c_));
  net_.Send(a_, b_, false, [&] { ++delivered; });       // cut at send
  net_.Send(b_, c_, false, [&] { delivered += 100; });  // other links unaffected
  while (world_.RunOne()) {
  }
  EXPECT_EQ(delivered, 100);
  EXPECT_EQ(net_.stats().partitioned, 2u);
  net_.Heal(a_, b_);
  net_.Send(a_, b_, false, [&] { ++delivered; });
  while (world_.RunOne()) {
  }
  EXPECT_EQ(delivered, 101);
  net_.Partition(a_, b_);
  net_.Partition(a_, c_);
  net_.HealAll();
  EXPECT_TRUE(net_.Connected(a_, b_) && net_.Connected(a_, c_));
}

TEST_F(SimNetworkTest, OneWayPartitionCutsOnlyItsDirection) {
  int delivered = 0;
  net_.Send(a_, b_, false, [&] { ++delivered; });  // in flight when the direction is cut
  net_.PartitionOneWay(a_, b_);
  EXPECT_FALSE(net_.Connected(a_, b_));
  EXPECT_TRUE(net_.Connected(b_, a_));
  net_.Send(a_, b_, false, [&] { ++delivered; });       // cut at send
  net_.Send(b_, a_, false, [&] { delivered += 10; });   // the reverse flows
  net_.SendOrdered(b_, a_, 7, [&] { delivered += 100; });
  while (world_.RunOne()) {
  }
  EXPECT_EQ(delivered, 110);
  EXPECT_EQ(net_.stats().partitioned, 2u);
  net_.HealOneWay(a_, b_);
  EXPECT_TRUE(net_.Connected(a_, b_));
  net_.PartitionOneWay(a_, b_);
  net_.PartitionOneWay(c_, a_);
  net_.HealAll();
  EXPECT_TRUE(net_.Connected(a_, b_) && net_.Connected(c_, a_));
}

TEST_F(SimNetworkTest, ClogHoldsMessagesUntilItEndsThenReleasesThemInOrder) {
  net_.Clog(b_, 500'000);
  SendMany(5, 1'000, false);
  ASSERT_EQ(arrived_.size(), 5u);
  for (size_t i = 0; i < times_.size(); ++i) {
    EXPECT_EQ(times_[i], 500'000);  // nothing lost, all of it late
    EXPECT_EQ(arrived_[i], static_cast<int>(i));
  }
  EXPECT_EQ(net_.stats().clogged, 5u);
  arrived_.clear();
  times_.clear();
  net_.UnclogAll();
  SendMany(1, 0, false);
  EXPECT_EQ(times_[0], 500'000 + 40'000);  // plain latency again
}

TEST_F(SimNetworkTest, InFlightMessagesAreBounded) {
  for (size_t i = 0; i < SimNetwork::kInFlightMessagesMax + 10; ++i)
    net_.Send(a_, b_, false, [] {});
  EXPECT_EQ(net_.in_flight(), SimNetwork::kInFlightMessagesMax);
  EXPECT_EQ(net_.stats().overflowed, 10u);
}

TEST_F(SimNetworkTest, SameSeedSameDeliverySchedule) {
  auto schedule = [](uint64_t seed) {
    SimWorld world(seed);
    SimNetwork net(&world, Random(seed));
    const int32_t x = net.AddEndpoint(0);
    const int32_t y = net.AddEndpoint(0);
    NetworkFaults f;
    f.loss = 0.2;
    f.jitter_us_max = 1000;
    f.reorder = 0.2;
    f.reorder_delay_us_max = 5000;
    net.SetFaults(f);
    std::vector<std::pair<int, int64_t>> out;
    for (int i = 0; i < 100; ++i) {
      net.Send(x, y, true, [&out, &world, i] { out.emplace_back(i, world.now_us()); });
    }
    while (world.RunOne()) {
    }
    return out;
  };
  EXPECT_EQ(schedule(5), schedule(5));
  EXPECT_NE(schedule(5), schedule(6));
}

TEST(SimTransportTest, DeliversToTheReceiverOnlyWhileTheNodeIsUp) {
  SimWorld world(1);
  SimNetwork net(&world, Random(1));
  std::vector<SimTransport*> peers;
  SimTransport t0(&net, net.AddEndpoint(0), 0, &peers);
  SimTransport t1(&net, net.AddEndpoint(1), 1, &peers);
  peers = {&t0, &t1};
  std::vector<std::string> got;
  t1.SetReceiver([&](uint64_t from, std::string payload) {
    got.push_back(std::to_string(from) + ":" + payload);
  });
  // Addresses are member ids: region index + 1.
  t0.Send(2, "hello");
  t0.Send(7, "nowhere");     // no such region: dropped
  t0.Send(0, "nobody");      // 0 is no region: dropped
  EXPECT_TRUE(got.empty());  // never inline
  while (world.RunOne()) {
  }
  EXPECT_EQ(got, (std::vector<std::string>{"1:hello"}));
  t1.SetUp(false);  // crashed: its receiver is gone
  t0.Send(2, "lost");
  while (world.RunOne()) {
  }
  EXPECT_EQ(got.size(), 1u);
  EXPECT_EQ(t1.delivered(), 1u);
}

}  // namespace
}  // namespace geoetcd::sim
