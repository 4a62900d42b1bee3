#include "crdt/register.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/check.h"
// For XXH64_state_t on the stack: RegisterHash streams the encoding instead of building it.
#define XXH_STATIC_LINKING_ONLY
#include "xxhash.h"

namespace geoetcd {
namespace {

constexpr uint8_t kFlagTombstone = 0x01;
constexpr uint8_t kFlagsKnown = kFlagTombstone;

// Explicit little-endian stores, so the encoding does not depend on the host.
void PutU32(uint32_t v, std::string* out) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out->append(b, 4);
}
void PutU64(uint64_t v, std::string* out) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out->append(b, 8);
}

// Reads from the front of `in_`; every read checks the remaining length first.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  size_t remaining() const { return in_.size(); }
  bool U8(uint8_t* v) {
    if (in_.size() < 1) return false;
    *v = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return true;
  }
  bool U32(uint32_t* v) {
    if (in_.size() < 4) return false;
    *v = 0;
    for (int i = 0; i < 4; ++i) *v |= uint32_t{static_cast<uint8_t>(in_[i])} << (8 * i);
    in_.remove_prefix(4);
    return true;
  }
  bool U64(uint64_t* v) {
    if (in_.size() < 8) return false;
    *v = 0;
    for (int i = 0; i < 8; ++i) *v |= uint64_t{static_cast<uint8_t>(in_[i])} << (8 * i);
    in_.remove_prefix(8);
    return true;
  }
  bool I64(int64_t* v) {
    uint64_t u;
    if (!U64(&u)) return false;
    *v = static_cast<int64_t>(u);
    return true;
  }
  bool Bytes(size_t n, std::string* out) {
    if (in_.size() < n) return false;
    out->assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }

 private:
  std::string_view in_;
};

absl::Status Invalid(const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("register encoding: ", why));
}

}  // namespace

bool operator==(const Register& a, const Register& b) {
  return a.key == b.key && a.value == b.value && a.create_revision == b.create_revision &&
         a.mod_revision == b.mod_revision && a.mod_sub == b.mod_sub && a.version == b.version && a.lease == b.lease &&
         a.tombstone == b.tombstone && a.stamp == b.stamp;
}

absl::Status ValidateRegister(const Register& r) {
  if (r.key.empty()) return absl::InvalidArgumentError("register key is empty");
  if (r.key.size() > kRegisterKeyBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("register key of ", r.key.size(), " bytes exceeds ", kRegisterKeyBytesMax));
  }
  if (r.value.size() > kRegisterValueBytesMax) {
    return absl::InvalidArgumentError(absl::StrCat(
        "register value of ", r.value.size(), " bytes exceeds ", kRegisterValueBytesMax));
  }
  return absl::OkStatus();
}

// The encoding up to and including the key size; the key, the value size and the value
// follow.
void AppendHeader(const Register& r, std::string* out) {
  out->push_back(static_cast<char>(kRegisterEncodingVersion));
  out->push_back(static_cast<char>(r.tombstone ? kFlagTombstone : 0));
  PutU64(r.stamp.hlc, out);
  PutU64(r.stamp.origin, out);
  PutU64(static_cast<uint64_t>(r.create_revision), out);
  PutU64(static_cast<uint64_t>(r.mod_revision), out);
  PutU64(static_cast<uint64_t>(r.version), out);
  PutU64(static_cast<uint64_t>(r.lease), out);
  PutU32(static_cast<uint32_t>(r.mod_sub), out);
  PutU32(static_cast<uint32_t>(r.key.size()), out);
}

void AppendEncodedRegister(const Register& r, std::string* out) {
  CHECK(ValidateRegister(r).ok());
  out->reserve(out->size() + kRegisterEncodingFixedBytes + r.key.size() + r.value.size());
  AppendHeader(r, out);
  out->append(r.key);
  PutU32(static_cast<uint32_t>(r.value.size()), out);
  out->append(r.value);
}

std::string EncodeRegister(const Register& r) {
  std::string out;
  AppendEncodedRegister(r, &out);
  return out;
}

absl::StatusOr<Register> DecodeRegister(std::string_view bytes) {
  // Refuse before reading anything: no length field may make us allocate past the bound.
  if (bytes.size() > kRegisterEncodingBytesMax) return Invalid("longer than the maximum");
  Reader in(bytes);
  Register r;
  uint8_t version, flags;
  uint32_t sub = 0;
  if (!in.U8(&version)) return Invalid("empty");
  if (version != kRegisterEncodingVersion) {
    return Invalid(absl::StrCat("unknown version ", version));
  }
  if (!in.U8(&flags) || !in.U64(&r.stamp.hlc) || !in.U64(&r.stamp.origin) ||
      !in.I64(&r.create_revision) || !in.I64(&r.mod_revision) || !in.I64(&r.version) ||
      !in.I64(&r.lease) || !in.U32(&sub)) {
    return Invalid("truncated header");
  }
  if ((flags & ~kFlagsKnown) != 0) return Invalid(absl::StrCat("unknown flags ", flags));
  r.tombstone = (flags & kFlagTombstone) != 0;
  r.mod_sub = static_cast<int32_t>(sub);
  uint32_t key_size, value_size;
  if (!in.U32(&key_size)) return Invalid("truncated key size");
  if (key_size == 0 || key_size > kRegisterKeyBytesMax) {
    return Invalid(absl::StrCat("key size ", key_size, " out of range"));
  }
  if (!in.Bytes(key_size, &r.key)) return Invalid("truncated key");
  if (!in.U32(&value_size)) return Invalid("truncated value size");
  if (value_size > kRegisterValueBytesMax) {
    return Invalid(absl::StrCat("value size ", value_size, " out of range"));
  }
  if (in.remaining() < value_size) return Invalid("truncated value");
  if (in.remaining() > value_size) return Invalid("trailing bytes");
  if (!in.Bytes(value_size, &r.value)) return Invalid("truncated value");
  return r;
}

uint64_t RegisterHash(const Register& r) {
  // The same bytes as EncodeRegister(), streamed, so hashing never copies the value.
  CHECK(ValidateRegister(r).ok());
  std::string header;
  header.reserve(kRegisterEncodingFixedBytes);
  AppendHeader(r, &header);
  std::string value_size;
  PutU32(static_cast<uint32_t>(r.value.size()), &value_size);
  XXH64_state_t state;
  XXH64_reset(&state, kRegisterHashSeed);
  XXH64_update(&state, header.data(), header.size());
  XXH64_update(&state, r.key.data(), r.key.size());
  XXH64_update(&state, value_size.data(), value_size.size());
  XXH64_update(&state, r.value.data(), r.value.size());
  return XXH64_digest(&state);
}

int CompareRegisters(const Register& a, const Register& b) {
  if (a.stamp != b.stamp) return a.stamp < b.stamp ? -1 : 1;
  if (a.tombstone != b.tombstone) return a.tombstone ? 1 : -1;
  if (a == b) return 0;
  // std::string::compare compares as unsigned char, like memcmp.
  const int c = EncodeRegister(a).compare(EncodeRegister(b));
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

const Register& Merge(const Register& a, const Register& b) {
  CHECK(a.key == b.key);
  return CompareRegisters(a, b) >= 0 ? a : b;
}

bool MergeInto(Register* into, const Register& incoming) {
  CHECK(into->key == incoming.key);
  if (CompareRegisters(incoming, *into) <= 0) return false;
  *into = incoming;
  return true;
}

std::string RegisterDebugString(const Register& r) {
  return absl::StrCat("{key=", absl::CEscape(r.key.substr(0, 64)),
                      r.key.size() > 64 ? "..." : "", " stamp=", HlcPhysicalMs(r.stamp.hlc), ".",
                      HlcLogical(r.stamp.hlc), "/",
                      r.stamp.origin, r.tombstone ? " tombstone" : "", " create=",
                      r.create_revision, " mod=", r.mod_revision, ".", r.mod_sub, " version=", r.version,
                      " lease=", r.lease, " value_bytes=", r.value.size(), "}");
}

}  // namespace geoetcd
