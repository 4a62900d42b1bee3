#include "gateway/rpc_metrics.h"

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

// One per call: counted as started when gRPC creates it, as handled when the status goes out
// (or as Canceled if the call ends without one).
class RpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(RpcMetrics* metrics, std::string method, const char* type)
      : metrics_(metrics), method_(std::move(method)), type_(type) {
    metrics_->Started(method_, type_);
  }
  ~RpcMetricsInterceptor() override {
    if (!handled_) metrics_->Handled(method_, type_, kCodeCanceled);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS) &&
        !handled_) {
      handled_ = true;
      metrics_->Handled(method_, type_, static_cast<int>(methods->GetSendStatus().error_code()));
    }
    methods->Proceed();
  }

 private:
  RpcMetrics* const metrics_;
  const std::string method_;
  const char* const type_;
  bool handled_ = false;
};

class RpcMetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetricsInterceptorFactory(RpcMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcMetricsInterceptor(metrics_, info->method() ? info->method() : "",
                                     TypeName(info->type()));
  }

 private:
  RpcMetrics* const metrics_;
};

}  // namespace

std::string GrpcCodeName(int code) {
  static constexpr const char* kNames[] = {
      "OK",       "Canceled",          "Unknown",          "InvalidArgument",
      "DeadlineExceeded", "NotFound", "AlreadyExists",    "PermissionDenied",
      "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
      "Unimplemented", "Internal",    "Unavailable",      "DataLoss",
      "Unauthenticated"};
  if (code >= 0 && code < static_cast<int>(sizeof(kNames) / sizeof(kNames[0]))) {
    return kNames[code];
  }
  return absl::StrCat("Code(", code, ")");
}

void RpcMetrics::Started(absl::string_view full_method, const char* type) {
  auto [service, method] = SplitMethod(full_method);
  started_.Add({{"grpc_method", method}, {"grpc_service", service}, {"grpc_type", type}});
}

void RpcMetrics::Handled(absl::string_view full_method, const char* type, int code) {
  auto [service, method] = SplitMethod(full_method);
  handled_.Add({{"grpc_code", GrpcCodeName(code)},
                {"grpc_method", method},
                {"grpc_service", service},
                {"grpc_type", type}});
}

void RpcMetrics::Render(MetricsWriter* out) const {
  out->Family("grpc_server_handled_total",
              "Total number of RPCs completed on the server, regardless of success or failure.",
              MetricsWriter::Type::kCounter);
  for (const auto& [labels, n] : handled_.Snapshot()) out->Sample(labels, static_cast<double>(n));
  out->Family("grpc_server_started_total", "Total number of RPCs started on the server.",
              MetricsWriter::Type::kCounter);
  for (const auto& [labels, n] : started_.Snapshot()) out->Sample(labels, static_cast<double>(n));
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeRpcMetricsInterceptorFactory(RpcMetrics* metrics) {
  return std::make_unique<RpcMetricsInterceptorFactory>(metrics);
}

}  // namespace geoetcd
