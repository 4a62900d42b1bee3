// Bytes: an immutable byte string held in one exact-size allocation.
//
// The in-memory index keeps every value of every key version, so the value's container is
// the index's biggest per-key cost after the value itself. std::string spends 32 bytes in
// place plus a heap block rounded up past size + 1; Bytes spends 16 in place and allocates
// exactly size. At 1M keys of 256 B that is about 50 MB of resident memory.
#ifndef GEOETCD_CORE_BYTES_H_
#define GEOETCD_CORE_BYTES_H_

#include <cstdint>
#include <cstring>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>

namespace geoetcd {

class Bytes {
 public:
  Bytes() = default;
  explicit Bytes(std::string_view s) { Assign(s); }
  Bytes(const Bytes& other) { Assign(other.view()); }
  Bytes(Bytes&& other) noexcept = default;
  Bytes& operator=(const Bytes& other) {
    if (this != &other) Assign(other.view());
    return *this;
  }
  Bytes& operator=(Bytes&& other) noexcept = default;
  Bytes& operator=(std::string_view s) {
    Assign(s);
    return *this;
  }

  const char* data() const { return data_ ? data_.get() : ""; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::string_view view() const { return std::string_view(data(), size_); }
  operator std::string_view() const { return view(); }  // NOLINT: reads like a string
  std::string str() const { return std::string(view()); }
  int compare(std::string_view other) const { return view().compare(other); }

  friend bool operator==(const Bytes& a, const Bytes& b) { return a.view() == b.view(); }
  friend bool operator<(const Bytes& a, const Bytes& b) { return a.view() < b.view(); }
  friend bool operator==(const Bytes& a, std::string_view b) { return a.view() == b; }
  friend std::ostream& operator<<(std::ostream& os, const Bytes& b) { return os << b.view(); }

 private:
  void Assign(std::string_view s) {
    size_ = s.size();
    if (s.empty()) {
      data_.reset();
      return;
    }
    data_.reset(new char[s.size()]);
    std::memcpy(data_.get(), s.data(), s.size());
  }

  std::unique_ptr<char[]> data_;
  size_t size_ = 0;
};

}  // namespace geoetcd

#endif  // GEOETCD_CORE_BYTES_H_
