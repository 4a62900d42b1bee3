#include "core/lessor.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace geoetcd {
namespace {

TEST(LessorTest, GrantedTtlFollowsEtcdsMinimumAndMaximum) {
  Lessor lessor;
  EXPECT_EQ(*lessor.GrantedTtl(-5), kLeaseTtlMinSDefault);
  EXPECT_EQ(*lessor.GrantedTtl(0), kLeaseTtlMinSDefault);
  EXPECT_EQ(*lessor.GrantedTtl(1), kLeaseTtlMinSDefault);
  EXPECT_EQ(*lessor.GrantedTtl(3), 3);
  EXPECT_EQ(*lessor.GrantedTtl(kLeaseTtlMaxS), kLeaseTtlMaxS);
  auto too_large = lessor.GrantedTtl(kLeaseTtlMaxS + 1);
  ASSERT_FALSE(too_large.ok());
  EXPECT_EQ(too_large.status().message(), "etcdserver: too large lease TTL");
}

// etcd answers TimeToLive with the truncated seconds left of a nanosecond clock: right after
// a grant or a renewal that is TTL - 1 (checked against etcd 3.4 by
// tests/conformance/lease_conformance_test.py, keepalive_stream).
TEST(LessorTest, RemainingSecondsTruncateAsEtcds) {
  Lessor lessor;
  lessor.Grant(7, 10, /*now_ms=*/1000);
  EXPECT_EQ(lessor.RemainingS(7, 1000), 9);    // same millisecond as the grant
  EXPECT_EQ(lessor.RemainingS(7, 1001), 9);
  EXPECT_EQ(lessor.RemainingS(7, 1999), 9);
  EXPECT_EQ(lessor.RemainingS(7, 2000), 8);    // exactly 9 s left reads as just under
  EXPECT_EQ(lessor.RemainingS(7, 10000), 0);   // 1 s left
  EXPECT_EQ(lessor.RemainingS(7, 10999), 0);
  EXPECT_EQ(lessor.RemainingS(7, 11000), 0);   // due, not yet revoked
  EXPECT_EQ(lessor.RemainingS(7, 20000), 0);
  EXPECT_EQ(lessor.RemainingS(8, 1000), -1);   // unknown
  EXPECT_EQ(lessor.GrantedTtlOf(7), 10);
}

TEST(LessorTest, RenewRestartsTheTtlUnlessExpired) {
  Lessor lessor;
  lessor.Grant(1, 5, 0);
  EXPECT_EQ(lessor.Renew(1, 4000), 5);
  EXPECT_EQ(lessor.RemainingS(1, 4000), 4);
  EXPECT_TRUE(lessor.Expired(8999, 10).empty());
  EXPECT_EQ(lessor.Expired(9000, 10), std::vector<int64_t>{1});
  EXPECT_EQ(lessor.Renew(1, 9000), 0);          // already due: etcd answers TTL 0
  EXPECT_EQ(lessor.Renew(2, 0), 0);             // unknown
}

TEST(LessorTest, ExpiredListsSoonestFirstUpToTheCap) {
  Lessor lessor;
  lessor.Grant(30, 3, 0);
  lessor.Grant(10, 5, 0);
  lessor.Grant(20, 2, 0);
  EXPECT_EQ(lessor.Expired(10000, 10), (std::vector<int64_t>{20, 30, 10}));
  EXPECT_EQ(lessor.Expired(10000, 2), (std::vector<int64_t>{20, 30}));
  EXPECT_EQ(lessor.Expired(2500, 10), std::vector<int64_t>{20});
}

TEST(LessorTest, KeysAttachDetachAndGoWithTheLease) {
  Lessor lessor;
  lessor.Grant(4, 60, 0);
  lessor.Attach(4, "b");
  lessor.Attach(4, "a");
  lessor.Attach(4, "c");
  EXPECT_EQ(lessor.KeysOf(4), (std::vector<std::string>{"a", "b", "c"}));
  lessor.Detach(4, "b");
  EXPECT_EQ(lessor.KeysOf(4), (std::vector<std::string>{"a", "c"}));
  lessor.Remove(4);
  EXPECT_FALSE(lessor.Exists(4));
  EXPECT_TRUE(lessor.KeysOf(4).empty());
  EXPECT_EQ(lessor.size(), 0u);
}

}  // namespace
}  // namespace geoetcd
