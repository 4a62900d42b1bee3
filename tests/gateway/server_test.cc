// The identities a region derives from etcd's flags, and the data dir's memory of them.
#include "gateway/server.h"

#include <fstream>
#include <string>

#include "gateway/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace geoetcd {
namespace {

using ::testing::HasSubstr;

ServerConfig Member(const std::string& name, const std::string& cluster,
                    const std::string& write_region = "") {
  ServerConfig c;
  c.name = name;
  c.initial_cluster = cluster;
  c.initial_cluster_token = "tok";
  c.write_region = write_region;
  return c;
}

constexpr char kCluster[] = "a=http://h1:2380,b=http://h2:2380,c=http://h3:2380";

TEST(ClusterIdTest, EveryMemberDerivesTheSameIdInAnyListOrder) {
  const uint64_t id = ComputeClusterId(Member("a", kCluster, "a"));
  EXPECT_EQ(ComputeClusterId(Member("b", kCluster, "a")), id);
  EXPECT_EQ(ComputeClusterId(Member("c", "c=http://h3:2380,a=http://h1:2380,b=http://h2:2380",
                                    "a")),
            id);
  // The default write region is the first member listed: "a" here.
  EXPECT_EQ(ComputeClusterId(Member("c", kCluster)), id);
}

// Regions that disagree on the write region get different cluster ids, so each drops the
// other's peer messages instead of both sequencing writes.
TEST(ClusterIdTest, TheWriteRegionIsPartOfTheClusterId) {
  const uint64_t a = ComputeClusterId(Member("a", kCluster, "a"));
  EXPECT_NE(ComputeClusterId(Member("a", kCluster, "b")), a);
  // Listing another member first changes the default write region, and so the id.
  EXPECT_NE(ComputeClusterId(Member("a", "b=http://h2:2380,a=http://h1:2380,c=http://h3:2380")),
            a);
  ServerConfig other_token = Member("a", kCluster, "a");
  other_token.initial_cluster_token = "other";
  EXPECT_NE(ComputeClusterId(other_token), a);
}

TEST(MemberIdTest, PeerUrlsInAnyOrderGiveOneId) {
  EXPECT_EQ(MemberIdOf("tok", "a", {"http://h:1", "http://h:2"}),
            MemberIdOf("tok", "a", {"http://h:2", "http://h:1"}));
  EXPECT_NE(MemberIdOf("tok", "a", {"http://h:1"}), MemberIdOf("tok", "b", {"http://h:1"}));
}

TEST(DataDirIdentityTest, FirstStartRecordsItLaterStartsMustMatch) {
  testing::ScopedTempDir dir;
  ASSERT_TRUE(CheckDataDirIdentity(dir.path(), 1, 2, "a").ok());
  std::ifstream in(dir.Sub("member"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "cluster-id 0000000000000001\nmember-id 0000000000000002\nname a\n");
  EXPECT_TRUE(CheckDataDirIdentity(dir.path(), 1, 2, "a").ok());
  const absl::Status other = CheckDataDirIdentity(dir.path(), 3, 2, "a");
  EXPECT_TRUE(absl::IsFailedPrecondition(other));
  EXPECT_THAT(other.message(), HasSubstr("belongs to member \"a\" (0000000000000002) of "
                                         "cluster 0000000000000001"));
  {
    std::ofstream out(dir.Sub("member"), std::ios::trunc);
    out << "cluster-id zz\n";
  }
  const absl::Status bad = CheckDataDirIdentity(dir.path(), 1, 2, "a");
  EXPECT_TRUE(absl::IsDataLoss(bad));
  EXPECT_THAT(bad.message(), HasSubstr("is malformed"));
  // A malformed file is reported, never overwritten.
  std::ifstream again(dir.Sub("member"));
  std::string kept((std::istreambuf_iterator<char>(again)), std::istreambuf_iterator<char>());
  EXPECT_EQ(kept, "cluster-id zz\n");
}

}  // namespace
}  // namespace geoetcd
