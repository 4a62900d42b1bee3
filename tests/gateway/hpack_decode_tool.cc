// Feeds header blocks to one HpackDecoder, for tests/gateway/hpack_differential_test.py.
// stdin: repeated [4-byte big-endian length][header block]. stdout, per block, either
// "OK <fields> <table size>" followed by one "name<TAB>value" line per field, or "ERR <why>".
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "gateway/h2/hpack.h"

int main() {
  geoetcd::h2::HpackDecoder decoder(4096);
  unsigned char prefix[4];
  while (std::fread(prefix, 1, 4, stdin) == 4) {
    const uint32_t len = (uint32_t{prefix[0]} << 24) | (uint32_t{prefix[1]} << 16) |
                         (uint32_t{prefix[2]} << 8) | prefix[3];
    std::string block(len, '\0');
    if (len > 0 && std::fread(block.data(), 1, len, stdin) != len) return 2;
    std::vector<geoetcd::h2::HeaderField> fields;
    const absl::Status s = decoder.Decode(block, size_t{1} << 30, &fields);
    if (!s.ok()) {
      std::printf("ERR %s\n", std::string(s.message()).c_str());
    } else {
      std::printf("OK %zu %zu\n", fields.size(), decoder.table_size());
      for (const auto& f : fields) std::printf("%s\t%s\n", f.name.c_str(), f.value.c_str());
    }
    std::fflush(stdout);
  }
  return 0;
}
