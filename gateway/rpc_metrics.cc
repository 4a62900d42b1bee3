#include "gateway/rpc_metrics.h"

#include <cstring>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/support/server_interceptor.h"

namespace geoetcd {
namespace {

// "/etcdserverpb.KV/Range" -> {"etcdserverpb.KV", "Range"}; anything else -> {"unknown", it}.
std::pair<std::string, std::string> SplitMethod(absl::string_view full_method) {
  if (full_method.size() > 1 && full_method[0] == '/') {
    const size_t slash = full_method.find('/', 1);
    if (slash != absl::string_view::npos) {
      return {std::string(full_method.substr(1, slash - 1)),
              std::string(full_method.substr(slash + 1))};
    }
  }
  return {"unknown", std::string(full_method)};
}

const char* TypeName(grpc::experimental::ServerRpcInfo::Type type) {
  using Type = grpc::experimental::ServerRpcInfo::Type;
  switch (type) {
    case Type::UNARY:
      return RpcMetrics::kUnary;
    case Type::CLIENT_STREAMING:
      return RpcMetrics::kClientStream;
    case Type::SERVER_STREAMING:
      return RpcMetrics::kServerStream;
    case Type::BIDI_STREAMING:
      return RpcMetrics::kBidiStream;
  }
  return RpcMetrics::kUnary;
}

constexpr int kCodeCanceled = 1;

constexpr const char* kTypes[] = {RpcMetrics::kUnary, RpcMetrics::kClientStream,
                                  RpcMetrics::kServerStream, RpcMetrics::kBidiStream};

size_t TypeIndex(const char* type) {
  for (size_t i = 0; i < 4; ++i) {
    if (std::strcmp(type, kTypes[i]) == 0) return i;
  }
  return 0;
}

// One per call: counted as started when gRPC creates it, as handled when the status goes out
// (or as Canceled if the call ends without one).
class RpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit RpcMetricsInterceptor(RpcMetrics::Method* method) : method_(method) {
    RpcMetrics::Started(method_);
  }
  ~RpcMetricsInterceptor() override {
    if (!handled_) RpcMetrics::Handled(method_, kCodeCanceled);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS) &&
        !handled_) {
      handled_ = true;
      RpcMetrics::Handled(method_, static_cast<int>(methods->GetSendStatus().error_code()));
    }
    methods->Proceed();
  }

 private:
  RpcMetrics::Method* const method_;  // null when not counted
  bool handled_ = false;
};

class RpcMetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetricsInterceptorFactory(RpcMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcMetricsInterceptor(
        metrics_->Find(info->method() ? info->method() : "", TypeName(info->type())));
  }

 private:
  RpcMetrics* const metrics_;
};

}  // namespace

std::string GrpcCodeName(int code) {
  static constexpr const char* kNames[] = {
      "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
      "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
      "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
      "DataLoss", "Unauthenticated"};
  if (code >= 0 && code < static_cast<int>(sizeof(kNames) / sizeof(kNames[0]))) {
    return kNames[code];
  }
  return absl::StrCat("Code(", code, ")");
}

RpcMetrics::Method* RpcMetrics::Find(absl::string_view full_method, const char* type) {
  const size_t t = TypeIndex(type);
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = methods_[t].find(full_method);
    if (it != methods_[t].end()) return it->second.get();
  }
  absl::MutexLock lock(&mu_);
  auto it = methods_[t].find(full_method);
  if (it != methods_[t].end()) return it->second.get();
  if (method_count_ >= kMethodsMax) return nullptr;
  auto m = std::make_unique<Method>();
  std::tie(m->service, m->method) = SplitMethod(full_method);
  m->type = kTypes[t];
  Method* raw = m.get();
  methods_[t].emplace(std::string(full_method), std::move(m));
  ++method_count_;
  return raw;
}

void RpcMetrics::Handled(Method* m, int code) {
  if (m == nullptr) return;
  constexpr int kCodeUnknown = 2;
  if (code < 0 || code >= static_cast<int>(m->handled.size())) code = kCodeUnknown;
  m->handled[static_cast<size_t>(code)].fetch_add(1, std::memory_order_relaxed);
}

void RpcMetrics::Render(MetricsWriter* out) const {
  absl::ReaderMutexLock lock(&mu_);
  out->Family("grpc_server_handled_total",
              "Total number of RPCs completed on the server, regardless of success or failure.",
              MetricsWriter::Type::kCounter);
  // Ordered by labels as etcd's output is: code, then method, service, type.
  std::map<MetricLabels, uint64_t> handled;
  for (const ByPath& by_path : methods_) {
    for (const auto& [path, m] : by_path) {
      for (size_t code = 0; code < m->handled.size(); ++code) {
        const uint64_t n = m->handled[code].load(std::memory_order_relaxed);
        if (n == 0) continue;
        handled[{{"grpc_code", GrpcCodeName(static_cast<int>(code))},
                 {"grpc_method", m->method},
                 {"grpc_service", m->service},
                 {"grpc_type", m->type}}] = n;
      }
    }
  }
  for (const auto& [labels, n] : handled) out->Sample(labels, static_cast<double>(n));
  out->Family("grpc_server_started_total", "Total number of RPCs started on the server.",
              MetricsWriter::Type::kCounter);
  std::map<MetricLabels, uint64_t> started;
  for (const ByPath& by_path : methods_) {
    for (const auto& [path, m] : by_path) {
      started[{{"grpc_method", m->method}, {"grpc_service", m->service}, {"grpc_type", m->type}}] =
          m->started.load(std::memory_order_relaxed);
    }
  }
  for (const auto& [labels, n] : started) out->Sample(labels, static_cast<double>(n));
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeRpcMetricsInterceptorFactory(RpcMetrics* metrics) {
  return std::make_unique<RpcMetricsInterceptorFactory>(metrics);
}

}  // namespace geoetcd
