// Register: the state of one key in one region (ARCHITECTURE.md §1), its canonical byte
// encoding, its hash, and its last-writer-wins merge.
//
// The canonical encoding is the only thing ever hashed or compared byte-wise: two regions
// agree on a register exactly when they agree on its encoding. It is versioned, little-
// endian and length-prefixed, independent of protobuf's serializer (which is not canonical).
//
// All functions here are pure and thread-compatible.
#ifndef GEOETCD_CRDT_REGISTER_H_
#define GEOETCD_CRDT_REGISTER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/hlc.h"

namespace geoetcd {

// Bounds of one register. etcd's own request limit (1.5 MiB by default) is far below both.
constexpr size_t kRegisterKeyBytesMax = size_t{64} << 10;    // 64 KiB
constexpr size_t kRegisterValueBytesMax = size_t{64} << 20;  // 64 MiB
// First byte of every encoding; a decoder rejects any other.
constexpr uint8_t kRegisterEncodingVersion = 2;
// version, flags, hlc, origin, 4 x int64, mod_sub, 2 x uint32 length.
constexpr size_t kRegisterEncodingFixedBytes = 1 + 1 + 8 + 8 + 4 * 8 + 4 + 4 + 4;
constexpr size_t kRegisterEncodingBytesMax =
    kRegisterEncodingFixedBytes + kRegisterKeyBytesMax + kRegisterValueBytesMax;
// Seed of RegisterHash(). Part of the on-wire digest: changing it is a protocol change.
constexpr uint64_t kRegisterHashSeed = 0x6765'6f72'6567'0001ULL;

// The stamp of the write that produced a register: its HLC and the region that issued it.
// Totally ordered by (hlc, origin); a larger stamp is a later write.
struct RegisterStamp {
  Hlc hlc = 0;
  uint64_t origin = 0;

  friend bool operator==(const RegisterStamp& a, const RegisterStamp& b) {
    return a.hlc == b.hlc && a.origin == b.origin;
  }
  friend bool operator!=(const RegisterStamp& a, const RegisterStamp& b) { return !(a == b); }
  friend bool operator<(const RegisterStamp& a, const RegisterStamp& b) {
    return a.hlc != b.hlc ? a.hlc < b.hlc : a.origin < b.origin;
  }
  friend bool operator>(const RegisterStamp& a, const RegisterStamp& b) { return b < a; }
  friend bool operator<=(const RegisterStamp& a, const RegisterStamp& b) { return !(b < a); }
  friend bool operator>=(const RegisterStamp& a, const RegisterStamp& b) { return !(a < b); }
};

// One key's state. A delete is a register too (tombstone = true); by convention its value,
// create_revision, version and lease are zero/empty, but nothing here depends on that: the
// codec and the merge treat every field as data.
struct Register {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  // The version's place within its commit (etcd's sub-revision): with mod_revision, its
  // identity in the MVCC history, so a region that adopts the register stores it where the
  // write region does and replays that commit's events in the same order.
  int32_t mod_sub = 0;
  int64_t version = 0;
  int64_t lease = 0;
  bool tombstone = false;
  RegisterStamp stamp;

  friend bool operator==(const Register& a, const Register& b);
  friend bool operator!=(const Register& a, const Register& b) { return !(a == b); }
};

// OK if `r` can be encoded: 1 <= key size <= kRegisterKeyBytesMax and value size <=
// kRegisterValueBytesMax. Use it on registers built from untrusted input.
[[nodiscard]] absl::Status ValidateRegister(const Register& r);

// The canonical encoding (all integers little-endian):
//   u8 version (=2) | u8 flags (bit 0: tombstone; others 0) | u64 hlc | u64 origin |
//   i64 create_revision | i64 mod_revision | i64 version | i64 lease | i32 mod_sub |
//   u32 key size | key | u32 value size | value
// Deterministic and injective: equal registers, and only those, have equal encodings.
// REQUIRES: ValidateRegister(r).ok() (CHECKed: an unencodable register is a caller bug).
std::string EncodeRegister(const Register& r);
// Appends the encoding to *out. Same contract as EncodeRegister().
void AppendEncodedRegister(const Register& r, std::string* out);

// Inverse of EncodeRegister(). Rejects (InvalidArgument, with the reason) an unknown version,
// unknown flag bits, an empty or oversized key or value, and truncated or trailing bytes, so
// that DecodeRegister(b).ok() implies EncodeRegister(*DecodeRegister(b)) == b.
[[nodiscard]] absl::StatusOr<Register> DecodeRegister(std::string_view bytes);

// xxhash64 of EncodeRegister(r) with kRegisterHashSeed. REQUIRES as EncodeRegister().
uint64_t RegisterHash(const Register& r);

// The merge order, a total order on registers: by stamp; for equal stamps a tombstone beats
// a live register (a delete wins a tie, as in Cosmos DB); then by the encodings compared as
// unsigned bytes. Returns <0, 0, >0 as a is below, equal to, above b. Equal stamps with
// different content never come from one write region; the byte tie-break exists so that the
// merge stays a function of the two inputs for every input, including corrupt or forked ones.
// REQUIRES as EncodeRegister() for both (the tie-break encodes them).
int CompareRegisters(const Register& a, const Register& b);

// Last-writer-wins: the larger of a and b under CompareRegisters(). Commutative, associative
// and idempotent for all inputs (it is the maximum of a total order). Returns a reference to
// a or b: valid as long as both are.
// REQUIRES: a.key == b.key (CHECKed: merging different keys is a caller bug).
const Register& Merge(const Register& a, const Register& b);

// *into = Merge(*into, incoming). Returns true if *into changed.
bool MergeInto(Register* into, const Register& incoming);

// For test failures and logs: key, stamp, flags and value size (not the value).
std::string RegisterDebugString(const Register& r);

}  // namespace geoetcd

#endif  // GEOETCD_CRDT_REGISTER_H_
