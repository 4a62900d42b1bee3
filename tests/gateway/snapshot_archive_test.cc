// The snapshot archive format (gateway/snapshot_archive.h): a directory round-trips through an
// archive byte for byte, and restore refuses what it must refuse without leaving anything.
#include "gateway/snapshot_archive.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace geoetcd {
namespace {

namespace fs = std::filesystem;
using testing::ScopedTempDir;

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::map<std::string, std::string> ReadDir(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    files[e.path().filename().string()] = ReadFile(e.path().string());
  }
  return files;
}

// Archives `dir` the way the Snapshot RPC streams it: body in blobs, then the digest.
std::string Archive(const std::string& dir, size_t blob_bytes = kSnapshotBlobBytes) {
  auto reader = ArchiveReader::Open(dir);
  EXPECT_TRUE(reader.ok()) << reader.status();
  std::string out;
  while (!(*reader)->body_done()) {
    const size_t before = out.size();
    EXPECT_TRUE((*reader)->Read(blob_bytes, &out).ok());
    EXPECT_LE(out.size() - before, blob_bytes);
    EXPECT_GT(out.size(), before);
  }
  EXPECT_EQ(out.size(), (*reader)->body_bytes());
  return out + (*reader)->Digest();
}

class SnapshotArchiveTest : public ::testing::Test {
 protected:
  SnapshotArchiveTest() {
    fs::create_directory(src());
    std::string big;
    for (int i = 0; i < 100000; ++i) big += static_cast<char>((i * 7919) % 251);
    WriteFile(src() + "/000012.sst", big);
    WriteFile(src() + "/CURRENT", "MANIFEST-000007\n");
    WriteFile(src() + "/MANIFEST-000007", std::string(300, 'm'));
    WriteFile(src() + "/empty.log", "");
    archive_ = Archive(src());
    WriteFile(file(), archive_);
  }

  std::string src() const { return dir_.Sub("src"); }
  std::string file() const { return dir_.Sub("snap.db"); }

  ScopedTempDir dir_;
  std::string archive_;
};

TEST_F(SnapshotArchiveTest, LayoutSatisfiesEtcdctlAndStartsWithTheMagic) {
  EXPECT_EQ(archive_.substr(0, 16), "geoetcd-snapshot");
  EXPECT_EQ(archive_.size() % 512, 32u);  // etcdctl snapshot save insists on this
}

TEST_F(SnapshotArchiveTest, RoundTripsEveryFileByteForByte) {
  auto info = VerifyArchive(file());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->version, 1u);
  EXPECT_EQ(info->files.size(), 4u);
  EXPECT_EQ(info->archive_bytes, archive_.size());

  const std::string data_dir = dir_.Sub("restored");
  auto restored = RestoreArchive(file(), data_dir);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(ReadDir(data_dir + "/rocksdb"), ReadDir(src()));
  EXPECT_EQ(ReadDir(data_dir).size(), 1u);  // only rocksdb/, no staging leftovers
}

TEST_F(SnapshotArchiveTest, BlobSizeDoesNotChangeTheArchive) {
  EXPECT_EQ(Archive(src(), 1), archive_);
  EXPECT_EQ(Archive(src(), 4096), archive_);
}

TEST_F(SnapshotArchiveTest, RestoresIntoAnExistingEmptyDir) {
  const std::string data_dir = dir_.Sub("empty");
  fs::create_directory(data_dir);
  ASSERT_TRUE(RestoreArchive(file(), data_dir).ok());
  EXPECT_EQ(ReadDir(data_dir + "/rocksdb"), ReadDir(src()));
}

TEST_F(SnapshotArchiveTest, RefusesANonEmptyDataDir) {
  const std::string data_dir = dir_.Sub("used");
  fs::create_directory(data_dir);
  WriteFile(data_dir + "/something", "x");
  auto r = RestoreArchive(file(), data_dir);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("is not empty"), std::string::npos);
  EXPECT_EQ(ReadDir(data_dir).size(), 1u);
}

TEST_F(SnapshotArchiveTest, RefusesEveryTruncationAndLeavesNothing) {
  for (size_t keep : {size_t{0}, size_t{10}, size_t{16}, size_t{30}, size_t{100},
                      archive_.size() / 2, archive_.size() - 33, archive_.size() - 32,
                      archive_.size() - 1}) {
    WriteFile(dir_.Sub("cut.db"), archive_.substr(0, keep));
    const std::string data_dir = dir_.Sub("cut");
    auto r = RestoreArchive(dir_.Sub("cut.db"), data_dir);
    EXPECT_FALSE(r.ok()) << "kept " << keep;
    if (keep >= 16) {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << keep << ": " << r.status();
      EXPECT_NE(r.status().message().find("truncated"), std::string::npos) << r.status();
    }
    EXPECT_FALSE(fs::exists(data_dir)) << "kept " << keep;
  }
}

TEST_F(SnapshotArchiveTest, RefusesACorruptByteAnywhere) {
  for (size_t at : {size_t{40}, size_t{5000}, archive_.size() - 40, archive_.size() - 1}) {
    std::string bad = archive_;
    bad[at] = static_cast<char>(bad[at] ^ 0x01);
    WriteFile(dir_.Sub("bad.db"), bad);
    auto r = RestoreArchive(dir_.Sub("bad.db"), dir_.Sub("bad"));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << at << ": " << r.status();
    EXPECT_FALSE(fs::exists(dir_.Sub("bad"))) << at;
    EXPECT_FALSE(VerifyArchive(dir_.Sub("bad.db")).ok());
  }
  std::string extra = archive_ + std::string(512, '\0');
  WriteFile(dir_.Sub("long.db"), extra);
  EXPECT_EQ(VerifyArchive(dir_.Sub("long.db")).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(SnapshotArchiveTest, RecognizesAnEtcdBboltSnapshot) {
  // The start of an etcd 3.4 `snapshot save` file: page 0 is a bbolt meta page.
  std::string bbolt(4096, '\0');
  bbolt[8] = 0x04;  // meta page flag
  const unsigned char magic[4] = {0xed, 0xda, 0x0c, 0xed};
  bbolt.replace(16, 4, reinterpret_cast<const char*>(magic), 4);
  WriteFile(dir_.Sub("etcd.db"), bbolt + std::string(32, 's'));
  auto r = RestoreArchive(dir_.Sub("etcd.db"), dir_.Sub("from-etcd"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("is an etcd (bbolt) snapshot"), std::string::npos)
      << r.status();
  EXPECT_FALSE(fs::exists(dir_.Sub("from-etcd")));

  WriteFile(dir_.Sub("junk.db"), std::string(1000, 'j'));
  EXPECT_NE(VerifyArchive(dir_.Sub("junk.db")).status().message().find(
                "is not a geoetcd snapshot"),
            std::string::npos);
}

TEST_F(SnapshotArchiveTest, RefusesAnotherFormatVersion) {
  std::string v2 = archive_;
  v2[19] = 2;
  WriteFile(dir_.Sub("v2.db"), v2);
  auto r = VerifyArchive(dir_.Sub("v2.db"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("format version 2"), std::string::npos);
}

TEST_F(SnapshotArchiveTest, EmptyDirectoryIsAValidArchive) {
  fs::create_directory(dir_.Sub("none"));
  WriteFile(dir_.Sub("none.db"), Archive(dir_.Sub("none")));
  auto info = VerifyArchive(dir_.Sub("none.db"));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->files.empty());
}

TEST_F(SnapshotArchiveTest, ASubdirectoryCannotBeArchived) {
  fs::create_directory(src() + "/sub");
  EXPECT_EQ(ArchiveReader::Open(src()).status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace geoetcd
