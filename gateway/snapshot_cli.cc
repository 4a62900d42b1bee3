#include "gateway/snapshot_cli.h"

#include <string_view>

#include "absl/strings/match.h"
#include "gateway/snapshot_archive.h"

namespace geoetcd {
namespace {

constexpr const char* kUsage =
    "Usage:\n"
    "  geoetcd snapshot restore <file> --data-dir <dir>\n"
    "      Restores a snapshot taken from geoetcd (etcdctl snapshot save, or the Snapshot\n"
    "      RPC) into a NEW data dir: <dir> must be absent or empty. Then start the server\n"
    "      with --data-dir <dir>.\n"
    "  geoetcd snapshot status <file>\n"
    "      Verifies a snapshot (structure and SHA-256) and describes it.\n"
    "\n"
    "The snapshot format is geoetcd's own, not etcd's bbolt database: etcdctl snapshot\n"
    "status/restore cannot read it, and etcd snapshots cannot be restored here.\n";

uint64_t FileBytes(const ArchiveInfo& info) {
  uint64_t bytes = 0;
  for (const auto& file : info.files) bytes += file.second;
  return bytes;
}

int Usage(std::FILE* err, const std::string& problem) {
  std::fprintf(err, "geoetcd snapshot: %s\n%s", problem.c_str(), kUsage);
  return 2;
}

}  // namespace

int RunSnapshotCommand(const std::vector<std::string>& args, std::FILE* out, std::FILE* err) {
  if (args.empty()) return Usage(err, "missing command");
  const std::string& command = args[0];
  if (command == "help" || command == "--help" || command == "-h") {
    std::fputs(kUsage, out);
    return 0;
  }
  std::string file;
  std::string data_dir;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--data-dir" || arg == "-data-dir") {
      if (i + 1 == args.size()) return Usage(err, "--data-dir needs a value");
      data_dir = args[++i];
    } else if (absl::StartsWith(arg, "--data-dir=") || absl::StartsWith(arg, "-data-dir=")) {
      data_dir = arg.substr(arg.find('=') + 1);
    } else if (!arg.empty() && arg[0] == '-') {
      return Usage(err, "unknown flag " + arg);
    } else if (file.empty()) {
      file = arg;
    } else {
      return Usage(err, "unexpected argument " + arg);
    }
  }
  if (file.empty()) return Usage(err, "missing snapshot file");

  if (command == "status") {
    if (!data_dir.empty()) return Usage(err, "status takes no --data-dir");
    auto info = VerifyArchive(file);
    if (!info.ok()) {
      std::fprintf(err, "geoetcd snapshot status: %s\n",
                   std::string(info.status().message()).c_str());
      return 1;
    }
    std::fprintf(out,
                 "%s: geoetcd snapshot format %u, %zu files, %llu data bytes, %llu bytes in "
                 "all, sha256 %s: ok\n",
                 file.c_str(), info->version, info->files.size(),
                 static_cast<unsigned long long>(FileBytes(*info)),
                 static_cast<unsigned long long>(info->archive_bytes), info->sha256_hex.c_str());
    return 0;
  }
  if (command == "restore") {
    if (data_dir.empty()) return Usage(err, "restore needs --data-dir <dir>");
    auto info = RestoreArchive(file, data_dir);
    if (!info.ok()) {
      std::fprintf(err, "geoetcd snapshot restore: %s\n",
                   std::string(info.status().message()).c_str());
      return 1;
    }
    std::fprintf(out,
                 "restored %s into data dir %s (%zu files, %llu bytes, sha256 %s); start it "
                 "with: geoetcd --data-dir %s\n",
                 file.c_str(), data_dir.c_str(), info->files.size(),
                 static_cast<unsigned long long>(FileBytes(*info)), info->sha256_hex.c_str(),
                 data_dir.c_str());
    return 0;
  }
  return Usage(err, "unknown command " + command);
}

}  // namespace geoetcd
