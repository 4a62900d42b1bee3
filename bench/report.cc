#include "bench/report.h"

#include <sys/resource.h>

#include <cinttypes>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace geoetcd::bench {
namespace {

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// Finite numbers only: JSON has no NaN or infinity.
std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "0";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrFormat("%.0f", v);
  return absl::StrFormat("%.6g", v);
}

double Ms(int64_t ns) { return static_cast<double>(ns) / 1e6; }

// Fields shared by the whole run and every per-operation entry.
void AppendLatency(std::vector<std::string>* fields, const LatencyHistogram& h,
                   const std::string& prefix) {
  auto add = [&](const char* name, double v) {
    fields->push_back(absl::StrCat("\"", prefix, name, "\":", JsonNumber(v)));
  };
  add("p50_ms", Ms(h.ValueAtQuantile(0.50)));
  add("p90_ms", Ms(h.ValueAtQuantile(0.90)));
  add("p99_ms", Ms(h.ValueAtQuantile(0.99)));
  add("p999_ms", Ms(h.ValueAtQuantile(0.999)));
  add("max_ms", Ms(h.max_ns()));
  add("min_ms", Ms(h.min_ns()));
  add("mean_ms", h.mean_ns() / 1e6);
}

}  // namespace

std::string ToJson(const BenchOptions& o, const RunResult& r) {
  std::vector<std::string> f;
  auto num = [&](const char* name, double v) {
    f.push_back(absl::StrCat("\"", name, "\":", JsonNumber(v)));
  };
  auto str = [&](const char* name, const std::string& v) {
    f.push_back(absl::StrCat("\"", name, "\":", JsonString(v)));
  };
  str("workload", WorkloadName(o.workload));
  num("requests", static_cast<double>(r.requests));
  num("errors", static_cast<double>(r.errors));
  num("seconds", r.seconds);
  num("requests_per_sec", r.seconds > 0 ? r.requests / r.seconds : 0);
  AppendLatency(&f, r.latency, "");
  std::vector<std::string> codes;
  for (const auto& [code, n] : r.errors_by_code) {
    codes.push_back(absl::StrCat(JsonString(code), ":", n));
  }
  f.push_back(absl::StrCat("\"errors_by_code\":{", absl::StrJoin(codes, ","), "}"));
  for (const auto& [name, v] : r.extras) {
    f.push_back(absl::StrCat(JsonString(name), ":", JsonNumber(v)));
  }
  if (!r.ops.empty()) {
    std::vector<std::string> ops;
    for (const auto& [name, h] : r.ops) {
      std::vector<std::string> of;
      of.push_back(absl::StrCat("\"requests\":", h.count()));
      AppendLatency(&of, h, "");
      ops.push_back(absl::StrCat(JsonString(name), ":{", absl::StrJoin(of, ","), "}"));
    }
    f.push_back(absl::StrCat("\"ops\":{", absl::StrJoin(ops, ","), "}"));
  }
  num("client_cpu_seconds", r.client_cpu_seconds);
  num("process_cpu_seconds", r.process_cpu_seconds);
  num("process_wall_seconds", r.process_wall_seconds);

  // Configuration, so a JSON file alone says what was measured.
  const bool rocks = o.workload == Workload::kRocksDbSync;
  if (!rocks && o.workload != Workload::kGrpcEmpty) {
    str("endpoints", absl::StrJoin(o.endpoints, ","));
  }
  if (o.workload == Workload::kPut || o.workload == Workload::kRange ||
      o.workload == Workload::kTxnPut || o.workload == Workload::kMixed) {
    str("transport", TransportName(o.transport));
  }
  num("conns", o.conns);
  num("clients", o.clients);
  num("threads", o.threads);
  if (o.duration_ns > 0) {
    num("duration_s", o.duration_ns / 1e9);
  } else {
    num("total", static_cast<double>(o.total));
  }
  num("warmup_s", o.warmup_ns / 1e9);
  num("rate", o.rate);
  num("key_size", o.key_size);
  num("val_size", o.val_size);
  num("key_space", static_cast<double>(o.key_space));
  f.push_back(absl::StrCat("\"sequential_keys\":", o.sequential_keys ? "true" : "false"));
  if (o.workload == Workload::kRange || o.workload == Workload::kMixed ||
      o.workload == Workload::kGrpcEmpty) {
    str("consistency", o.serializable ? "serializable" : "linearizable");
  }
  if (o.workload == Workload::kMixed) num("read_ratio", o.read_ratio);
  if (!o.metadata.empty()) {
    std::vector<std::string> md;
    for (const auto& [k, v] : o.metadata) md.push_back(absl::StrCat(k, "=", v));
    str("metadata", absl::StrJoin(md, ","));
  }
  if (o.workload == Workload::kWatch) {
    num("watchers", o.watchers);
    num("streams", o.streams);
  }
  if (o.workload == Workload::kLease) num("lease_ttl_s", static_cast<double>(o.lease_ttl_s));
  if (rocks) {
    num("writers", o.writers);
    num("batch_size", o.batch_size);
  }
  return absl::StrCat("{", absl::StrJoin(f, ","), "}\n");
}

std::string ToText(const BenchOptions& o, const RunResult& r) {
  std::string out;
  const bool watch = o.workload == Workload::kWatch;
  if (watch) {
    absl::StrAppendFormat(&out, "workload watch  watchers %d  streams %d  conns %d  threads %d\n",
                          o.watchers, o.streams, o.conns, o.threads);
  } else {
    absl::StrAppendFormat(&out, "workload %s  conns %d  clients %d  threads %d\n",
                          WorkloadName(o.workload), o.conns, o.clients, o.threads);
  }
  absl::StrAppendFormat(&out, "%s %" PRIu64 "  errors %" PRIu64 "  seconds %.2f  %.1f %s/s\n",
                        watch ? "events" : "requests", r.requests, r.errors, r.seconds,
                        r.seconds > 0 ? r.requests / r.seconds : 0.0, watch ? "events" : "req");
  auto line = [&](const std::string& name, const LatencyHistogram& h) {
    absl::StrAppendFormat(&out,
                          "%-12s p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f "
                          "ms (%" PRIu64 ")\n",
                          name, Ms(h.ValueAtQuantile(0.5)), Ms(h.ValueAtQuantile(0.9)),
                          Ms(h.ValueAtQuantile(0.99)), Ms(h.ValueAtQuantile(0.999)), Ms(h.max_ns()),
                          h.mean_ns() / 1e6, h.count());
  };
  line(watch ? "delivery" : "latency", r.latency);
  for (const auto& [name, h] : r.ops) line(name, h);
  for (const auto& [code, n] : r.errors_by_code) {
    absl::StrAppendFormat(&out, "error %s: %" PRIu64 "\n", code, n);
  }
  for (const auto& [name, v] : r.extras) absl::StrAppendFormat(&out, "%s %g\n", name, v);
  absl::StrAppendFormat(&out, "client cpu %.2f s (%.0f%% of one core)\n", r.client_cpu_seconds,
                        r.seconds > 0 ? 100 * r.client_cpu_seconds / r.seconds : 0.0);
  return out;
}

void ProgressBar::Update(double fraction, uint64_t done, uint64_t errors, double elapsed_s) {
  if (!enabled_) return;
  constexpr int kWidth = 30;
  if (fraction < 0) fraction = 0;
  if (fraction > 1) fraction = 1;
  const int filled = static_cast<int>(fraction * kWidth);
  std::string bar(filled, '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "\r[%s] %3.0f%%  %" PRIu64 " done  %.0f/s  errors %" PRIu64 "\033[K",
               bar.c_str(), fraction * 100, done, elapsed_s > 0 ? done / elapsed_s : 0.0, errors);
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::Finish() {
  if (!drawn_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  drawn_ = false;
}

double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

}  // namespace geoetcd::bench
