#include "gateway/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/check.h"

namespace geoetcd {
namespace {

uint64_t DoubleBits(double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  return bits;
}

double BitsDouble(uint64_t bits) {
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

bool IsValidLabelName(absl::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = absl::ascii_isalpha(c) || c == '_' || (i > 0 && absl::ascii_isdigit(c));
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> bounds;
  double bound = start;
  for (int i = 0; i < count; ++i, bound *= factor) bounds.push_back(bound);
  return bounds;
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  CHECK(std::is_sorted(bounds_.begin(), bounds_.end()));
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double value) {
  const size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                       bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  uint64_t old_bits = sum_bits_.load(std::memory_order_relaxed);
  while (!sum_bits_.compare_exchange_weak(old_bits, DoubleBits(BitsDouble(old_bits) + value),
                                          std::memory_order_relaxed)) {
  }
  count_.fetch_add(1, std::memory_order_relaxed);
}

HistogramSnapshot Histogram::Snapshot() const {
  HistogramSnapshot s;
  s.bounds = bounds_;
  uint64_t running = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  running += buckets_[bounds_.size()].load(std::memory_order_relaxed);
  // The +Inf bucket is the count: rendering it from the buckets keeps the two consistent.
  s.count = running;
  s.sum = BitsDouble(sum_bits_.load(std::memory_order_relaxed));
  return s;
}

std::string EscapeHelp(absl::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

// As Go's strconv.FormatFloat(v, 'g', -1, 64), which client_golang (and so etcd) uses: the
// fewest significant digits that parse back to `value`, in exponent form only when the
// decimal exponent is below -4 or at least 6 (etcd prints le="102400" but
// le="1.048576e+06"). Bucket bounds are label values that queries match as strings, so
// "10" must not come out as "1e+01".
std::string FormatMetricValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == 0) return "0";
  char buf[48];
  int digits = 1;
  for (; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*e", digits - 1, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  const int exponent = std::atoi(std::strchr(buf, 'e') + 1);
  if (exponent < -4 || exponent >= 6) return buf;
  std::snprintf(buf, sizeof buf, "%.*f", std::max(digits - 1 - exponent, 0), value);
  return buf;
}

bool IsValidMetricName(absl::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok =
        absl::ascii_isalpha(c) || c == '_' || c == ':' || (i > 0 && absl::ascii_isdigit(c));
    if (!ok) return false;
  }
  return true;
}

void MetricsWriter::Family(absl::string_view name, absl::string_view help, Type type) {
  CHECK(IsValidMetricName(name));
  family_ = std::string(name);
  const char* type_name = type == Type::kCounter ? "counter"
                          : type == Type::kGauge ? "gauge"
                                                 : "histogram";
  absl::StrAppend(&out_, "# HELP ", name, " ", EscapeHelp(help), "\n# TYPE ", name, " ", type_name,
                  "\n");
}

void MetricsWriter::Line(absl::string_view suffix, const MetricLabels& labels,
                         const char* extra_name, const std::string& extra_value, double value) {
  absl::StrAppend(&out_, family_, suffix);
  const bool any = !labels.empty() || extra_name != nullptr;
  if (any) out_ += '{';
  bool first = true;
  for (const auto& [name, label_value] : labels) {
    CHECK(IsValidLabelName(name));
    absl::StrAppend(&out_, first ? "" : ",", name, "=\"", EscapeLabelValue(label_value), "\"");
    first = false;
  }
  if (extra_name != nullptr) {
    absl::StrAppend(&out_, first ? "" : ",", extra_name, "=\"", extra_value, "\"");
  }
  if (any) out_ += '}';
  absl::StrAppend(&out_, " ", FormatMetricValue(value), "\n");
}

void MetricsWriter::Sample(const MetricLabels& labels, double value) {
  CHECK(!family_.empty());
  Line("", labels, nullptr, "", value);
}

void MetricsWriter::HistogramSample(const MetricLabels& labels, const HistogramSnapshot& h) {
  CHECK(!family_.empty());
  CHECK(h.bounds.size() == h.cumulative.size());
  for (size_t i = 0; i < h.bounds.size(); ++i) {
    Line("_bucket", labels, "le", FormatMetricValue(h.bounds[i]),
         static_cast<double>(h.cumulative[i]));
  }
  Line("_bucket", labels, "le", "+Inf", static_cast<double>(h.count));
  Line("_sum", labels, nullptr, "", h.sum);
  Line("_count", labels, nullptr, "", static_cast<double>(h.count));
}

}  // namespace geoetcd
