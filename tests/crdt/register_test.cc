#include "crdt/register.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "xxhash.h"
#include "tests/crdt/crdt_test_util.h"

namespace geoetcd {
namespace {

using crdt_test::RandomRegister;
using crdt_test::Seed;

Register Sample() {
  Register r;
  r.key = "k";
  r.value = "v";
  r.create_revision = 2;
  r.mod_revision = 5;
  r.version = 3;
  r.lease = 7;
  r.mod_sub = 4;
  r.stamp = {MakeHlc(1000, 3), 2};
  return r;
}

TEST(RegisterTest, EncodingIsLittleEndianAndLengthPrefixed) {
  const std::string bytes = EncodeRegister(Sample());
  ASSERT_EQ(bytes.size(), kRegisterEncodingFixedBytes + 1 + 1);
  EXPECT_EQ(bytes[0], static_cast<char>(kRegisterEncodingVersion));
  EXPECT_EQ(bytes[1], 0);                              // flags
  EXPECT_EQ(static_cast<uint8_t>(bytes[2]), 3);        // hlc, low byte: logical 3
  EXPECT_EQ(static_cast<uint8_t>(bytes[10]), 2);       // origin
  EXPECT_EQ(static_cast<uint8_t>(bytes[18]), 2);       // create_revision
  EXPECT_EQ(static_cast<uint8_t>(bytes[50]), 4);       // mod_sub
  EXPECT_EQ(static_cast<uint8_t>(bytes[54]), 1);       // key size
  EXPECT_EQ(bytes[58], 'k');
  EXPECT_EQ(static_cast<uint8_t>(bytes[59]), 1);       // value size
  EXPECT_EQ(bytes[63], 'v');
}

TEST(RegisterTest, RoundTripOnRandomInputs) {
  Random rnd(Seed("RegisterTest.RoundTripOnRandomInputs", 11));
  for (int i = 0; i < 20000; ++i) {
    Register r = RandomRegister(rnd, crdt_test::RandomBytes(rnd, 20) + "k");
    // Full-range integers too, negative ones included.
    if (rnd.Chance(0.5)) {
      r.create_revision = static_cast<int64_t>(rnd.Next());
      r.mod_revision = static_cast<int64_t>(rnd.Next());
      r.version = static_cast<int64_t>(rnd.Next());
      r.lease = static_cast<int64_t>(rnd.Next());
      r.mod_sub = static_cast<int32_t>(rnd.Next());
      r.stamp = {rnd.Next(), rnd.Next()};
    }
    const std::string bytes = EncodeRegister(r);
    absl::StatusOr<Register> back = DecodeRegister(bytes);
    ASSERT_TRUE(back.ok()) << back.status();
    ASSERT_EQ(*back, r) << RegisterDebugString(r);
    ASSERT_EQ(EncodeRegister(*back), bytes);
    ASSERT_EQ(RegisterHash(*back), RegisterHash(r));
    ASSERT_EQ(RegisterHash(r), XXH64(bytes.data(), bytes.size(), kRegisterHashSeed));
  }
}

TEST(RegisterTest, EveryTruncationIsRejected) {
  Random rnd(Seed("RegisterTest.EveryTruncationIsRejected", 12));
  for (int i = 0; i < 200; ++i) {
    const std::string bytes = EncodeRegister(RandomRegister(rnd, "key/" + std::to_string(i)));
    for (size_t n = 0; n < bytes.size(); ++n) {
      ASSERT_FALSE(DecodeRegister(std::string_view(bytes).substr(0, n)).ok()) << n;
    }
  }
}

TEST(RegisterTest, TrailingBytesAreRejected) {
  const std::string bytes = EncodeRegister(Sample());
  EXPECT_FALSE(DecodeRegister(bytes + '\0').ok());
  EXPECT_FALSE(DecodeRegister(bytes + bytes).ok());
}

TEST(RegisterTest, UnknownVersionAndFlagsAreRejected) {
  std::string bytes = EncodeRegister(Sample());
  std::string bad_version = bytes;
  bad_version[0] = 1;  // the encoding before mod_sub joined it
  EXPECT_FALSE(DecodeRegister(bad_version).ok());
  std::string bad_flags = bytes;
  bad_flags[1] = 0x02;
  EXPECT_FALSE(DecodeRegister(bad_flags).ok());
  std::string tombstone = bytes;
  tombstone[1] = 0x01;
  ASSERT_TRUE(DecodeRegister(tombstone).ok());
  EXPECT_TRUE(DecodeRegister(tombstone)->tombstone);
}

TEST(RegisterTest, OversizedLengthsAreRejectedBeforeReading) {
  std::string bytes = EncodeRegister(Sample());
  // Key size field at offset 54: 64 KiB + 1.
  std::string big_key = bytes;
  const uint32_t key_size = kRegisterKeyBytesMax + 1;
  for (int i = 0; i < 4; ++i) big_key[54 + i] = static_cast<char>(key_size >> (8 * i));
  EXPECT_FALSE(DecodeRegister(big_key).ok());
  std::string empty_key = bytes;
  for (int i = 0; i < 4; ++i) empty_key[54 + i] = 0;
  EXPECT_FALSE(DecodeRegister(empty_key).ok());
  // Value size field at offset 59: 64 MiB + 1.
  std::string big_value = bytes;
  const uint32_t value_size = kRegisterValueBytesMax + 1;
  for (int i = 0; i < 4; ++i) big_value[59 + i] = static_cast<char>(value_size >> (8 * i));
  EXPECT_FALSE(DecodeRegister(big_value).ok());
}

TEST(RegisterTest, RegistersAtTheBoundsRoundTrip) {
  Register r = Sample();
  r.key.assign(kRegisterKeyBytesMax, 'k');
  r.value.assign(kRegisterValueBytesMax, 'v');
  ASSERT_TRUE(ValidateRegister(r).ok());
  const std::string bytes = EncodeRegister(r);
  EXPECT_EQ(bytes.size(), kRegisterEncodingBytesMax);
  absl::StatusOr<Register> back = DecodeRegister(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, r);
  r.key.push_back('k');
  EXPECT_FALSE(ValidateRegister(r).ok());
  r.key = "k";
  r.value.push_back('v');
  EXPECT_FALSE(ValidateRegister(r).ok());
  r.value.clear();
  r.key.clear();
  EXPECT_FALSE(ValidateRegister(r).ok());
}

TEST(RegisterTest, HashDiffersWithEveryField) {
  const Register base = Sample();
  std::vector<Register> variants(10, base);
  variants[0].key = "k2";
  variants[1].value = "v2";
  variants[2].create_revision++;
  variants[3].mod_revision++;
  variants[4].version++;
  variants[5].lease++;
  variants[6].tombstone = true;
  variants[7].stamp.hlc++;
  variants[8].stamp.origin++;
  variants[9].mod_sub++;
  for (const Register& v : variants) EXPECT_NE(RegisterHash(v), RegisterHash(base));
}

TEST(RegisterTest, LaterStampWins) {
  Register a = Sample();
  Register b = Sample();
  b.value = "older";
  b.stamp.hlc = a.stamp.hlc - 1;
  EXPECT_EQ(&Merge(a, b), &a);
  EXPECT_EQ(&Merge(b, a), &a);
  b.stamp.hlc = a.stamp.hlc;
  b.stamp.origin = a.stamp.origin + 1;  // same HLC: the origin breaks the tie
  EXPECT_EQ(&Merge(a, b), &b);
}

TEST(RegisterTest, TombstoneWinsAnEqualStamp) {
  Register live = Sample();
  Register dead = Sample();
  dead.tombstone = true;
  dead.value.clear();
  EXPECT_EQ(Merge(live, dead), dead);
  EXPECT_EQ(Merge(dead, live), dead);
}

TEST(RegisterTest, MergeIntoReportsChange) {
  Register into = Sample();
  Register newer = Sample();
  newer.stamp.hlc++;
  newer.value = "new";
  EXPECT_FALSE(MergeInto(&into, into));
  EXPECT_TRUE(MergeInto(&into, newer));
  EXPECT_EQ(into, newer);
  EXPECT_FALSE(MergeInto(&into, Sample()));
  EXPECT_EQ(into, newer);
}

TEST(RegisterTest, MergeIsCommutativeOnRandomInputs) {
  Random rnd(Seed("RegisterTest.MergeIsCommutativeOnRandomInputs", 21));
  int equal_stamps = 0;
  for (int i = 0; i < 50000; ++i) {
    const Register a = RandomRegister(rnd, "k");
    const Register b = RandomRegister(rnd, "k");
    if (a.stamp == b.stamp && a != b) ++equal_stamps;
    ASSERT_EQ(Merge(a, b), Merge(b, a)) << RegisterDebugString(a) << RegisterDebugString(b);
    ASSERT_EQ(CompareRegisters(a, b), -CompareRegisters(b, a));
    ASSERT_EQ(CompareRegisters(a, b) == 0, a == b);
  }
  std::printf("equal stamps with different content: %d\n", equal_stamps);
  EXPECT_GT(equal_stamps, 1000);  // the tie-break was exercised
}

TEST(RegisterTest, MergeIsAssociativeOnRandomInputs) {
  Random rnd(Seed("RegisterTest.MergeIsAssociativeOnRandomInputs", 22));
  for (int i = 0; i < 50000; ++i) {
    const Register a = RandomRegister(rnd, "k");
    const Register b = RandomRegister(rnd, "k");
    const Register c = RandomRegister(rnd, "k");
    ASSERT_EQ(Merge(Merge(a, b), c), Merge(a, Merge(b, c)))
        << RegisterDebugString(a) << RegisterDebugString(b) << RegisterDebugString(c);
  }
}

TEST(RegisterTest, MergeIsIdempotentOnRandomInputs) {
  Random rnd(Seed("RegisterTest.MergeIsIdempotentOnRandomInputs", 23));
  for (int i = 0; i < 50000; ++i) {
    const Register a = RandomRegister(rnd, "k");
    const Register b = RandomRegister(rnd, "k");
    ASSERT_EQ(Merge(a, a), a);
    const Register ab = Merge(a, b);
    ASSERT_EQ(Merge(ab, b), ab);  // replaying b changes nothing
    ASSERT_EQ(Merge(ab, a), ab);
  }
}

// Any order and any duplication of a set of writes merges to the same register.
TEST(RegisterTest, MergeOfShuffledDuplicatedSequencesAgrees) {
  Random rnd(Seed("RegisterTest.MergeOfShuffledDuplicatedSequencesAgrees", 24));
  for (int round = 0; round < 2000; ++round) {
    std::vector<Register> writes;
    const int n = 1 + static_cast<int>(rnd.Uniform(6));
    for (int i = 0; i < n; ++i) writes.push_back(RandomRegister(rnd, "k"));
    Register expected = writes[0];
    for (const Register& w : writes) MergeInto(&expected, w);
    for (int trial = 0; trial < 5; ++trial) {
      Register got = writes[rnd.Uniform(writes.size())];
      for (int step = 0; step < 3 * n; ++step) MergeInto(&got, writes[rnd.Uniform(n)]);
      for (const Register& w : writes) MergeInto(&got, w);
      ASSERT_EQ(got, expected);
    }
  }
}

TEST(RegisterDeathTest, MergingDifferentKeysIsABug) {
  Register a = Sample();
  Register b = Sample();
  b.key = "other";
  EXPECT_DEATH(Merge(a, b), "CHECK failed");
}

}  // namespace
}  // namespace geoetcd
