// Prometheus metrics: a thread-safe Histogram the gateway updates, and
// a writer for the text exposition format 0.0.4, which /metrics serves.
//
// Format (https://prometheus.io/docs/instrumenting/exposition_formats/): per family one
// "# HELP name text" and one "# TYPE name counter|gauge|histogram" line, then its samples
// "name{label="value",...} number". In HELP text `\` and newline are escaped; in label values
// `\`, `"` and newline. A histogram has cumulative name_bucket{le="..."} samples ending in
// le="+Inf", then name_sum and name_count. Every family's samples are contiguous, so
// MetricsWriter takes one family at a time.
#ifndef GEOETCD_GATEWAY_METRICS_H_
#define GEOETCD_GATEWAY_METRICS_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace geoetcd {

// Label pairs in the order they are rendered. Names must match [a-zA-Z_][a-zA-Z0-9_]*.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// What a histogram holds at one instant: per upper bound the count of observations <= it
// (cumulative), plus every observation's sum and count.
struct HistogramSnapshot {
  std::vector<double> bounds;        // ascending, finite
  std::vector<uint64_t> cumulative;  // same size as bounds
  double sum = 0;
  uint64_t count = 0;
};

// Prometheus' exponential buckets: start, start*factor, ... (`count` bounds).
std::vector<double> ExponentialBuckets(double start, double factor, int count);

// A histogram with fixed bounds. Observe() may be called from any thread concurrently with
// Snapshot(); each bucket is counted atomically, so a snapshot may straddle an observation.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);
  HistogramSnapshot Snapshot() const;

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1 (the +Inf one)
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_bits_{0};  // a double, updated by compare-and-swap
};

// Renders the text format. Not thread-safe; one writer per scrape.
class MetricsWriter {
 public:
  enum class Type { kCounter, kGauge, kHistogram };

  // Starts a family. REQUIRES: a valid metric name, not started before in this writer.
  void Family(absl::string_view name, absl::string_view help, Type type);
  // A counter or gauge sample of the current family.
  void Sample(const MetricLabels& labels, double value);
  // A histogram of the current family: its buckets, sum and count.
  void HistogramSample(const MetricLabels& labels, const HistogramSnapshot& histogram);

  const std::string& text() const { return out_; }

 private:
  void Line(absl::string_view suffix, const MetricLabels& labels, const char* extra_name,
            const std::string& extra_value, double value);

  std::string out_;
  std::string family_;
};

// The Content-Type of MetricsWriter's output.
inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// Escaping and number formatting as the text format wants them (exposed for tests).
std::string EscapeHelp(absl::string_view text);
std::string EscapeLabelValue(absl::string_view value);
// Shortest text that parses back to the same double; "+Inf", "-Inf", "NaN" as Prometheus.
std::string FormatMetricValue(double value);
bool IsValidMetricName(absl::string_view name);

}  // namespace geoetcd

#endif  // GEOETCD_GATEWAY_METRICS_H_
