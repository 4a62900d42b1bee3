// Every storage encoding paired with its decoding (core/keyspace_codec.h): what is written
// reads back as the same value, and byte order of the keys is the order recovery relies on.
#include "core/keyspace_codec.h"

#include <string>

#include "core/random.h"
#include "gtest/gtest.h"

namespace geoetcd {
namespace {

KeyVersion RandomVersion(Random& rnd) {
  KeyVersion v;
  v.mod_revision = rnd.Range(1, int64_t{1} << 62);
  v.sub = static_cast<int32_t>(rnd.Range(0, 1 << 30));
  v.hlc = rnd.Next();
  v.origin = rnd.Next();
  if (rnd.Chance(0.3)) return v;  // a tombstone: version 0 and nothing else, as Delete writes
  v.create_revision = rnd.Range(1, v.mod_revision);
  v.version = rnd.Range(1, 1 << 20);
  v.lease = rnd.Chance(0.5) ? rnd.Range(1, int64_t{1} << 62) : 0;
  std::string value(rnd.Uniform(64), '\0');
  for (char& c : value) c = static_cast<char>(rnd.Uniform(256));
  v.value = Bytes(value);
  return v;
}

TEST(KeyspaceCodecTest, KeyRecordsRoundTrip) {
  Random rnd(7);
  for (int i = 0; i < 5000; ++i) {
    const KeyVersion v = RandomVersion(rnd);
    const std::string key = "k" + std::to_string(rnd.Next());
    KeyRecord rec;
    ASSERT_TRUE(rec.ParseFromString(codec::ToRecord(key, v).SerializeAsString()));
    EXPECT_EQ(rec.key(), key);
    const KeyVersion back = codec::FromRecord(rec, VersionId{v.mod_revision, v.sub});
    EXPECT_EQ(back.mod_revision, v.mod_revision);
    EXPECT_EQ(back.sub, v.sub);
    EXPECT_EQ(back.create_revision, v.create_revision);
    EXPECT_EQ(back.version, v.version);
    EXPECT_EQ(back.lease, v.lease);
    EXPECT_EQ(back.value.view(), v.value.view());
    EXPECT_EQ(back.hlc, v.hlc);
    EXPECT_EQ(back.origin, v.origin);
    EXPECT_EQ(back.tombstone(), v.tombstone());
  }
}

TEST(KeyspaceCodecTest, VersionAndLogKeysRoundTripAndSortAsTheirNumbers) {
  Random rnd(8);
  for (int i = 0; i < 5000; ++i) {
    const VersionId a{rnd.Range(0, int64_t{1} << 62), static_cast<int32_t>(rnd.Range(0, 1 << 30))};
    const VersionId b{rnd.Chance(0.5) ? a.revision : rnd.Range(0, int64_t{1} << 62),
                      static_cast<int32_t>(rnd.Range(0, 1 << 30))};
    const std::string ka = codec::VersionKey("acct", a);
    const std::string kb = codec::VersionKey("acct", b);
    VersionId back;
    ASSERT_TRUE(codec::ParseVersionKey("acct", ka, &back));
    EXPECT_EQ(back, a);
    EXPECT_EQ(ka < kb, a < b);
    EXPECT_FALSE(codec::ParseVersionKey("other", ka, &back));
    EXPECT_FALSE(codec::ParseVersionKey("acct", ka.substr(0, ka.size() - 1), &back));

    const uint64_t x = rnd.Next() >> 1;
    const uint64_t y = rnd.Next() >> 1;
    uint64_t index = 0;
    ASSERT_TRUE(codec::ParseLogKey("acct", codec::LogKey("acct", x), &index));
    EXPECT_EQ(index, x);
    EXPECT_EQ(codec::LogKey("acct", x) < codec::LogKey("acct", y), x < y);
    EXPECT_FALSE(codec::ParseLogKey("acct", codec::LogKey("acct", x) + "z", &index));
  }
}

TEST(KeyspaceCodecTest, PrefixEndBoundsEveryKeyOfItsPrefix) {
  const std::string prefix = codec::VersionPrefix("acct");
  const std::string end = codec::PrefixEnd(prefix);
  EXPECT_LT(prefix, end);
  EXPECT_LT(codec::VersionKey("acct", {int64_t{1} << 62, 1 << 30}), end);
  EXPECT_GE(codec::VersionPrefix("acct0"), end);  // another account's keys lie beyond it
  EXPECT_EQ(codec::PrefixEnd(std::string("a\xff", 2)), "b");
}

}  // namespace
}  // namespace geoetcd
