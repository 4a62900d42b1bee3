// HTTP/2 framing (RFC 9113 §4, §6): the nine-byte frame header, the frame and error codes
// gRPC uses, and appenders that write whole frames into an output buffer. No state lives
// here; gateway/h2/connection.h owns the connection's state machine.
#ifndef GEOETCD_GATEWAY_H2_FRAME_H_
#define GEOETCD_GATEWAY_H2_FRAME_H_

#include <cstdint>
#include <string>
#include <initializer_list>
#include <string_view>
#include <utility>

namespace geoetcd::h2 {

inline constexpr std::string_view kClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
inline constexpr size_t kFrameHeaderBytes = 9;
inline constexpr uint32_t kDefaultMaxFrameSize = 16384;
inline constexpr uint32_t kMaxAllowedFrameSize = (1u << 24) - 1;
inline constexpr uint32_t kDefaultInitialWindow = 65535;
inline constexpr int64_t kMaxWindow = (1ll << 31) - 1;

enum class FrameType : uint8_t {
  kData = 0,
  kHeaders = 1,
  kPriority = 2,
  kRstStream = 3,
  kSettings = 4,
  kPushPromise = 5,
  kPing = 6,
  kGoAway = 7,
  kWindowUpdate = 8,
  kContinuation = 9,
};

namespace flags {
inline constexpr uint8_t kEndStream = 0x1;
inline constexpr uint8_t kAck = 0x1;
inline constexpr uint8_t kEndHeaders = 0x4;
inline constexpr uint8_t kPadded = 0x8;
inline constexpr uint8_t kPriority = 0x20;
}  // namespace flags

enum class Setting : uint16_t {
  kHeaderTableSize = 1,
  kEnablePush = 2,
  kMaxConcurrentStreams = 3,
  kInitialWindowSize = 4,
  kMaxFrameSize = 5,
  kMaxHeaderListSize = 6,
};

enum class ErrorCode : uint32_t {
  kNoError = 0,
  kProtocolError = 1,
  kInternalError = 2,
  kFlowControlError = 3,
  kSettingsTimeout = 4,
  kStreamClosed = 5,
  kFrameSizeError = 6,
  kRefusedStream = 7,
  kCancel = 8,
  kCompressionError = 9,
  kConnectError = 10,
  kEnhanceYourCalm = 11,
  kInadequateSecurity = 12,
  kHttp11Required = 13,
};

struct FrameHeader {
  uint32_t length = 0;
  FrameType type = FrameType::kData;
  uint8_t flags = 0;
  uint32_t stream_id = 0;
};

// Reads a frame header from the first kFrameHeaderBytes of `p`. The reserved bit is dropped.
FrameHeader ParseFrameHeader(const uint8_t* p);

inline uint32_t ReadU32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// Appenders: each writes one complete frame (header and payload) at the end of *out.
void AppendFrameHeader(std::string* out, uint32_t length, FrameType type, uint8_t flags,
                       uint32_t stream_id);
void AppendSettings(std::string* out, std::initializer_list<std::pair<Setting, uint32_t>> s);
void AppendSettingsAck(std::string* out);
void AppendPing(std::string* out, bool ack, const uint8_t opaque[8]);
void AppendWindowUpdate(std::string* out, uint32_t stream_id, uint32_t increment);
void AppendRstStream(std::string* out, uint32_t stream_id, ErrorCode code);
void AppendGoAway(std::string* out, uint32_t last_stream_id, ErrorCode code,
                  std::string_view debug);
// A header block split into HEADERS + CONTINUATION frames of at most max_frame bytes.
void AppendHeaders(std::string* out, uint32_t stream_id, std::string_view block, bool end_stream,
                   uint32_t max_frame);
// DATA frames carrying `data`, split at max_frame; END_STREAM on the last when asked.
void AppendData(std::string* out, uint32_t stream_id, std::string_view data, bool end_stream,
                uint32_t max_frame);

}  // namespace geoetcd::h2

#endif  // GEOETCD_GATEWAY_H2_FRAME_H_
