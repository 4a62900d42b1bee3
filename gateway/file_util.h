// Small POSIX file helpers shared by the gateway's on-disk formats (snapshot archives, the
// data dir's member file). Errors name the path and carry strerror(errno).
#ifndef GEOETCD_GATEWAY_FILE_UTIL_H_
#define GEOETCD_GATEWAY_FILE_UTIL_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"

namespace geoetcd {

// InternalError "<what>: <strerror(errno)>".
absl::Status Errno(const std::string& what);
// fsync() of a file or directory by path.
absl::Status FsyncPath(const std::string& path);
// Writes every byte to `fd` (short writes and EINTR retried); `path` names it in errors.
absl::Status WriteAll(int fd, const char* data, size_t bytes, const std::string& path);
// Replaces `dir`/`name` with `contents` atomically and durably: a synced temp file renamed
// over it, then the directory synced. A crash leaves the old file or the new one.
absl::Status WriteFileDurably(const std::string& dir, const std::string& name,
                              const std::string& contents);

}  // namespace geoetcd

#endif  // GEOETCD_GATEWAY_FILE_UTIL_H_
