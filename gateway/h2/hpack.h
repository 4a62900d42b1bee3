// HPACK (RFC 7541): the header compression of HTTP/2, for geoetcd's native gRPC transport.
//
// HpackDecoder keeps the one piece of connection state HPACK has, the dynamic table the
// peer's encoder fills, and turns each header block back into an ordered field list.
// HpackEncoder is stateless on purpose: it never inserts into the dynamic table, so our
// responses do not depend on the peer's SETTINGS_HEADER_TABLE_SIZE and one encoder serves
// every stream of every connection.
#ifndef GEOETCD_GATEWAY_H2_HPACK_H_
#define GEOETCD_GATEWAY_H2_HPACK_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "gateway/h2/header_field.h"

namespace geoetcd::h2 {

class HpackDecoder {
 public:
  // max_table_size: the SETTINGS_HEADER_TABLE_SIZE this side advertised (default 4096).
  // The dynamic table starts at that size; the peer may shrink it (and grow it back up to
  // it) with dynamic table size updates.
  explicit HpackDecoder(uint32_t max_table_size = 4096);

  // Decodes one complete header block (HEADERS + CONTINUATION payloads concatenated),
  // appending fields to *out in order. Returns:
  //  - OK;
  //  - InvalidArgument on any malformed input (this is a connection error COMPRESSION_ERROR
  //    for the caller; state afterwards is unspecified);
  //  - ResourceExhausted when the decoded list's size (sum of name+value+32 per field, RFC
  //    7540 6.5.2) exceeds max_list_bytes: decoding still runs to the end so the dynamic
  //    table stays in sync, the field that crosses the limit and every field after it are
  //    dropped, and the caller answers the stream with an error while the connection stays
  //    usable.
  absl::Status Decode(std::string_view block, size_t max_list_bytes,
                      std::vector<HeaderField>* out);

  // Current dynamic table size in RFC octets (for tests).
  size_t table_size() const { return size_; }

 private:
  // The dynamic table is a ring of entries, oldest first. An evicted slot keeps its
  // strings' buffers, so a steady stream of insertions stops allocating once warm.
  struct Entry {
    std::string name;
    std::string value;
  };

  // The field at HPACK index `index` (1-based: the static table, then the dynamic table
  // newest first). False if the index is 0 or past the end of the dynamic table.
  bool Lookup(uint32_t index, std::string_view* name, std::string_view* value) const;
  // Adds a field as the newest entry, evicting the oldest ones to make room (RFC 7541 4.4).
  void Insert(const std::string& name, const std::string& value);
  // Evicts the oldest entries until the table's size is at most target_size.
  void EvictTo(size_t target_size);

  const uint32_t max_table_size_;
  size_t capacity_;    // the table's current maximum size (<= max_table_size_)
  size_t size_ = 0;    // sum of the entries' RFC sizes
  std::vector<Entry> ring_;  // size is 0 or a power of two
  size_t oldest_ = 0;  // ring_ slot of the oldest entry
  size_t count_ = 0;   // entries in the table
};

class HpackEncoder {
 public:
  // Appends one field. Never uses or changes the dynamic table (so the peer's table size
  // does not matter): exact static-table match -> indexed field; static name match ->
  // literal without indexing with indexed name; otherwise literal without indexing with a
  // literal name. Strings are sent raw (no Huffman).
  static void Encode(std::string_view name, std::string_view value, std::string* out);
  // Appends a dynamic table size update (RFC 7541 6.3) to `max_size`: it must lead the next
  // header block after the peer lowers SETTINGS_HEADER_TABLE_SIZE below what we may use.
  static void EncodeTableSizeUpdate(uint32_t max_size, std::string* out);
};

// Appends the Huffman coding (RFC 7541 5.2, Appendix B) of `in`, padded with the most
// significant bits of EOS to a whole octet, without a length prefix. HpackEncoder does not
// use it (raw strings cost the peer nothing to decode); the tests use it to reach every
// symbol of the decoder's code.
void HuffmanEncode(std::string_view in, std::string* out);

}  // namespace geoetcd::h2

#endif  // GEOETCD_GATEWAY_H2_HPACK_H_
