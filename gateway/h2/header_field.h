// One HTTP/2 header field as the transport hands it to methods (and as the raw test client and
// geoetcd-bench's HPACK codec decode it).
#ifndef GEOETCD_GATEWAY_H2_HEADER_FIELD_H_
#define GEOETCD_GATEWAY_H2_HEADER_FIELD_H_

#include <cstddef>
#include <string>

namespace geoetcd::h2 {

struct HeaderField {
  std::string name;
  std::string value;
};

// RFC 7541 4.1: an entry's size is its name and value lengths plus 32 octets of overhead.
// RFC 9113 6.5.2 measures SETTINGS_MAX_HEADER_LIST_SIZE the same way.
inline constexpr size_t kHpackEntryOverhead = 32;

}  // namespace geoetcd::h2

#endif  // GEOETCD_GATEWAY_H2_HEADER_FIELD_H_
