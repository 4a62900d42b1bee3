#include "gateway/h2/hpack.h"

#include <utility>

#include "core/check.h"

namespace geoetcd::h2 {
namespace {

// RFC 7541 Appendix A: the static table. Index i + 1 is kStaticTable[i].
constexpr size_t kStaticTableLength = 61;
constexpr std::string_view kStaticTable[kStaticTableLength][2] = {
    {":authority", ""},
    {":method", "GET"},
    {":method", "POST"},
    {":path", "/"},
    {":path", "/index.html"},
    {":scheme", "http"},
    {":scheme", "https"},
    {":status", "200"},
    {":status", "204"},
    {":status", "206"},
    {":status", "304"},
    {":status", "400"},
    {":status", "404"},
    {":status", "500"},
    {"accept-charset", ""},
    {"accept-encoding", "gzip, deflate"},
    {"accept-language", ""},
    {"accept-ranges", ""},
    {"accept", ""},
    {"access-control-allow-origin", ""},
    {"age", ""},
    {"allow", ""},
    {"authorization", ""},
    {"cache-control", ""},
    {"content-disposition", ""},
    {"content-encoding", ""},
    {"content-language", ""},
    {"content-length", ""},
    {"content-location", ""},
    {"content-range", ""},
    {"content-type", ""},
    {"cookie", ""},
    {"date", ""},
    {"etag", ""},
    {"expect", ""},
    {"expires", ""},
    {"from", ""},
    {"host", ""},
    {"if-match", ""},
    {"if-modified-since", ""},
    {"if-none-match", ""},
    {"if-range", ""},
    {"if-unmodified-since", ""},
    {"last-modified", ""},
    {"link", ""},
    {"location", ""},
    {"max-forwards", ""},
    {"proxy-authenticate", ""},
    {"proxy-authorization", ""},
    {"range", ""},
    {"referer", ""},
    {"refresh", ""},
    {"retry-after", ""},
    {"server", ""},
    {"set-cookie", ""},
    {"strict-transport-security", ""},
    {"transfer-encoding", ""},
    {"user-agent", ""},
    {"vary", ""},
    {"via", ""},
    {"www-authenticate", ""},
};

// RFC 7541 Appendix B: the Huffman code of symbol i (octets 0..255, then EOS = 256), right
// aligned, and its length in bits. The code is canonical: ordered by length, then symbol.
struct HuffmanCode {
  uint32_t code;
  uint8_t bits;
};
constexpr int kEos = 256;
constexpr HuffmanCode kHuffmanCodes[257] = {
    {0x1ff8, 13},     {0x7fffd8, 23},   {0xfffffe2, 28},  {0xfffffe3, 28},   // 0-3
    {0xfffffe4, 28},  {0xfffffe5, 28},  {0xfffffe6, 28},  {0xfffffe7, 28},   // 4-7
    {0xfffffe8, 28},  {0xffffea, 24},   {0x3ffffffc, 30}, {0xfffffe9, 28},   // 8-11
    {0xfffffea, 28},  {0x3ffffffd, 30}, {0xfffffeb, 28},  {0xfffffec, 28},   // 12-15
    {0xfffffed, 28},  {0xfffffee, 28},  {0xfffffef, 28},  {0xffffff0, 28},   // 16-19
    {0xffffff1, 28},  {0xffffff2, 28},  {0x3ffffffe, 30}, {0xffffff3, 28},   // 20-23
    {0xffffff4, 28},  {0xffffff5, 28},  {0xffffff6, 28},  {0xffffff7, 28},   // 24-27
    {0xffffff8, 28},  {0xffffff9, 28},  {0xffffffa, 28},  {0xffffffb, 28},   // 28-31
    {0x14, 6},        {0x3f8, 10},      {0x3f9, 10},      {0xffa, 12},       // ' ' ! " #
    {0x1ff9, 13},     {0x15, 6},        {0xf8, 8},        {0x7fa, 11},       // $ % & '
    {0x3fa, 10},      {0x3fb, 10},      {0xf9, 8},        {0x7fb, 11},       // ( ) * +
    {0xfa, 8},        {0x16, 6},        {0x17, 6},        {0x18, 6},         // , - . /
    {0x0, 5},         {0x1, 5},         {0x2, 5},         {0x19, 6},         // 0 1 2 3
    {0x1a, 6},        {0x1b, 6},        {0x1c, 6},        {0x1d, 6},         // 4 5 6 7
    {0x1e, 6},        {0x1f, 6},        {0x5c, 7},        {0xfb, 8},         // 8 9 : ;
    {0x7ffc, 15},     {0x20, 6},        {0xffb, 12},      {0x3fc, 10},       // < = > ?
    {0x1ffa, 13},     {0x21, 6},        {0x5d, 7},        {0x5e, 7},         // @ A B C
    {0x5f, 7},        {0x60, 7},        {0x61, 7},        {0x62, 7},         // D E F G
    {0x63, 7},        {0x64, 7},        {0x65, 7},        {0x66, 7},         // H I J K
    {0x67, 7},        {0x68, 7},        {0x69, 7},        {0x6a, 7},         // L M N O
    {0x6b, 7},        {0x6c, 7},        {0x6d, 7},        {0x6e, 7},         // P Q R S
    {0x6f, 7},        {0x70, 7},        {0x71, 7},        {0x72, 7},         // T U V W
    {0xfc, 8},        {0x73, 7},        {0xfd, 8},        {0x1ffb, 13},      // X Y Z [
    {0x7fff0, 19},    {0x1ffc, 13},     {0x3ffc, 14},     {0x22, 6},         // \ ] ^ _
    {0x7ffd, 15},     {0x3, 5},         {0x23, 6},        {0x4, 5},          // ` a b c
    {0x24, 6},        {0x5, 5},         {0x25, 6},        {0x26, 6},         // d e f g
    {0x27, 6},        {0x6, 5},         {0x74, 7},        {0x75, 7},         // h i j k
    {0x28, 6},        {0x29, 6},        {0x2a, 6},        {0x7, 5},          // l m n o
    {0x2b, 6},        {0x76, 7},        {0x2c, 6},        {0x8, 5},          // p q r s
    {0x9, 5},         {0x2d, 6},        {0x77, 7},        {0x78, 7},         // t u v w
    {0x79, 7},        {0x7a, 7},        {0x7b, 7},        {0x7ffe, 15},      // x y z {
    {0x7fc, 11},      {0x3ffd, 14},     {0x1ffd, 13},     {0xffffffc, 28},   // | } ~ 127
    {0xfffe6, 20},    {0x3fffd2, 22},   {0xfffe7, 20},    {0xfffe8, 20},     // 128-131
    {0x3fffd3, 22},   {0x3fffd4, 22},   {0x3fffd5, 22},   {0x7fffd9, 23},    // 132-135
    {0x3fffd6, 22},   {0x7fffda, 23},   {0x7fffdb, 23},   {0x7fffdc, 23},    // 136-139
    {0x7fffdd, 23},   {0x7fffde, 23},   {0xffffeb, 24},   {0x7fffdf, 23},    // 140-143
    {0xffffec, 24},   {0xffffed, 24},   {0x3fffd7, 22},   {0x7fffe0, 23},    // 144-147
    {0xffffee, 24},   {0x7fffe1, 23},   {0x7fffe2, 23},   {0x7fffe3, 23},    // 148-151
    {0x7fffe4, 23},   {0x1fffdc, 21},   {0x3fffd8, 22},   {0x7fffe5, 23},    // 152-155
    {0x3fffd9, 22},   {0x7fffe6, 23},   {0x7fffe7, 23},   {0xffffef, 24},    // 156-159
    {0x3fffda, 22},   {0x1fffdd, 21},   {0xfffe9, 20},    {0x3fffdb, 22},    // 160-163
    {0x3fffdc, 22},   {0x7fffe8, 23},   {0x7fffe9, 23},   {0x1fffde, 21},    // 164-167
    {0x7fffea, 23},   {0x3fffdd, 22},   {0x3fffde, 22},   {0xfffff0, 24},    // 168-171
    {0x1fffdf, 21},   {0x3fffdf, 22},   {0x7fffeb, 23},   {0x7fffec, 23},    // 172-175
    {0x1fffe0, 21},   {0x1fffe1, 21},   {0x3fffe0, 22},   {0x1fffe2, 21},    // 176-179
    {0x7fffed, 23},   {0x3fffe1, 22},   {0x7fffee, 23},   {0x7fffef, 23},    // 180-183
    {0xfffea, 20},    {0x3fffe2, 22},   {0x3fffe3, 22},   {0x3fffe4, 22},    // 184-187
    {0x7ffff0, 23},   {0x3fffe5, 22},   {0x3fffe6, 22},   {0x7ffff1, 23},    // 188-191
    {0x3ffffe0, 26},  {0x3ffffe1, 26},  {0xfffeb, 20},    {0x7fff1, 19},     // 192-195
    {0x3fffe7, 22},   {0x7ffff2, 23},   {0x3fffe8, 22},   {0x1ffffec, 25},   // 196-199
    {0x3ffffe2, 26},  {0x3ffffe3, 26},  {0x3ffffe4, 26},  {0x7ffffde, 27},   // 200-203
    {0x7ffffdf, 27},  {0x3ffffe5, 26},  {0xfffff1, 24},   {0x1ffffed, 25},   // 204-207
    {0x7fff2, 19},    {0x1fffe3, 21},   {0x3ffffe6, 26},  {0x7ffffe0, 27},   // 208-211
    {0x7ffffe1, 27},  {0x3ffffe7, 26},  {0x7ffffe2, 27},  {0xfffff2, 24},    // 212-215
    {0x1fffe4, 21},   {0x1fffe5, 21},   {0x3ffffe8, 26},  {0x3ffffe9, 26},   // 216-219
    {0xffffffd, 28},  {0x7ffffe3, 27},  {0x7ffffe4, 27},  {0x7ffffe5, 27},   // 220-223
    {0xfffec, 20},    {0xfffff3, 24},   {0xfffed, 20},    {0x1fffe6, 21},    // 224-227
    {0x3fffe9, 22},   {0x1fffe7, 21},   {0x1fffe8, 21},   {0x7ffff3, 23},    // 228-231
    {0x3fffea, 22},   {0x3fffeb, 22},   {0x1ffffee, 25},  {0x1ffffef, 25},   // 232-235
    {0xfffff4, 24},   {0xfffff5, 24},   {0x3ffffea, 26},  {0x7ffff4, 23},    // 236-239
    {0x3ffffeb, 26},  {0x7ffffe6, 27},  {0x3ffffec, 26},  {0x3ffffed, 26},   // 240-243
    {0x7ffffe7, 27},  {0x7ffffe8, 27},  {0x7ffffe9, 27},  {0x7ffffea, 27},   // 244-247
    {0x7ffffeb, 27},  {0xffffffe, 28},  {0x7ffffec, 27},  {0x7ffffed, 27},   // 248-251
    {0x7ffffee, 27},  {0x7ffffef, 27},  {0x7fffff0, 27},  {0x3ffffee, 26},   // 252-255
    {0x3fffffff, 30},                                                        // EOS
};

// The Huffman decoder walks the code's binary tree four bits at a time. Its states are
// the tree's 256 internal nodes (0 is the root); for each state and nibble the table gives
// the state after those four bits and the symbol completed on the way, if any. No code is
// shorter than 5 bits, so a nibble completes at most one symbol.
struct HuffmanStep {
  uint8_t next;
  uint8_t symbol;
  uint8_t flags;
};
constexpr uint8_t kHuffmanEmit = 1;  // `symbol` was completed
constexpr uint8_t kHuffmanFail = 2;  // the bits contain EOS (RFC 7541 5.2: an error)

struct HuffmanDecodeTable {
  HuffmanStep steps[256][16];
  // A string may end in state s only if the path to s is the start of EOS (all ones) and
  // at most 7 bits long: that is the padding RFC 7541 5.2 allows.
  bool accepting[256];
};

HuffmanDecodeTable BuildHuffmanDecodeTable() {
  // The tree: child[node][bit] is an internal node (1..255) or 256 + symbol for a leaf; 0
  // (the root, never a child) marks a branch not yet built.
  int16_t child[256][2] = {};
  int internal_nodes = 1;
  for (int symbol = 0; symbol <= kEos; ++symbol) {
    const HuffmanCode& c = kHuffmanCodes[symbol];
    int node = 0;
    for (int i = c.bits - 1; i > 0; --i) {
      const int bit = (c.code >> i) & 1;
      if (child[node][bit] == 0) {
        CHECK(internal_nodes < 256);
        child[node][bit] = static_cast<int16_t>(internal_nodes++);
      }
      node = child[node][bit];
      CHECK(node < 256);  // no code is a prefix of another
    }
    CHECK(child[node][c.code & 1] == 0);
    child[node][c.code & 1] = static_cast<int16_t>(256 + symbol);
  }
  CHECK(internal_nodes == 256);  // 257 leaves: the tree is full

  HuffmanDecodeTable table = {};
  for (int state = 0; state < 256; ++state) {
    for (int nibble = 0; nibble < 16; ++nibble) {
      HuffmanStep& step = table.steps[state][nibble];
      int node = state;
      for (int i = 3; i >= 0; --i) {
        node = child[node][(nibble >> i) & 1];
        CHECK(node != 0);
        if (node >= 256) {
          if (node - 256 == kEos) step.flags |= kHuffmanFail;
          step.flags |= kHuffmanEmit;
          step.symbol = static_cast<uint8_t>(node - 256);
          node = 0;
        }
      }
      step.next = static_cast<uint8_t>(node);
    }
  }
  int node = 0;
  for (int depth = 0; depth <= 7; ++depth) {
    table.accepting[node] = true;
    node = child[node][1];
  }
  return table;
}

const HuffmanDecodeTable& HuffmanTable() {
  static const HuffmanDecodeTable table = BuildHuffmanDecodeTable();
  return table;
}

// Decodes `len` Huffman-coded octets into *out. False on EOS or invalid padding.
bool HuffmanDecode(const uint8_t* in, size_t len, std::string* out) {
  const HuffmanDecodeTable& table = HuffmanTable();
  // Every symbol takes at least 5 bits.
  out->resize(len * 8 / 5);
  char* const begin = out->data();
  char* dst = begin;
  uint8_t state = 0;
  for (const uint8_t* end = in + len; in != end; ++in) {
    const HuffmanStep& high = table.steps[state][*in >> 4];
    const HuffmanStep& low = table.steps[high.next][*in & 0x0f];
    if ((high.flags | low.flags) & kHuffmanFail) return false;
    if (high.flags & kHuffmanEmit) *dst++ = static_cast<char>(high.symbol);
    if (low.flags & kHuffmanEmit) *dst++ = static_cast<char>(low.symbol);
    state = low.next;
  }
  out->resize(static_cast<size_t>(dst - begin));
  return table.accepting[state];
}

absl::Status Malformed(const char* what) {
  return absl::InvalidArgumentError(std::string("hpack: ") + what);
}

// A cursor over a header block.
struct Reader {
  const uint8_t* p;
  const uint8_t* end;
};

// Reads an integer with a prefix_bits-bit prefix (RFC 7541 5.1) starting at r->p, which
// must not be at the end. Values must fit in 32 bits, and the encoding must not end in a
// redundant zero octet: both bound the encoding to the prefix and 5 continuation octets.
absl::Status ReadInteger(Reader* r, int prefix_bits, uint32_t* out) {
  const uint32_t prefix_max = (1u << prefix_bits) - 1;
  const uint32_t prefix = *r->p++ & prefix_max;
  if (prefix < prefix_max) {
    *out = prefix;
    return absl::OkStatus();
  }
  uint64_t value = prefix;
  for (int shift = 0;; shift += 7) {
    if (shift > 28) return Malformed("integer encoding too long");
    if (r->p == r->end) return Malformed("truncated integer");
    const uint8_t octet = *r->p++;
    value += static_cast<uint64_t>(octet & 0x7f) << shift;
    if (value > UINT32_MAX) return Malformed("integer exceeds 32 bits");
    if ((octet & 0x80) == 0) {
      if (octet == 0 && shift > 0) return Malformed("integer encoding not minimal");
      *out = static_cast<uint32_t>(value);
      return absl::OkStatus();
    }
  }
}

// Reads a string literal (RFC 7541 5.2) into *out.
absl::Status ReadString(Reader* r, std::string* out) {
  if (r->p == r->end) return Malformed("truncated string");
  const bool huffman = (*r->p & 0x80) != 0;
  uint32_t len;
  if (absl::Status s = ReadInteger(r, 7, &len); !s.ok()) return s;
  if (len > static_cast<size_t>(r->end - r->p)) return Malformed("truncated string");
  if (huffman) {
    if (!HuffmanDecode(r->p, len, out)) return Malformed("invalid Huffman code");
  } else {
    out->assign(reinterpret_cast<const char*>(r->p), len);
  }
  r->p += len;
  return absl::OkStatus();
}

void AppendInteger(uint8_t first_octet_flags, int prefix_bits, uint64_t value,
                   std::string* out) {
  const uint32_t prefix_max = (1u << prefix_bits) - 1;
  if (value < prefix_max) {
    out->push_back(static_cast<char>(first_octet_flags | value));
    return;
  }
  out->push_back(static_cast<char>(first_octet_flags | prefix_max));
  value -= prefix_max;
  while (value >= 0x80) {
    out->push_back(static_cast<char>(0x80 | (value & 0x7f)));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

void AppendRawString(std::string_view s, std::string* out) {
  AppendInteger(0x00, 7, s.size(), out);
  out->append(s);
}

size_t EntrySize(std::string_view name, std::string_view value) {
  return name.size() + value.size() + kHpackEntryOverhead;
}

// An evicted slot keeps a string's buffer for reuse only up to this size, so that one big
// entry does not pin its memory for the connection's life.
constexpr size_t kRetainedStringBytes = 256;

void Release(std::string* s) {
  if (s->capacity() > kRetainedStringBytes) std::string().swap(*s);
}

}  // namespace

HpackDecoder::HpackDecoder(uint32_t max_table_size)
    : max_table_size_(max_table_size), capacity_(max_table_size) {}

bool HpackDecoder::Lookup(uint32_t index, std::string_view* name,
                          std::string_view* value) const {
  if (index == 0) return false;
  if (index <= kStaticTableLength) {
    *name = kStaticTable[index - 1][0];
    *value = kStaticTable[index - 1][1];
    return true;
  }
  const size_t newest_first = index - kStaticTableLength - 1;
  if (newest_first >= count_) return false;
  const Entry& e = ring_[(oldest_ + count_ - 1 - newest_first) & (ring_.size() - 1)];
  *name = e.name;
  *value = e.value;
  return true;
}

void HpackDecoder::EvictTo(size_t target_size) {
  while (size_ > target_size) {
    Entry& e = ring_[oldest_];
    size_ -= EntrySize(e.name, e.value);
    Release(&e.name);
    Release(&e.value);
    oldest_ = (oldest_ + 1) & (ring_.size() - 1);
    --count_;
  }
}

void HpackDecoder::Insert(const std::string& name, const std::string& value) {
  const size_t entry_size = EntrySize(name, value);
  if (entry_size > capacity_) {
    // RFC 7541 4.4: not an error; the table ends up empty.
    EvictTo(0);
    return;
  }
  EvictTo(capacity_ - entry_size);
  if (count_ == ring_.size()) {
    std::vector<Entry> bigger(ring_.empty() ? 8 : 2 * ring_.size());
    for (size_t i = 0; i < count_; ++i) {
      bigger[i] = std::move(ring_[(oldest_ + i) & (ring_.size() - 1)]);
    }
    ring_ = std::move(bigger);
    oldest_ = 0;
  }
  Entry& slot = ring_[(oldest_ + count_) & (ring_.size() - 1)];
  slot.name.assign(name);
  slot.value.assign(value);
  ++count_;
  size_ += entry_size;
}

absl::Status HpackDecoder::Decode(std::string_view block, size_t max_list_bytes,
                                  std::vector<HeaderField>* out) {
  Reader r{reinterpret_cast<const uint8_t*>(block.data()),
           reinterpret_cast<const uint8_t*>(block.data()) + block.size()};
  bool field_seen = false;
  size_t list_bytes = 0;
  bool exhausted = false;
  HeaderField dropped;  // where fields past max_list_bytes are decoded
  while (r.p != r.end) {
    const uint8_t first = *r.p;
    if ((first & 0xe0) == 0x20) {
      // Dynamic table size update (RFC 7541 6.3), allowed only before the first field
      // (4.2).
      if (field_seen) return Malformed("dynamic table size update after a field");
      uint32_t new_capacity;
      if (absl::Status s = ReadInteger(&r, 5, &new_capacity); !s.ok()) return s;
      if (new_capacity > max_table_size_) {
        return Malformed("dynamic table size update above SETTINGS_HEADER_TABLE_SIZE");
      }
      capacity_ = new_capacity;
      EvictTo(capacity_);
      continue;
    }
    field_seen = true;
    HeaderField* field = exhausted ? &dropped : &out->emplace_back();
    bool add_to_table = false;
    if (first & 0x80) {
      // Indexed field (6.1).
      uint32_t index;
      if (absl::Status s = ReadInteger(&r, 7, &index); !s.ok()) return s;
      std::string_view name, value;
      if (!Lookup(index, &name, &value)) return Malformed("index out of range");
      field->name.assign(name);
      field->value.assign(value);
    } else {
      // Literal with incremental indexing (6.2.1, 01xxxxxx), without indexing (6.2.2,
      // 0000xxxx) or never indexed (6.2.3, 0001xxxx).
      add_to_table = (first & 0x40) != 0;
      uint32_t name_index;
      if (absl::Status s = ReadInteger(&r, add_to_table ? 6 : 4, &name_index); !s.ok()) {
        return s;
      }
      if (name_index == 0) {
        if (absl::Status s = ReadString(&r, &field->name); !s.ok()) return s;
      } else {
        std::string_view name, unused_value;
        if (!Lookup(name_index, &name, &unused_value)) return Malformed("index out of range");
        field->name.assign(name);
      }
      if (absl::Status s = ReadString(&r, &field->value); !s.ok()) return s;
    }
    list_bytes += EntrySize(field->name, field->value);
    if (!exhausted && list_bytes > max_list_bytes) {
      exhausted = true;
      dropped = std::move(out->back());
      out->pop_back();
      field = &dropped;
    }
    if (add_to_table) Insert(field->name, field->value);
  }
  if (exhausted) {
    return absl::ResourceExhaustedError("hpack: header list larger than the limit");
  }
  return absl::OkStatus();
}

void HpackEncoder::EncodeTableSizeUpdate(uint32_t max_size, std::string* out) {
  AppendInteger(0x20, 5, max_size, out);
}

void HpackEncoder::Encode(std::string_view name, std::string_view value, std::string* out) {
  for (size_t i = 0; i < kStaticTableLength; ++i) {
    if (kStaticTable[i][0] != name) continue;
    // Entries with the same name are adjacent in the static table.
    for (size_t j = i; j < kStaticTableLength && kStaticTable[j][0] == name; ++j) {
      if (kStaticTable[j][1] == value) {
        AppendInteger(0x80, 7, j + 1, out);  // indexed field (6.1)
        return;
      }
    }
    AppendInteger(0x00, 4, i + 1, out);  // literal without indexing, indexed name (6.2.2)
    AppendRawString(value, out);
    return;
  }
  out->push_back(0x00);  // literal without indexing, new name (6.2.2)
  AppendRawString(name, out);
  AppendRawString(value, out);
}

void HuffmanEncode(std::string_view in, std::string* out) {
  uint64_t bits = 0;  // the low `pending` bits are not yet written
  int pending = 0;
  for (const char ch : in) {
    const HuffmanCode& c = kHuffmanCodes[static_cast<uint8_t>(ch)];
    bits = (bits << c.bits) | c.code;
    pending += c.bits;
    while (pending >= 8) {
      pending -= 8;
      out->push_back(static_cast<char>(bits >> pending));
    }
  }
  if (pending > 0) {
    const int pad = 8 - pending;
    out->push_back(static_cast<char>((bits << pad) | ((1u << pad) - 1)));
  }
}

}  // namespace geoetcd::h2
