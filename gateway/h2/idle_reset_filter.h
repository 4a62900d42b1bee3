// What geoetcd filters out of a connection's input before nghttp2 reads it.
#ifndef GEOETCD_GATEWAY_H2_IDLE_RESET_FILTER_H_
#define GEOETCD_GATEWAY_H2_IDLE_RESET_FILTER_H_

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace geoetcd::h2 {

// Drops RST_STREAM frames on streams the client never opened before nghttp2 sees them. RFC 9113
// makes them a connection error, and nghttp2 ends the connection, but gRPC core clients send
// them when a call is cancelled before its HEADERS went out (grpc/grpc#19655); like grpc-go's
// server (etcd's), geoetcd ignores them rather than fail every other call on the connection.
// It follows frame boundaries only: 9-byte frame headers, nothing of any payload.
class IdleResetFilter {
 public:
  // Appends to *out the pieces of `in` to give to the session, in order. Pieces point into
  // `in`, or into this filter for a frame header that arrived split.
  void Filter(std::string_view in, std::vector<std::string_view>* out);

 private:
  static constexpr size_t kPrefaceBytes = 24;
  static constexpr size_t kHeaderBytes = 9;
  // Whether the frame header is an RST_STREAM on an odd stream above every HEADERS seen.
  bool DropFrame(const uint8_t* header);

  size_t preface_left_ = kPrefaceBytes;
  size_t payload_left_ = 0;    // bytes of the current frame's payload still to pass
  size_t drop_left_ = 0;       // bytes of a dropped frame's payload still to skip
  uint8_t header_[kHeaderBytes] = {};
  size_t header_len_ = 0;      // bytes of a split frame header gathered in header_
  uint8_t completed_[kHeaderBytes] = {};  // the split header once whole, as given out
  uint32_t max_headers_stream_ = 0;
};

}  // namespace geoetcd::h2

#endif  // GEOETCD_GATEWAY_H2_IDLE_RESET_FILTER_H_
