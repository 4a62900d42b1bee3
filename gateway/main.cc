// geoetcd: an etcd v3 compatible key/value server. Accepts etcd's server flags.
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gateway/config.h"
#include "gateway/server.h"
#include "gateway/snapshot_cli.h"

namespace {

geoetcd::Server* g_server = nullptr;
volatile std::sig_atomic_t g_signal = 0;

void OnSignal(int sig) { g_signal = sig; }

}  // namespace

int main(int argc, char** argv) {
  // Debian's absl checks every Mutex acquisition for lock-order cycles (a debug aid costing
  // a few percent of a put's CPU); geoetcd's locks are leaf locks, so skip the bookkeeping.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // `geoetcd snapshot restore|status ...` works offline on backups (gateway/snapshot_cli.h).
  if (argc >= 2 && std::string(argv[1]) == "snapshot") {
    return geoetcd::RunSnapshotCommand(std::vector<std::string>(argv + 2, argv + argc), stdout,
                                       stderr);
  }
  auto outcome = geoetcd::ParseServerFlags(argc, argv, geoetcd::CurrentEnvironment());
  if (!outcome.ok()) {
    std::fprintf(stderr, "geoetcd: %s\nRun 'geoetcd --help' for usage.\n",
                 std::string(outcome.status().message()).c_str());
    return 2;
  }
  if (outcome->kind == geoetcd::ParseOutcome::kHelp) {
    std::fputs(outcome->help_text.c_str(), stdout);
    return 0;
  }
  if (outcome->kind == geoetcd::ParseOutcome::kVersion) {
    std::fputs(geoetcd::VersionText().c_str(), stdout);
    return 0;
  }
  const geoetcd::ServerConfig& config = outcome->config;
  for (const auto& w : config.warnings) std::fprintf(stderr, "geoetcd: warning: %s\n", w.c_str());

  auto server = geoetcd::Server::Start(config);
  if (!server.ok()) {
    std::fprintf(stderr, "geoetcd: cannot start: %s\n",
                 std::string(server.status().message()).c_str());
    return 1;
  }
  g_server = server->get();
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::fprintf(stderr, "geoetcd: member %s (%016llx) serving clients on", config.name.c_str(),
               static_cast<unsigned long long>(g_server->member_id()));
  for (const auto& url : config.listen_client_urls) std::fprintf(stderr, " %s", url.c_str());
  if (!config.listen_metrics_urls.empty()) {
    std::fprintf(stderr, ", metrics on");
    for (const auto& url : config.listen_metrics_urls) std::fprintf(stderr, " %s", url.c_str());
  }
  std::fprintf(stderr, ", data dir %s\n", config.data_dir.c_str());

  // Signal handlers may not shut gRPC down themselves; a watcher thread does it.
  std::thread watcher([] {
    while (g_signal == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::fprintf(stderr, "geoetcd: received signal %d, shutting down\n", g_signal);
    g_server->Shutdown();
  });
  g_server->Wait();
  if (g_signal == 0) g_signal = SIGTERM;
  watcher.join();
  server->reset();
  return 0;
}
