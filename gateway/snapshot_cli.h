// `geoetcd snapshot ...`: the offline side of backups (gateway/snapshot_archive.h).
//
//   geoetcd snapshot restore FILE --data-dir DIR   restore into a new data dir
//   geoetcd snapshot status FILE                   verify an archive and describe it
#ifndef GEOETCD_GATEWAY_SNAPSHOT_CLI_H_
#define GEOETCD_GATEWAY_SNAPSHOT_CLI_H_

#include <cstdio>
#include <string>
#include <vector>

namespace geoetcd {

// Runs the command whose arguments follow "snapshot". Prints results to `out`, errors to
// `err`; returns the exit code (0 done, 1 failed, 2 bad usage).
int RunSnapshotCommand(const std::vector<std::string>& args, std::FILE* out, std::FILE* err);

}  // namespace geoetcd

#endif  // GEOETCD_GATEWAY_SNAPSHOT_CLI_H_
