// Maintenance/Snapshot through a real in-process server over gRPC (gateway/snapshot_stream.h):
// the stream's shape (etcd's remaining_bytes and trailing digest), concurrent snapshots, a
// restore that serves the same data, and a cancelled stream that leaves no scratch files.
#include "gateway/snapshot_stream.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/random.h"
#include "gateway/config.h"
#include "gateway/server.h"
#include "gateway/snapshot_archive.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace geoetcd {
namespace {

namespace fs = std::filesystem;
using testing::ScopedTempDir;

constexpr int kKeys = 48;
constexpr size_t kValueBytes = 64 * 1024;  // random, so RocksDB cannot compress it away

std::chrono::system_clock::time_point Deadline(int seconds = 30) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

struct Running {
  std::unique_ptr<Server> server;
  std::unique_ptr<etcdserverpb::KV::Stub> kv;
  std::unique_ptr<etcdserverpb::Maintenance::Stub> maintenance;
};

Running StartServer(const std::string& data_dir, const std::string& socket) {
  const std::string url = "unix://" + socket;
  const std::vector<std::string> args = {
      "geoetcd", "--name", "m1", "--data-dir", data_dir, "--listen-client-urls", url,
      "--advertise-client-urls", url, "--log-level", "error",
  };
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  Running r;
  auto parsed = ParseServerFlags(static_cast<int>(argv.size()), argv.data(), {});
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  if (!parsed.ok()) return r;
  auto server = Server::Start(parsed->config);
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return r;
  r.server = std::move(*server);
  auto channel = grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials());
  r.kv = etcdserverpb::KV::NewStub(channel);
  r.maintenance = etcdserverpb::Maintenance::NewStub(channel);
  return r;
}

// Reads a whole Snapshot stream, checking etcd's shape as it goes; returns the archive.
std::string ReadSnapshot(etcdserverpb::Maintenance::Stub* stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline());
  auto reader = stub->Snapshot(&ctx, etcdserverpb::SnapshotRequest());
  std::vector<etcdserverpb::SnapshotResponse> messages;
  etcdserverpb::SnapshotResponse resp;
  while (reader->Read(&resp)) messages.push_back(resp);
  const grpc::Status s = reader->Finish();
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_GE(messages.size(), 2u);
  if (messages.size() < 2) return "";
  std::string body;
  for (size_t i = 0; i + 1 < messages.size(); ++i) body += messages[i].blob();
  for (size_t i = 0, sent = 0; i + 1 < messages.size(); ++i) {
    EXPECT_LE(messages[i].blob().size(), kSnapshotBlobBytes);
    sent += messages[i].blob().size();
    EXPECT_EQ(messages[i].remaining_bytes(), body.size() - sent) << "message " << i;
    EXPECT_FALSE(messages[i].has_header());
  }
  // The digest travels alone and last, as etcd's SHA-256 does.
  EXPECT_EQ(messages.back().blob().size(), kArchiveDigestBytes);
  EXPECT_EQ(messages.back().remaining_bytes(), 0u);
  return body + messages.back().blob();
}

std::vector<std::string> ScratchEntries(const std::string& data_dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(data_dir + "/snapshot-tmp", ec)) {
    names.push_back(e.path().filename().string());
  }
  return names;
}

class SnapshotStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    source_ = StartServer(dir_.Sub("data"), dir_.Sub("client.sock"));
    ASSERT_NE(source_.server, nullptr);
    Random random(7);
    for (int i = 0; i < kKeys; ++i) {
      std::string value(kValueBytes, '\0');
      for (char& c : value) c = static_cast<char>(random.Next() & 0xff);
      etcdserverpb::PutRequest put;
      put.set_key("key/" + std::to_string(i));
      put.set_value(value);
      grpc::ClientContext ctx;
      ctx.set_deadline(Deadline());
      etcdserverpb::PutResponse resp;
      ASSERT_TRUE(source_.kv->Put(&ctx, put, &resp).ok());
    }
  }

  void TearDown() override {
    if (source_.server) source_.server->Shutdown();
  }

  etcdserverpb::RangeResponse RangeAll(etcdserverpb::KV::Stub* kv) {
    etcdserverpb::RangeRequest req;
    req.set_key(std::string(1, '\0'));
    req.set_range_end(std::string(1, '\0'));
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    etcdserverpb::RangeResponse resp;
    EXPECT_TRUE(kv->Range(&ctx, req, &resp).ok());
    return resp;
  }

  uint32_t HashKv(etcdserverpb::Maintenance::Stub* m) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    etcdserverpb::HashKVResponse resp;
    EXPECT_TRUE(m->HashKV(&ctx, etcdserverpb::HashKVRequest(), &resp).ok());
    return resp.hash();
  }

  ScopedTempDir dir_;
  Running source_;
};

TEST_F(SnapshotStreamTest, ConcurrentSnapshotsEachRestoreToTheSameData) {
  constexpr int kStreams = 3;
  std::vector<std::string> archives(kStreams);
  std::vector<std::thread> threads;
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back([&, i] { archives[i] = ReadSnapshot(source_.maintenance.get()); });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(ScratchEntries(dir_.Sub("data")).empty());

  const etcdserverpb::RangeResponse want = RangeAll(source_.kv.get());
  ASSERT_EQ(want.count(), kKeys);
  const uint32_t want_hash = HashKv(source_.maintenance.get());
  for (int i = 0; i < kStreams; ++i) {
    ASSERT_GT(archives[i].size(), kKeys * kValueBytes);
    const std::string file = dir_.Sub("snap" + std::to_string(i) + ".db");
    std::ofstream(file, std::ios::binary) << archives[i];
    const std::string restored_dir = dir_.Sub("restored" + std::to_string(i));
    auto info = RestoreArchive(file, restored_dir);
    ASSERT_TRUE(info.ok()) << info.status();
    Running restored = StartServer(restored_dir, dir_.Sub("r" + std::to_string(i) + ".sock"));
    ASSERT_NE(restored.server, nullptr);
    const etcdserverpb::RangeResponse got = RangeAll(restored.kv.get());
    EXPECT_EQ(got.header().revision(), want.header().revision());
    ASSERT_EQ(got.kvs_size(), want.kvs_size());
    for (int k = 0; k < got.kvs_size(); ++k) {
      EXPECT_EQ(got.kvs(k).SerializeAsString(), want.kvs(k).SerializeAsString()) << k;
    }
    EXPECT_EQ(HashKv(restored.maintenance.get()), want_hash);
    restored.server->Shutdown();
  }
}

TEST_F(SnapshotStreamTest, ACancelledStreamLeavesNoScratchFiles) {
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    auto reader = source_.maintenance->Snapshot(&ctx, etcdserverpb::SnapshotRequest());
    etcdserverpb::SnapshotResponse first;
    ASSERT_TRUE(reader->Read(&first));
    ASSERT_GT(first.remaining_bytes(), 0u);  // cancelled mid-stream, not after the end
    EXPECT_EQ(ScratchEntries(dir_.Sub("data")).size(), 1u);  // the checkpoint being streamed
    ctx.TryCancel();
    etcdserverpb::SnapshotResponse rest;
    while (reader->Read(&rest)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::CANCELLED);
  }
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!ScratchEntries(dir_.Sub("data")).empty() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(ScratchEntries(dir_.Sub("data")).empty());
  // The streamer is still in service.
  EXPECT_GT(ReadSnapshot(source_.maintenance.get()).size(), kKeys * kValueBytes);
}

TEST_F(SnapshotStreamTest, AFifthConcurrentSnapshotIsRefusedUntilOneEnds) {
  // kSnapshotStreamsMax streams, each stalled after its first message: the client reads no
  // further, so gRPC flow control keeps each one open with its checkpoint on disk.
  struct Open {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<etcdserverpb::SnapshotResponse>> reader;
  };
  std::vector<std::unique_ptr<Open>> open;
  for (int i = 0; i < kSnapshotStreamsMax; ++i) {
    auto o = std::make_unique<Open>();
    o->ctx.set_deadline(Deadline());
    o->reader = source_.maintenance->Snapshot(&o->ctx, etcdserverpb::SnapshotRequest());
    etcdserverpb::SnapshotResponse first;
    ASSERT_TRUE(o->reader->Read(&first));
    ASSERT_GT(first.remaining_bytes(), 0u);
    open.push_back(std::move(o));
  }
  ASSERT_EQ(ScratchEntries(dir_.Sub("data")).size(), static_cast<size_t>(kSnapshotStreamsMax));

  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    auto reader = source_.maintenance->Snapshot(&ctx, etcdserverpb::SnapshotRequest());
    etcdserverpb::SnapshotResponse resp;
    EXPECT_FALSE(reader->Read(&resp));
    const grpc::Status s = reader->Finish();
    EXPECT_EQ(s.error_code(), grpc::UNAVAILABLE);
    EXPECT_EQ(s.error_message(),
              "geoetcd: too many snapshots in progress (at most 4); retry later");
  }

  for (auto& o : open) {
    o->ctx.TryCancel();
    etcdserverpb::SnapshotResponse rest;
    while (o->reader->Read(&rest)) {
    }
    o->reader->Finish();
  }
  // Once the cancelled streams have let go, snapshots are served again.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!ScratchEntries(dir_.Sub("data")).empty() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GT(ReadSnapshot(source_.maintenance.get()).size(), kKeys * kValueBytes);
}

TEST_F(SnapshotStreamTest, LeftoversOfACrashAreRemovedAtStart) {
  source_.server->Shutdown();
  source_.server.reset();
  fs::create_directories(dir_.Sub("data/snapshot-tmp/7"));
  std::ofstream(dir_.Sub("data/snapshot-tmp/7/000001.sst")) << "stale";
  source_ = StartServer(dir_.Sub("data"), dir_.Sub("client2.sock"));
  ASSERT_NE(source_.server, nullptr);
  EXPECT_TRUE(ScratchEntries(dir_.Sub("data")).empty());
}

}  // namespace
}  // namespace geoetcd
