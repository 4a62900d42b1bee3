// geoetcd's snapshot archive: one self-describing file holding a consistent copy of a
// region's RocksDB (a checkpoint). It is geoetcd's own format, NOT etcd's bbolt database:
// `etcdctl snapshot status/restore` cannot read it and `geoetcd snapshot restore` refuses
// etcd's files (docs/operations.md, "Backup and restore").
//
// Format version 1; integers are big-endian:
//
//   magic        16 bytes   "geoetcd-snapshot"
//   version      u32        1
//   file_count   u32        at most kArchiveFilesMax
//   file_count times, in ascending name order:
//     name_len   u16        1..kArchiveNameBytesMax
//     name       name_len   a plain file name: [A-Za-z0-9._-], not "." or ".."
//     size       u64
//     data       size bytes
//   padding      0..511     zero bytes, up to a multiple of kArchiveAlignBytes
//   sha256       32 bytes   SHA-256 of every byte before it
//
// Everything before the digest is the archive's "body". The Snapshot RPC streams the body
// in kSnapshotBlobBytes blobs whose remaining_bytes count the body bytes still to come, then
// the digest alone as the last blob (remaining_bytes 0): the shape of etcd's own stream (its
// bbolt file, then that file's SHA-256), so `etcdctl snapshot save` stores the archive as is.
// The padding is for etcdctl too: it refuses a saved file whose size is not 32 more than a
// multiple of 512 ("sha256 checksum not found"), which a bbolt file plus digest always is.
#ifndef GEOETCD_GATEWAY_SNAPSHOT_ARCHIVE_H_
#define GEOETCD_GATEWAY_SNAPSHOT_ARCHIVE_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace geoetcd {

inline constexpr char kArchiveMagic[] = "geoetcd-snapshot";  // 16 bytes, no terminator stored
inline constexpr size_t kArchiveMagicBytes = 16;
inline constexpr uint32_t kArchiveFormatVersion = 1;
inline constexpr size_t kArchiveDigestBytes = 32;
inline constexpr uint32_t kArchiveFilesMax = 1'000'000;
inline constexpr size_t kArchiveNameBytesMax = 255;
inline constexpr size_t kArchiveAlignBytes = 512;
// etcd's snapshotSendBufferSize.
inline constexpr size_t kSnapshotBlobBytes = 32 * 1024;

// Incremental SHA-256 (OpenSSL).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const void* data, size_t bytes);
  // The 32-byte digest; the object is spent afterwards.
  std::string Finish();

 private:
  void* ctx_;  // EVP_MD_CTX
};

// Produces the archive of a directory's regular files, piece by piece, without holding it in
// memory. The files must not change while it is read (a RocksDB checkpoint never does).
class ArchiveReader {
 public:
  // Lists `dir`. Fails on a subdirectory, a name the format cannot carry, or too many files.
  static absl::StatusOr<std::unique_ptr<ArchiveReader>> Open(const std::string& dir);
  ~ArchiveReader();
  ArchiveReader(const ArchiveReader&) = delete;
  ArchiveReader& operator=(const ArchiveReader&) = delete;

  // Bytes of the body (everything but the digest).
  uint64_t body_bytes() const { return body_bytes_; }
  uint64_t files() const { return files_.size(); }
  bool body_done() const { return read_bytes_ == body_bytes_; }
  // Appends the next at most `max_bytes` body bytes to *out (fewer only at the end of the
  // body). DataLoss when a file is shorter than it was when listed.
  absl::Status Read(size_t max_bytes, std::string* out);
  // The body's SHA-256. REQUIRES: body_done(); call once.
  std::string Digest();

 private:
  struct Segment {
    std::string bytes;  // header bytes, or...
    std::string path;   // ...a file's contents (when non-empty)
    uint64_t size = 0;
  };
  ArchiveReader() = default;
  void CloseFile();

  std::vector<std::pair<std::string, uint64_t>> files_;
  std::vector<Segment> segments_;
  uint64_t body_bytes_ = 0;
  uint64_t read_bytes_ = 0;
  size_t segment_ = 0;          // current segment
  uint64_t segment_offset_ = 0;  // bytes of it already read
  std::FILE* file_ = nullptr;    // open while reading a file segment
  Sha256 sha_;
};

struct ArchiveInfo {
  uint32_t version = 0;
  std::vector<std::pair<std::string, uint64_t>> files;  // name, size
  uint64_t archive_bytes = 0;                          // the whole file, digest included
  std::string sha256_hex;
};

// Checks the archive at `path` end to end (structure, sizes, SHA-256) without extracting.
// The error names what is wrong: not a geoetcd snapshot (an etcd bbolt file is recognized),
// an unsupported version, truncated, or corrupt.
absl::StatusOr<ArchiveInfo> VerifyArchive(const std::string& path);

// Restores the archive into a NEW data dir: `data_dir` must be absent or empty. The files go
// to <data_dir>/rocksdb (the layout `geoetcd --data-dir` opens), fsynced, and appear there
// only once the whole archive checked out; on any error nothing is left behind.
absl::StatusOr<ArchiveInfo> RestoreArchive(const std::string& path, const std::string& data_dir);

}  // namespace geoetcd

#endif  // GEOETCD_GATEWAY_SNAPSHOT_ARCHIVE_H_
