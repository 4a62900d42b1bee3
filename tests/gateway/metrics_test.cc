#include "gateway/metrics.h"

#include <string>
#include <thread>
#include <vector>

#include "gateway/rpc_metrics.h"
#include "gtest/gtest.h"

namespace geoetcd {
namespace {

using Type = MetricsWriter::Type;

TEST(MetricsWriterTest, CounterAndGaugeFamilies) {
  MetricsWriter w;
  w.Family("a_total", "Things counted.", Type::kCounter);
  w.Sample({}, 3);
  w.Family("b", "A level.", Type::kGauge);
  w.Sample({{"x", "1"}, {"y", "two"}}, 0.5);
  EXPECT_EQ(w.text(),
            "# HELP a_total Things counted.\n"
            "# TYPE a_total counter\n"
            "a_total 3\n"
            "# HELP b A level.\n"
            "# TYPE b gauge\n"
            "b{x=\"1\",y=\"two\"} 0.5\n");
}

TEST(MetricsWriterTest, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  // HELP escapes backslash and newline but not quotes.
  EXPECT_EQ(EscapeHelp("say \"hi\"\\\n"), "say \"hi\"\\\\\\n");
  MetricsWriter w;
  w.Family("m", "line one\nline two", Type::kGauge);
  w.Sample({{"path", "C:\\dir \"x\"\n"}}, 1);
  EXPECT_EQ(w.text(),
            "# HELP m line one\\nline two\n"
            "# TYPE m gauge\n"
            "m{path=\"C:\\\\dir \\\"x\\\"\\n\"} 1\n");
}

TEST(MetricsWriterTest, FormatsValuesAsPrometheusParsesThem) {
  EXPECT_EQ(FormatMetricValue(0), "0");
  EXPECT_EQ(FormatMetricValue(42), "42");
  EXPECT_EQ(FormatMetricValue(0.1), "0.1");
  EXPECT_EQ(FormatMetricValue(1e-4), "0.0001");
  EXPECT_EQ(FormatMetricValue(10), "10");
  EXPECT_EQ(FormatMetricValue(8.192), "8.192");
  EXPECT_EQ(FormatMetricValue(102400), "102400");
  EXPECT_EQ(FormatMetricValue(-2.5), "-2.5");
  // Go's shortest 'g' switches to exponent form at 1e6 and below 1e-4, as etcd prints.
  EXPECT_EQ(FormatMetricValue(1048576), "1.048576e+06");
  EXPECT_EQ(FormatMetricValue(2.147483648e9), "2.147483648e+09");
  EXPECT_EQ(FormatMetricValue(2.2773e-05), "2.2773e-05");
  EXPECT_EQ(FormatMetricValue(18446744073709551615.0), "1.8446744073709552e+19");
  EXPECT_EQ(FormatMetricValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(FormatMetricValue(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(FormatMetricValue(0.0 / 0.0), "NaN");
}

TEST(MetricsWriterTest, ValidatesNames) {
  EXPECT_TRUE(IsValidMetricName("etcd_server_has_leader"));
  EXPECT_TRUE(IsValidMetricName("a:b_c9"));
  EXPECT_FALSE(IsValidMetricName(""));
  EXPECT_FALSE(IsValidMetricName("9a"));
  EXPECT_FALSE(IsValidMetricName("a-b"));
}

TEST(HistogramTest, BucketsAreCumulativeAndEndInInf) {
  Histogram h({0.1, 1, 10});
  for (double v : {0.05, 0.1, 0.5, 5.0, 50.0}) h.Observe(v);
  HistogramSnapshot s = h.Snapshot();
  // An observation equal to a bound falls in that bound's bucket (le: less or equal).
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{2, 3, 4}));
  EXPECT_EQ(s.count, 5u);
  EXPECT_DOUBLE_EQ(s.sum, 55.65);
  MetricsWriter w;
  w.Family("lat_seconds", "Latency.", Type::kHistogram);
  w.HistogramSample({{"op", "put"}}, s);
  EXPECT_EQ(w.text(),
            "# HELP lat_seconds Latency.\n"
            "# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{op=\"put\",le=\"0.1\"} 2\n"
            "lat_seconds_bucket{op=\"put\",le=\"1\"} 3\n"
            "lat_seconds_bucket{op=\"put\",le=\"10\"} 4\n"
            "lat_seconds_bucket{op=\"put\",le=\"+Inf\"} 5\n"
            "lat_seconds_sum{op=\"put\"} 55.65\n"
            "lat_seconds_count{op=\"put\"} 5\n");
}

TEST(HistogramTest, EmptyHistogramHasZeroBucketsWithoutLabels) {
  Histogram h(ExponentialBuckets(0.001, 2, 3));
  MetricsWriter w;
  w.Family("f_seconds", "F.", Type::kHistogram);
  w.HistogramSample({}, h.Snapshot());
  EXPECT_EQ(w.text(),
            "# HELP f_seconds F.\n"
            "# TYPE f_seconds histogram\n"
            "f_seconds_bucket{le=\"0.001\"} 0\n"
            "f_seconds_bucket{le=\"0.002\"} 0\n"
            "f_seconds_bucket{le=\"0.004\"} 0\n"
            "f_seconds_bucket{le=\"+Inf\"} 0\n"
            "f_seconds_sum 0\n"
            "f_seconds_count 0\n");
}

TEST(HistogramTest, ConcurrentObservationsAreAllCounted) {
  Histogram h({1});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h] {
      for (int i = 0; i < 10000; ++i) h.Observe(0.5);
    });
  }
  for (auto& t : threads) t.join();
  HistogramSnapshot s = h.Snapshot();
  EXPECT_EQ(s.count, 40000u);
  EXPECT_EQ(s.cumulative[0], 40000u);
  EXPECT_DOUBLE_EQ(s.sum, 20000);
}

TEST(RpcMetricsTest, CountsByServiceMethodTypeAndGoCodeName) {
  RpcMetrics rpc;
  rpc.Started("/etcdserverpb.KV/Put", RpcMetrics::kUnary);
  rpc.Handled("/etcdserverpb.KV/Put", RpcMetrics::kUnary, 0);
  rpc.Started("/etcdserverpb.KV/Put", RpcMetrics::kUnary);
  rpc.Handled("/etcdserverpb.KV/Put", RpcMetrics::kUnary, 8);
  MetricsWriter w;
  rpc.Render(&w);
  const std::string& t = w.text();
  EXPECT_NE(t.find("grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Put\","
                   "grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 1\n"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("grpc_server_handled_total{grpc_code=\"ResourceExhausted\",grpc_method="
                   "\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 1\n"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("grpc_server_started_total{grpc_method=\"Put\",grpc_service="
                   "\"etcdserverpb.KV\",grpc_type=\"unary\"} 2\n"),
            std::string::npos)
      << t;
  EXPECT_EQ(GrpcCodeName(16), "Unauthenticated");
}

TEST(RpcMetricsTest, StopsAddingMethodsAtItsBound) {
  RpcMetrics rpc;
  for (size_t i = 0; i < RpcMetrics::kMethodsMax; ++i) {
    ASSERT_NE(rpc.Find("/s/m" + std::to_string(i), RpcMetrics::kUnary), nullptr);
  }
  EXPECT_EQ(rpc.Find("/s/one-too-many", RpcMetrics::kUnary), nullptr);
  RpcMetrics::Started(nullptr);  // an uncounted call is a no-op
  RpcMetrics::Handled(nullptr, 0);
  // Known methods keep counting, and the same path under another type is another series.
  RpcMetrics::Method* m = rpc.Find("/s/m0", RpcMetrics::kUnary);
  RpcMetrics::Started(m);
  EXPECT_EQ(m->started.load(), 1u);
  EXPECT_EQ(rpc.Find("/s/m0", RpcMetrics::kUnary), m);
  // Codes beyond gRPC's are counted as Unknown.
  RpcMetrics::Handled(m, 77);
  EXPECT_EQ(m->handled[2].load(), 1u);
  EXPECT_EQ(GrpcCodeName(99), "Code(99)");
}

}  // namespace
}  // namespace geoetcd
