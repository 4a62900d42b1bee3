#include "gateway/h2/idle_reset_filter.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>

namespace geoetcd::h2 {

bool IdleResetFilter::DropFrame(const uint8_t* header) {
  const uint8_t type = header[3];
  const uint32_t stream_id = ((uint32_t{header[5]} << 24) | (uint32_t{header[6]} << 16) |
                              (uint32_t{header[7]} << 8) | uint32_t{header[8]}) &
                             0x7fffffffu;
  if (type == NGHTTP2_HEADERS) max_headers_stream_ = std::max(max_headers_stream_, stream_id);
  return type == NGHTTP2_RST_STREAM && (stream_id & 1) == 1 && stream_id > max_headers_stream_;
}

void IdleResetFilter::Filter(std::string_view in, std::vector<std::string_view>* out) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(in.data());
  const auto length_of = [](const uint8_t* h) {
    return (size_t{h[0]} << 16) | (size_t{h[1]} << 8) | size_t{h[2]};
  };
  size_t piece = 0;  // where the piece being gathered in `in` starts
  const auto cut = [&](size_t end) {
    if (end > piece) out->push_back(in.substr(piece, end - piece));
  };
  size_t pos = 0;
  while (pos < in.size()) {
    const size_t rest = in.size() - pos;
    if (preface_left_ > 0 || payload_left_ > 0) {
      size_t& left = preface_left_ > 0 ? preface_left_ : payload_left_;
      const size_t n = std::min(left, rest);
      left -= n;
      pos += n;
    } else if (drop_left_ > 0) {
      const size_t n = std::min(drop_left_, rest);
      drop_left_ -= n;
      pos += n;
      piece = pos;
    } else if (header_len_ == 0 && rest >= kHeaderBytes) {
      const uint8_t* h = bytes + pos;
      if (DropFrame(h)) {
        cut(pos);
        drop_left_ = length_of(h);
        pos += kHeaderBytes;
        piece = pos;
      } else {
        payload_left_ = length_of(h);
        pos += kHeaderBytes;
      }
    } else {
      // A frame header cut by the end of a read: gathered here until whole. It completes
      // only at the start of a later input, so one completed header per call is enough.
      cut(pos);
      const size_t n = std::min(kHeaderBytes - header_len_, rest);
      std::memcpy(header_ + header_len_, bytes + pos, n);
      header_len_ += n;
      pos += n;
      piece = pos;
      if (header_len_ < kHeaderBytes) break;
      header_len_ = 0;
      std::memcpy(completed_, header_, kHeaderBytes);
      if (DropFrame(completed_)) {
        drop_left_ = length_of(completed_);
      } else {
        payload_left_ = length_of(completed_);
        out->push_back(std::string_view(reinterpret_cast<const char*>(completed_), kHeaderBytes));
      }
    }
  }
  cut(pos);
}

}  // namespace geoetcd::h2
