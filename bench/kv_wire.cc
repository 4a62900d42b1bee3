#include "bench/kv_wire.h"

namespace geoetcd::bench {
namespace {

enum WireType { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

// Walks the fields of one message. A scalar field repeated on the wire keeps its last
// value, as protobuf parsing does.
class WireReader {
 public:
  explicit WireReader(std::string_view bytes)
      : p_(reinterpret_cast<const uint8_t*>(bytes.data())), end_(p_ + bytes.size()) {}

  bool done() const { return p_ == end_; }

  // The next field's number and wire type, its value read: a varint into *varint, a
  // length-delimited field into *bytes; fixed-width fields are skipped.
  bool Next(uint32_t* field, int* type, uint64_t* varint, std::string_view* bytes) {
    uint64_t key = 0;
    if (!Varint(&key)) return false;
    *field = static_cast<uint32_t>(key >> 3);
    *type = static_cast<int>(key & 7);
    if (*field == 0 || (key >> 3) > 0x1fffffff) return false;
    switch (*type) {
      case kVarint:
        return Varint(varint);
      case kFixed64:
        return Skip(8);
      case kFixed32:
        return Skip(4);
      case kLengthDelimited: {
        uint64_t size = 0;
        if (!Varint(&size) || size > static_cast<uint64_t>(end_ - p_)) return false;
        *bytes = std::string_view(reinterpret_cast<const char*>(p_), size);
        p_ += size;
        return true;
      }
      default:
        return false;  // groups (3, 4) and the unused types 6, 7
    }
  }

 private:
  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      const uint8_t b = *p_++;
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }

  bool Skip(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) return false;
    p_ += n;
    return true;
  }

  const uint8_t* p_;
  const uint8_t* const end_;
};

// Calls fn(field, type, varint, bytes) for every field; false if malformed or fn says so.
template <class Fn>
bool ForEachField(std::string_view message, Fn fn) {
  WireReader r(message);
  while (!r.done()) {
    uint32_t field = 0;
    int type = 0;
    uint64_t varint = 0;
    std::string_view bytes;
    if (!r.Next(&field, &type, &varint, &bytes)) return false;
    if (!fn(field, type, varint, bytes)) return false;
  }
  return true;
}

// A field's wire type must match its declaration, or the message is not what we expect.
bool Is(int type, int want) { return type == want; }

// KeyValue.mod_revision (3).
bool ScanKeyValueModRevision(std::string_view kv, int64_t* mod) {
  return ForEachField(kv, [&](uint32_t field, int type, uint64_t v, std::string_view) {
    if (field == 3) {
      if (!Is(type, kVarint)) return false;
      *mod = static_cast<int64_t>(v);
    }
    return true;
  });
}

// RangeResponse: kvs (2) counted; the first kv's mod_revision into *first_mod if given.
bool ScanRange(std::string_view range, int64_t* kvs, int64_t* first_mod) {
  *kvs = 0;
  return ForEachField(range, [&](uint32_t field, int type, uint64_t, std::string_view b) {
    if (field != 2) return true;
    if (!Is(type, kLengthDelimited)) return false;
    if (*kvs == 0 && first_mod != nullptr && !ScanKeyValueModRevision(b, first_mod)) {
      return false;
    }
    ++*kvs;
    return true;
  });
}

}  // namespace

bool ScanMessage(std::string_view bytes) {
  return ForEachField(bytes, [](uint32_t, int, uint64_t, std::string_view) { return true; });
}

bool ScanRangeResponse(std::string_view bytes, KvResponseFields* out) {
  return ScanRange(bytes, &out->range_kvs, nullptr);
}

bool ScanTxnResponse(std::string_view bytes, KvResponseFields* out) {
  out->txn_succeeded = false;
  out->txn_revision = 0;
  out->txn_current_mod = 0;
  bool first_response = true;
  return ForEachField(bytes, [&](uint32_t field, int type, uint64_t v, std::string_view b) {
    switch (field) {
      case 1:  // header: ResponseHeader.revision (3)
        if (!Is(type, kLengthDelimited)) return false;
        return ForEachField(b, [&](uint32_t f, int t, uint64_t hv, std::string_view) {
          if (f == 3) {
            if (!Is(t, kVarint)) return false;
            out->txn_revision = static_cast<int64_t>(hv);
          }
          return true;
        });
      case 2:  // succeeded
        if (!Is(type, kVarint)) return false;
        out->txn_succeeded = v != 0;
        return true;
      case 3: {  // responses: only the first one's response_range (1) matters
        if (!Is(type, kLengthDelimited)) return false;
        const bool first = first_response;
        first_response = false;
        return ForEachField(b, [&](uint32_t f, int t, uint64_t, std::string_view rb) {
          if (f != 1 || !first) return true;
          if (!Is(t, kLengthDelimited)) return false;
          int64_t kvs = 0;
          return ScanRange(rb, &kvs, &out->txn_current_mod);
        });
      }
      default:
        return true;
    }
  });
}

}  // namespace geoetcd::bench
