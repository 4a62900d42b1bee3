#include "gateway/h2/call.h"

#include <nghttp2/nghttp2.h>

#include <cstdint>

#include "gateway/h2/connection.h"

namespace geoetcd::h2 {

const std::vector<HeaderField>& CallStart::metadata() const {
  if (call->metadata_.empty() && !call->raw_metadata_.empty()) {
    call->metadata_.reserve(call->raw_metadata_.size());
    for (const Call::RawField& f : call->raw_metadata_) {
      const nghttp2_vec name = nghttp2_rcbuf_get_buf(f.name);
      const nghttp2_vec value = nghttp2_rcbuf_get_buf(f.value);
      call->metadata_.push_back(
          HeaderField{std::string(reinterpret_cast<const char*>(name.base), name.len),
                      std::string(reinterpret_cast<const char*>(value.base), value.len)});
    }
  }
  return call->metadata_;
}

Call::~Call() { live_->fetch_sub(1, std::memory_order_relaxed); }
bool Call::Write(std::string_view message) { return conn_->WriteMessage(this, message, false); }
void Call::Reply(std::string_view message) { conn_->WriteMessage(this, message, true); }
void Call::Finish(int code, std::string_view message) { conn_->FinishCall(this, code, message); }
size_t Call::blocked_bytes() const { return conn_->BlockedBytes(this); }
void Call::SetOnWritable(size_t low_watermark, std::function<void()> fn) {
  conn_->SetOnWritable(this, low_watermark, std::move(fn));
}
bool Call::cancelled() const { return conn_->Cancelled(this); }

std::string PercentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

int64_t ParseGrpcTimeout(std::string_view value) {
  if (value.size() < 2 || value.size() > 9) return -1;
  int64_t n = 0;
  for (char c : value.substr(0, value.size() - 1)) {
    if (c < '0' || c > '9') return -1;
    n = n * 10 + (c - '0');
  }
  int64_t unit_ns;
  switch (value.back()) {
    case 'H': unit_ns = 3600'000'000'000; break;
    case 'M': unit_ns = 60'000'000'000; break;
    case 'S': unit_ns = 1'000'000'000; break;
    case 'm': unit_ns = 1'000'000; break;
    case 'u': unit_ns = 1'000; break;
    case 'n': unit_ns = 1; break;
    default: return -1;
  }
  // At most 8 digits: 99,999,999 hours would overflow; clamp to ~292 years.
  if (n > INT64_MAX / unit_ns) return INT64_MAX;
  return n * unit_ns;
}

}  // namespace geoetcd::h2
