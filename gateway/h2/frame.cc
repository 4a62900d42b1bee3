#include "gateway/h2/frame.h"

#include <algorithm>

namespace geoetcd::h2 {
namespace {

void PutU32(std::string* out, uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  out->append(b, 4);
}

}  // namespace

FrameHeader ParseFrameHeader(const uint8_t* p) {
  FrameHeader h;
  h.length = (uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2];
  h.type = static_cast<FrameType>(p[3]);
  h.flags = p[4];
  h.stream_id = ReadU32(p + 5) & 0x7fffffffu;
  return h;
}

void AppendFrameHeader(std::string* out, uint32_t length, FrameType type, uint8_t flags,
                       uint32_t stream_id) {
  const char b[kFrameHeaderBytes] = {
      static_cast<char>(length >> 16),    static_cast<char>(length >> 8),
      static_cast<char>(length),          static_cast<char>(type),
      static_cast<char>(flags),           static_cast<char>((stream_id >> 24) & 0x7f),
      static_cast<char>(stream_id >> 16), static_cast<char>(stream_id >> 8),
      static_cast<char>(stream_id)};
  out->append(b, kFrameHeaderBytes);
}

void AppendSettings(std::string* out, std::initializer_list<std::pair<Setting, uint32_t>> s) {
  AppendFrameHeader(out, static_cast<uint32_t>(6 * s.size()), FrameType::kSettings, 0, 0);
  for (const auto& [id, value] : s) {
    const uint16_t n = static_cast<uint16_t>(id);
    out->push_back(static_cast<char>(n >> 8));
    out->push_back(static_cast<char>(n));
    PutU32(out, value);
  }
}

void AppendSettingsAck(std::string* out) {
  AppendFrameHeader(out, 0, FrameType::kSettings, flags::kAck, 0);
}

void AppendPing(std::string* out, bool ack, const uint8_t opaque[8]) {
  AppendFrameHeader(out, 8, FrameType::kPing, ack ? flags::kAck : 0, 0);
  out->append(reinterpret_cast<const char*>(opaque), 8);
}

void AppendWindowUpdate(std::string* out, uint32_t stream_id, uint32_t increment) {
  AppendFrameHeader(out, 4, FrameType::kWindowUpdate, 0, stream_id);
  PutU32(out, increment & 0x7fffffffu);
}

void AppendRstStream(std::string* out, uint32_t stream_id, ErrorCode code) {
  AppendFrameHeader(out, 4, FrameType::kRstStream, 0, stream_id);
  PutU32(out, static_cast<uint32_t>(code));
}

void AppendGoAway(std::string* out, uint32_t last_stream_id, ErrorCode code,
                  std::string_view debug) {
  AppendFrameHeader(out, static_cast<uint32_t>(8 + debug.size()), FrameType::kGoAway, 0, 0);
  PutU32(out, last_stream_id & 0x7fffffffu);
  PutU32(out, static_cast<uint32_t>(code));
  out->append(debug);
}

void AppendHeaders(std::string* out, uint32_t stream_id, std::string_view block, bool end_stream,
                   uint32_t max_frame) {
  FrameType type = FrameType::kHeaders;
  uint8_t f = end_stream ? flags::kEndStream : 0;
  do {
    const size_t n = std::min<size_t>(block.size(), max_frame);
    const bool last = n == block.size();
    AppendFrameHeader(out, static_cast<uint32_t>(n), type,
                      static_cast<uint8_t>(f | (last ? flags::kEndHeaders : 0)), stream_id);
    out->append(block.data(), n);
    block.remove_prefix(n);
    type = FrameType::kContinuation;
    f = 0;
  } while (!block.empty());
}

void AppendData(std::string* out, uint32_t stream_id, std::string_view data, bool end_stream,
                uint32_t max_frame) {
  do {
    const size_t n = std::min<size_t>(data.size(), max_frame);
    const bool last = n == data.size();
    AppendFrameHeader(out, static_cast<uint32_t>(n), FrameType::kData,
                      (last && end_stream) ? flags::kEndStream : 0, stream_id);
    out->append(data.data(), n);
    data.remove_prefix(n);
  } while (!data.empty());
}

}  // namespace geoetcd::h2
