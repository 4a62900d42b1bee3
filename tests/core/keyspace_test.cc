#include "core/keyspace.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace geoetcd {
namespace {

std::vector<std::string> Keys(const Keyspace& ks, const KeyRange& r, int64_t rev) {
  std::vector<std::string> out;
  ks.ForEachLive(r, rev, [&](const std::string& k, const KeyVersion&) {
    out.push_back(k);
    return true;
  });
  return out;
}

void PutAt(Keyspace* ks, const std::string& key, const std::string& value) {
  ks->BeginCommit(ks->revision() + 1);
  ks->Put(key, value, 0);
  ks->EndCommit();
}

TEST(KeyspaceTest, StartsAtRevisionOne) {
  Keyspace ks;
  EXPECT_EQ(ks.revision(), 1);
  EXPECT_EQ(ks.compact_revision(), -1);
}

TEST(KeyspaceTest, LiveKeyCountFollowsPutsDeletesAndCompaction) {
  Keyspace ks;
  PutAt(&ks, "a", "1");
  PutAt(&ks, "a", "2");
  PutAt(&ks, "b", "1");
  EXPECT_EQ(ks.live_key_count(), 2);
  ks.BeginCommit(ks.revision() + 1);
  EXPECT_TRUE(ks.Delete("a"));
  EXPECT_FALSE(ks.Delete("missing"));
  ks.EndCommit();
  EXPECT_EQ(ks.live_key_count(), 1);
  PutAt(&ks, "a", "3");  // recreated
  EXPECT_EQ(ks.live_key_count(), 2);
  std::vector<VersionId> dropped;
  ks.Compact(ks.revision(), &dropped);
  EXPECT_EQ(ks.live_key_count(), 2);
  ks.CheckInvariants();  // recounts and compares
}

TEST(KeyspaceTest, VersionsFollowEtcdRules) {
  Keyspace ks;
  PutAt(&ks, "a", "1");  // rev 2
  PutAt(&ks, "a", "2");  // rev 3
  const KeyVersion* v = ks.Get("a", 3);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->create_revision, 2);
  EXPECT_EQ(v->mod_revision, 3);
  EXPECT_EQ(v->version, 2);
  ks.BeginCommit(4);
  EXPECT_TRUE(ks.Delete("a"));
  ks.EndCommit();
  EXPECT_EQ(ks.Get("a", 4), nullptr);
  PutAt(&ks, "a", "3");  // rev 5: recreated
  v = ks.Get("a", 5);
  EXPECT_EQ(v->create_revision, 5);
  EXPECT_EQ(v->version, 1);
  // History stays readable.
  EXPECT_EQ(ks.Get("a", 2)->value, "1");
  EXPECT_EQ(ks.Get("a", 1), nullptr);
  ks.CheckInvariants();
}

TEST(KeyspaceTest, CommitWithoutChangesKeepsRevision) {
  Keyspace ks;
  ks.BeginCommit(2);
  EXPECT_FALSE(ks.Delete("missing"));
  EXPECT_EQ(ks.EndCommit(), 0);
  EXPECT_EQ(ks.revision(), 1);
}

TEST(KeyspaceTest, RangeConventions) {
  Keyspace ks;
  for (const char* k : {"a", "b", "c", "d"}) PutAt(&ks, k, "v");
  const int64_t rev = ks.revision();
  EXPECT_EQ(Keys(ks, KeyRange::FromEtcd("b", ""), rev), std::vector<std::string>{"b"});
  EXPECT_EQ(Keys(ks, KeyRange::FromEtcd("b", "d"), rev), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(Keys(ks, KeyRange::FromEtcd("b", std::string(1, '\0')), rev),
            (std::vector<std::string>{"b", "c", "d"}));
  EXPECT_EQ(Keys(ks, KeyRange::FromEtcd(std::string(1, '\0'), std::string(1, '\0')), rev).size(),
            4u);
  EXPECT_TRUE(Keys(ks, KeyRange::FromEtcd("d", "b"), rev).empty());
}

TEST(KeyspaceTest, RangesOverlap) {
  EXPECT_TRUE(KeyRange::FromEtcd("a", "c").Overlaps(KeyRange::FromEtcd("b", "")));
  EXPECT_FALSE(KeyRange::FromEtcd("a", "c").Overlaps(KeyRange::FromEtcd("c", "")));
  EXPECT_TRUE(KeyRange::FromEtcd("a", std::string(1, '\0')).Overlaps(KeyRange::FromEtcd("zz", "")));
  EXPECT_FALSE(KeyRange::FromEtcd("c", "a").Overlaps(KeyRange::FromEtcd("b", "")));
}

TEST(KeyspaceTest, CompactKeepsNewestVersionAtOrBeforeRevision) {
  Keyspace ks;
  PutAt(&ks, "a", "1");  // 2
  PutAt(&ks, "a", "2");  // 3
  PutAt(&ks, "b", "1");  // 4
  ks.BeginCommit(5);
  ks.Delete("b");
  ks.EndCommit();        // 5
  PutAt(&ks, "a", "3");  // 6
  std::vector<VersionId> dropped;
  ks.Compact(5, &dropped);
  // a@2 superseded by a@3 and b@4 by its tombstone b@5, which stays: a watch from the
  // compaction revision must still see that delete (etcd #18089).
  EXPECT_EQ(dropped.size(), 2u);
  EXPECT_EQ(ks.compact_revision(), 5);
  EXPECT_EQ(ks.Get("a", 5)->value, "2");
  EXPECT_EQ(ks.Get("a", 6)->value, "3");
  EXPECT_EQ(ks.Get("b", 5), nullptr);
  EXPECT_EQ(ks.key_count(), 2u);
  ks.CheckInvariants();
}

TEST(KeyspaceTest, CompactDropsTombstoneBeforeRevision) {
  Keyspace ks;
  PutAt(&ks, "b", "1");  // 2
  ks.BeginCommit(3);
  ks.Delete("b");
  ks.EndCommit();        // 3
  PutAt(&ks, "a", "1");  // 4
  std::vector<VersionId> dropped;
  ks.Compact(3, &dropped);  // the tombstone at exactly 3 survives
  EXPECT_EQ(dropped.size(), 1u);
  dropped.clear();
  ks.Compact(4, &dropped);  // and goes with the next compaction
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].revision, 3);
  EXPECT_EQ(ks.key_count(), 1u);
  ks.CheckInvariants();
}

TEST(KeyspaceTest, RestoreRebuildsHistory) {
  Keyspace ks;
  KeyVersion v1;
  v1.mod_revision = 2;
  v1.create_revision = 2;
  v1.version = 1;
  v1.value = "x";
  ks.Restore("k", v1);
  KeyVersion t;
  t.mod_revision = 3;
  ks.Restore("k", t);
  ks.SetRecoveredRevisions(3, 0);
  EXPECT_EQ(ks.revision(), 3);
  EXPECT_EQ(ks.Get("k", 2)->value, "x");
  EXPECT_EQ(ks.Get("k", 3), nullptr);
  ks.CheckInvariants();
}

// A Merkle repair installs another region's registers at revision 5 (core/node_repair.cc):
// one version per key, history below 5 gone. The write region's later compaction at 4 must
// still drop the tombstone older than 4 that the registers carry, as it dropped it there.
TEST(KeyspaceTest, InstalledRegistersThenACompactionBelowThemDropsOldTombstones) {
  Keyspace ks;
  ks.BeginCommit(2);
  ks.Put("a", "old", 0);
  ks.Put("c", "gone", 0);
  ks.EndCommit();
  std::map<std::string, std::optional<KeyVersion>> changes;
  KeyVersion tombstone;
  tombstone.mod_revision = 3;
  changes["a"] = tombstone;
  KeyVersion b;
  b.mod_revision = 4;
  b.create_revision = 4;
  b.version = 1;
  b.value = Bytes("v");
  changes["b"] = b;
  changes["c"] = std::nullopt;
  ks.InstallRegisters(5, changes);
  ks.CheckInvariants();
  EXPECT_EQ(ks.revision(), 5);
  EXPECT_EQ(ks.compact_revision(), 5);
  EXPECT_EQ(ks.key_count(), 2u);  // a's tombstone and b
  EXPECT_EQ(ks.Get("a", 5), nullptr);
  ASSERT_NE(ks.Get("b", 5), nullptr);
  EXPECT_EQ(ks.Get("b", 5)->value.view(), "v");
  std::vector<VersionId> dropped;
  std::vector<std::string> removed;
  ks.Compact(4, &dropped, &removed);
  EXPECT_EQ(removed, std::vector<std::string>{"a"});
  EXPECT_EQ(ks.compact_revision(), 5);  // the point stays where the install put it
  EXPECT_EQ(ks.key_count(), 1u);
  ks.CheckInvariants();
}

}  // namespace
}  // namespace geoetcd
