#include "gateway/snapshot_archive.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/errors.h"
#include "core/check.h"
#include "gateway/file_util.h"
#include "openssl/evp.h"

namespace geoetcd {
namespace {

namespace fs = std::filesystem;

// bbolt's meta page: a 16-byte page header, then the magic 0xED0CDAED (little-endian).
constexpr size_t kBboltMagicOffset = 16;
constexpr unsigned char kBboltMagic[4] = {0xed, 0xda, 0x0c, 0xed};
constexpr size_t kCopyBufferBytes = 64 * 1024;

void AppendBigEndian(std::string* out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t ReadBigEndian(const unsigned char* in, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | in[i];
  return v;
}

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > kArchiveNameBytesMax || name == "." || name == "..") {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
  });
}

// Reads an archive file front to back, hashing every body byte, with the file's size known
// up front so that truncation is reported as such rather than as a checksum mismatch.
class ArchiveScanner {
 public:
  ArchiveScanner(std::string path, std::FILE* file, uint64_t size)
      : path_(std::move(path)), file_(file), size_(size) {}

  uint64_t offset() const { return offset_; }
  uint64_t left() const { return size_ - offset_; }

  // Reads exactly `bytes` body bytes into `out`; `what` names them in the truncation error.
  absl::Status Body(void* out, size_t bytes, const char* what) {
    if (bytes + kArchiveDigestBytes > left()) return Truncated(what);
    GEOETCD_RETURN_IF_ERROR(Raw(out, bytes));
    sha_.Update(out, bytes);
    return absl::OkStatus();
  }
  absl::Status Raw(void* out, size_t bytes) {
    if (std::fread(out, 1, bytes, file_) != bytes) {
      return absl::DataLossError(absl::StrCat("reading ", path_, " failed at byte ", offset_));
    }
    offset_ += bytes;
    return absl::OkStatus();
  }
  absl::Status Truncated(const char* what) const {
    return absl::DataLossError(absl::StrCat(path_, " is truncated: it ends at byte ", size_,
                                            " inside ", what));
  }
  std::string Digest() { return sha_.Finish(); }

 private:
  std::string path_;
  std::FILE* file_;
  uint64_t size_;
  uint64_t offset_ = 0;
  Sha256 sha_;
};

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

// Walks the archive at `path`; with a non-empty `out_dir`, writes each file there.
absl::StatusOr<ArchiveInfo> Walk(const std::string& path, const std::string& out_dir) {
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", ec.message()));
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (file == nullptr) return Errno("open " + path);

  unsigned char head[kArchiveMagicBytes + 8] = {};
  const size_t head_bytes = std::fread(head, 1, sizeof(head), file.get());
  if (head_bytes < kArchiveMagicBytes ||
      std::memcmp(head, kArchiveMagic, kArchiveMagicBytes) != 0) {
    if (head_bytes >= kBboltMagicOffset + 4 &&
        std::memcmp(head + kBboltMagicOffset, kBboltMagic, 4) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, " is an etcd (bbolt) snapshot, not a geoetcd snapshot: geoetcd restores only "
                "archives taken from geoetcd (etcdctl snapshot save against geoetcd). To move "
                "data from etcd, copy the keys with etcdctl make-mirror"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not a geoetcd snapshot (it does not start with \"",
                     kArchiveMagic, "\")"));
  }
  std::rewind(file.get());
  ArchiveScanner in(path, file.get(), size);
  ArchiveInfo info;
  info.archive_bytes = size;

  unsigned char header[kArchiveMagicBytes + 8];
  GEOETCD_RETURN_IF_ERROR(in.Body(header, sizeof(header), "the header"));
  info.version = static_cast<uint32_t>(ReadBigEndian(header + kArchiveMagicBytes, 4));
  if (info.version != kArchiveFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " has snapshot format version ", info.version,
                     "; this geoetcd reads version ", kArchiveFormatVersion));
  }
  const uint64_t count = ReadBigEndian(header + kArchiveMagicBytes + 4, 4);
  if (count > kArchiveFilesMax) {
    return absl::DataLossError(absl::StrCat(path, " is corrupt: it claims ", count, " files"));
  }

  std::vector<char> buffer(kCopyBufferBytes);
  for (uint64_t i = 0; i < count; ++i) {
    unsigned char len_bytes[2];
    GEOETCD_RETURN_IF_ERROR(in.Body(len_bytes, 2, "a file entry"));
    const size_t name_len = ReadBigEndian(len_bytes, 2);
    std::string name(name_len, '\0');
    GEOETCD_RETURN_IF_ERROR(in.Body(name.data(), name_len, "a file name"));
    if (!ValidName(name) || (!info.files.empty() && name <= info.files.back().first)) {
      return absl::DataLossError(absl::StrCat(path, " is corrupt: bad file name \"",
                                              absl::CHexEscape(name), "\" in entry ", i));
    }
    unsigned char size_bytes[8];
    GEOETCD_RETURN_IF_ERROR(in.Body(size_bytes, 8, "a file entry"));
    const uint64_t file_bytes = ReadBigEndian(size_bytes, 8);
    if (file_bytes > in.left() || in.left() - file_bytes < kArchiveDigestBytes) {
      return absl::DataLossError(absl::StrCat(path, " is truncated or corrupt: ", name,
                                              " claims ", file_bytes, " bytes but only ",
                                              in.left(), " remain"));
    }
    int fd = -1;
    const std::string out_path = out_dir.empty() ? "" : out_dir + "/" + name;
    if (!out_dir.empty()) {
      fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0) return Errno("create " + out_path);
    }
    absl::Status status = absl::OkStatus();
    for (uint64_t done = 0; done < file_bytes && status.ok();) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(buffer.size(), file_bytes - done));
      status = in.Body(buffer.data(), n, name.c_str());
      if (status.ok() && fd >= 0) status = WriteAll(fd, buffer.data(), n, out_path);
      done += n;
    }
    if (fd >= 0) {
      if (status.ok() && ::fsync(fd) != 0) status = Errno("fsync " + out_path);
      ::close(fd);
    }
    if (!status.ok()) return status;
    info.files.emplace_back(std::move(name), file_bytes);
  }
  const size_t padding = (kArchiveAlignBytes - in.offset() % kArchiveAlignBytes) %
                         kArchiveAlignBytes;
  if (in.left() != padding + kArchiveDigestBytes) {
    if (in.left() < padding + kArchiveDigestBytes) return in.Truncated("the padding");
    return absl::DataLossError(absl::StrCat(path, " is corrupt: ",
                                            in.left() - padding - kArchiveDigestBytes,
                                            " unexpected bytes after the last file"));
  }
  std::string zeros(padding, '\0');
  GEOETCD_RETURN_IF_ERROR(in.Body(zeros.data(), padding, "the padding"));
  if (zeros.find_first_not_of('\0') != std::string::npos) {
    return absl::DataLossError(absl::StrCat(path, " is corrupt: non-zero padding"));
  }
  std::string stored(kArchiveDigestBytes, '\0');
  GEOETCD_RETURN_IF_ERROR(in.Raw(stored.data(), stored.size()));
  const std::string computed = in.Digest();
  if (stored != computed) {
    return absl::DataLossError(absl::StrCat(path, " is corrupt: SHA-256 mismatch (stored ",
                                            absl::BytesToHexString(stored), ", computed ",
                                            absl::BytesToHexString(computed), ")"));
  }
  info.sha256_hex = absl::BytesToHexString(computed);
  return info;
}

}  // namespace

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  CHECK(ctx_ != nullptr);
  CHECK(EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr) == 1);
}

Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void Sha256::Update(const void* data, size_t bytes) {
  CHECK(EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, bytes) == 1);
}

std::string Sha256::Finish() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  CHECK(EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), digest, &len) == 1);
  CHECK(len == kArchiveDigestBytes);
  return std::string(reinterpret_cast<const char*>(digest), len);
}

absl::StatusOr<std::unique_ptr<ArchiveReader>> ArchiveReader::Open(const std::string& dir) {
  std::unique_ptr<ArchiveReader> reader(new ArchiveReader());
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file(ec) || ec) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot archive ", dir, ": ", name, " is not a regular file"));
    }
    if (!ValidName(name)) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot archive ", dir, ": unsupported file name \"", name, "\""));
    }
    const uint64_t size = entry.file_size(ec);
    if (ec) return absl::InternalError(absl::StrCat("stat ", name, ": ", ec.message()));
    reader->files_.emplace_back(name, size);
  }
  if (ec) return absl::InternalError(absl::StrCat("listing ", dir, ": ", ec.message()));
  if (reader->files_.size() > kArchiveFilesMax) {
    return absl::FailedPreconditionError(absl::StrCat("cannot archive ", dir, ": ",
                                                      reader->files_.size(), " files"));
  }
  std::sort(reader->files_.begin(), reader->files_.end());

  Segment header;
  header.bytes.append(kArchiveMagic, kArchiveMagicBytes);
  AppendBigEndian(&header.bytes, kArchiveFormatVersion, 4);
  AppendBigEndian(&header.bytes, reader->files_.size(), 4);
  for (const auto& [name, size] : reader->files_) {
    AppendBigEndian(&header.bytes, name.size(), 2);
    header.bytes += name;
    AppendBigEndian(&header.bytes, size, 8);
    header.size = header.bytes.size();
    reader->segments_.push_back(std::move(header));
    header = Segment();
    Segment data;
    data.path = dir + "/" + name;
    data.size = size;
    reader->segments_.push_back(std::move(data));
  }
  uint64_t body_bytes = header.bytes.size();
  for (const Segment& s : reader->segments_) body_bytes += s.size;
  header.bytes.append((kArchiveAlignBytes - body_bytes % kArchiveAlignBytes) % kArchiveAlignBytes,
                      '\0');
  header.size = header.bytes.size();
  if (header.size > 0) reader->segments_.push_back(std::move(header));
  for (const Segment& s : reader->segments_) reader->body_bytes_ += s.size;
  CHECK(reader->body_bytes_ % kArchiveAlignBytes == 0);
  return reader;
}

ArchiveReader::~ArchiveReader() { CloseFile(); }

void ArchiveReader::CloseFile() {
  if (file_ != nullptr) std::fclose(file_);
  file_ = nullptr;
}

absl::Status ArchiveReader::Read(size_t max_bytes, std::string* out) {
  size_t produced = 0;
  while (produced < max_bytes && segment_ < segments_.size()) {
    const Segment& seg = segments_[segment_];
    if (segment_offset_ == seg.size) {
      CloseFile();
      ++segment_;
      segment_offset_ = 0;
      continue;
    }
    const size_t n =
        static_cast<size_t>(std::min<uint64_t>(seg.size - segment_offset_, max_bytes - produced));
    const size_t at = out->size();
    if (seg.path.empty()) {
      out->append(seg.bytes, segment_offset_, n);
    } else {
      if (file_ == nullptr) {
        CHECK(segment_offset_ == 0);  // a file stays open until it is read whole
        file_ = std::fopen(seg.path.c_str(), "rb");
        if (file_ == nullptr) return Errno("open " + seg.path);
      }
      out->resize(at + n);
      if (std::fread(out->data() + at, 1, n, file_) != n) {
        out->resize(at);
        return absl::DataLossError(
            absl::StrCat(seg.path, " became shorter while it was being archived"));
      }
    }
    sha_.Update(out->data() + at, n);
    segment_offset_ += n;
    read_bytes_ += n;
    produced += n;
  }
  return absl::OkStatus();
}

std::string ArchiveReader::Digest() {
  CHECK(body_done());
  return sha_.Finish();
}

absl::StatusOr<ArchiveInfo> VerifyArchive(const std::string& path) { return Walk(path, ""); }

absl::StatusOr<ArchiveInfo> RestoreArchive(const std::string& path, const std::string& data_dir) {
  std::error_code ec;
  bool created = false;
  if (fs::exists(data_dir, ec)) {
    if (!fs::is_directory(data_dir, ec)) {
      return absl::FailedPreconditionError(
          absl::StrCat("data dir ", data_dir, " exists and is not a directory"));
    }
    if (!fs::is_empty(data_dir, ec) || ec) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data dir ", data_dir, " is not empty: restore needs a new (absent or empty) data dir"));
    }
  } else {
    if (!fs::create_directories(data_dir, ec) || ec) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create data dir ", data_dir, ": ", ec.message()));
    }
    created = true;
  }
  // Extracted beside its final place and renamed only once the digest matched, so a failed
  // restore never leaves a data dir that opens.
  const std::string staging = data_dir + "/rocksdb.restoring";
  const std::string target = data_dir + "/rocksdb";
  auto cleanup = [&] {
    std::error_code ignored;
    fs::remove_all(staging, ignored);
    fs::remove_all(target, ignored);  // the dir was empty: anything here is ours
    if (created) fs::remove(data_dir, ignored);
  };
  if (!fs::create_directory(staging, ec) || ec) {
    cleanup();
    return absl::InternalError(absl::StrCat("cannot create ", staging, ": ", ec.message()));
  }
  auto info = Walk(path, staging);
  absl::Status status = info.status();
  if (status.ok()) status = FsyncPath(staging);
  if (status.ok()) {
    fs::rename(staging, target, ec);
    if (ec) status = absl::InternalError(absl::StrCat("rename to ", target, ": ", ec.message()));
  }
  if (status.ok()) status = FsyncPath(data_dir);
  if (!status.ok()) {
    cleanup();
    return status;
  }
  return info;
}

}  // namespace geoetcd
