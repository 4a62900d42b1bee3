// The Storage contract (core/ports.h), run against every implementation: MemoryStorage
// (core/) and RocksDbStorage (gateway/). It lives here because gateway/ is the lowest layer
// that sees both. RocksDbStorage's own behaviour (reopen, locking, group commit) follows.
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/check.h"
#include "core/memory_storage.h"
#include "gateway/rocksdb_storage.h"
#include "gtest/gtest.h"
#include "tests/testing/manual_ports.h"
#include "tests/testing/queue_executor.h"
#include "tests/testing/temp_dir.h"

namespace geoetcd {
namespace {

using KeyValues = std::vector<std::pair<std::string, std::string>>;
using testing::ManualClock;
using testing::ManualExecutor;
using testing::QueueExecutor;
using testing::ScopedTempDir;

// One implementation plus the executor that delivers its callbacks.
class StorageHarness {
 public:
  virtual ~StorageHarness() = default;
  virtual Storage& storage() = 0;
  // Runs executor callbacks on this thread until `until()` holds; false if it never does.
  virtual bool RunUntil(const std::function<bool()>& until) = 0;
};

class MemoryHarness : public StorageHarness {
 public:
  Storage& storage() override { return storage_; }
  bool RunUntil(const std::function<bool()>& until) override {
    while (!until()) {
      if (executor_.RunUntilIdle() == 0) return false;
    }
    return true;
  }

 private:
  ManualClock clock_;
  ManualExecutor executor_{&clock_};
  MemoryStorage storage_{&executor_};
};

class RocksDbHarness : public StorageHarness {
 public:
  RocksDbHarness() {
    auto opened = RocksDbStorage::Open(dir_.path(), &executor_, RocksDbOptions());
    CHECK(opened.ok());
    storage_ = std::move(*opened);
  }
  ~RocksDbHarness() override {
    storage_.reset();
    executor_.RunReady();
  }
  Storage& storage() override { return *storage_; }
  bool RunUntil(const std::function<bool()>& until) override { return executor_.RunUntil(until); }

 private:
  ScopedTempDir dir_;
  QueueExecutor executor_;
  std::unique_ptr<RocksDbStorage> storage_;
};

std::unique_ptr<StorageHarness> MakeHarness(const std::string& name) {
  if (name == "Memory") return std::make_unique<MemoryHarness>();
  return std::make_unique<RocksDbHarness>();
}

WriteBatch Puts(const KeyValues& entries) {
  WriteBatch batch;
  for (const auto& [key, value] : entries) batch.Put(key, value);
  return batch;
}

class StorageContractTest : public ::testing::TestWithParam<std::string> {
 protected:
  StorageContractTest() : harness_(MakeHarness(GetParam())) {}

  Storage& storage() { return harness_->storage(); }
  bool RunUntil(const std::function<bool()>& until) { return harness_->RunUntil(until); }

  absl::Status WriteAndWait(WriteBatch batch, bool sync = false) {
    std::optional<absl::Status> result;
    storage().Write(std::move(batch), sync, [&result](absl::Status s) { result = s; });
    EXPECT_TRUE(RunUntil([&result] { return result.has_value(); }));
    return result.value_or(absl::DeadlineExceededError("done never ran"));
  }

  // The value of `key`, or "<missing>" when Get() says NotFound.
  std::string GetOrMissing(std::string_view key) {
    std::string value;
    const absl::Status status = storage().Get(key, &value);
    if (absl::IsNotFound(status)) return "<missing>";
    EXPECT_TRUE(status.ok()) << status;
    return value;
  }

  KeyValues ScanAll(std::string_view begin, std::string_view end, size_t limit = SIZE_MAX) {
    KeyValues seen;
    const absl::Status status =
        storage().Scan(begin, end, [&seen, limit](std::string_view key, std::string_view value) {
          seen.emplace_back(std::string(key), std::string(value));
          return seen.size() < limit;
        });
    EXPECT_TRUE(status.ok()) << status;
    return seen;
  }

  std::unique_ptr<StorageHarness> harness_;
};

TEST_P(StorageContractTest, BatchAppliesPutDeleteAndDeleteRangeTogether) {
  ASSERT_TRUE(
      WriteAndWait(Puts({{"a", "1"}, {"c", "1"}, {"cc", "1"}, {"d", "1"}, {"e", "1"}})).ok());
  WriteBatch batch;
  batch.Put("b", "2");
  batch.Delete("a");
  batch.DeleteRange("c", "e");
  batch.Put("d", "new");  // After the range delete in the same batch: survives it.
  ASSERT_TRUE(WriteAndWait(std::move(batch), /*sync=*/true).ok());

  EXPECT_EQ(ScanAll("", ""), (KeyValues{{"b", "2"}, {"d", "new"}, {"e", "1"}}));
}

TEST_P(StorageContractTest, OpsApplyInBatchOrder) {
  WriteBatch batch;
  batch.Put("x", "1");
  batch.Delete("x");
  batch.Put("y", "1");
  batch.DeleteRange("y", "z");
  batch.Delete("w");
  batch.Put("w", "2");
  ASSERT_TRUE(WriteAndWait(std::move(batch)).ok());

  EXPECT_EQ(ScanAll("", ""), (KeyValues{{"w", "2"}}));
}

TEST_P(StorageContractTest, WritesApplyInCallOrder) {
  std::vector<int> completed;
  auto record = [&completed](int i) {
    return [&completed, i](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      completed.push_back(i);
    };
  };
  WriteBatch wipe;
  wipe.DeleteRange("a", "z");
  storage().Write(Puts({{"k", "1"}, {"m", "1"}}), false, record(0));
  storage().Write(std::move(wipe), false, record(1));
  storage().Write(Puts({{"k", "3"}}), true, record(2));
  ASSERT_TRUE(RunUntil([&completed] { return completed.size() == 3; }));

  EXPECT_EQ(completed, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(ScanAll("", ""), (KeyValues{{"k", "3"}}));
}

TEST_P(StorageContractTest, DoneRunsOnExecutorNeverInline) {
  bool ran = false;
  std::thread::id ran_on;
  storage().Write(Puts({{"k", "v"}}), true, [&](absl::Status s) {
    ran = true;
    ran_on = std::this_thread::get_id();
  });
  EXPECT_FALSE(ran);
  ASSERT_TRUE(RunUntil([&ran] { return ran; }));
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST_P(StorageContractTest, DoneSeesItsOwnBatch) {
  constexpr int kWrites = 50;
  int completed = 0;
  for (int i = 0; i < kWrites; ++i) {
    const std::string key = "key" + std::to_string(i);
    storage().Write(Puts({{key, "v"}}), i % 10 == 0, [this, &completed, key](absl::Status s) {
      EXPECT_EQ(GetOrMissing(key), "v");
      ++completed;
    });
  }
  ASSERT_TRUE(RunUntil([&completed] { return completed == kWrites; }));
}

TEST_P(StorageContractTest, GetOfMissingKeyIsNotFound) {
  std::string value = "untouched";
  EXPECT_TRUE(absl::IsNotFound(storage().Get("absent", &value)));

  ASSERT_TRUE(WriteAndWait(Puts({{"k", "v"}})).ok());
  WriteBatch erase;
  erase.Delete("k");
  ASSERT_TRUE(WriteAndWait(std::move(erase)).ok());
  EXPECT_TRUE(absl::IsNotFound(storage().Get("k", &value)));
}

TEST_P(StorageContractTest, ScanVisitsHalfOpenRange) {
  ASSERT_TRUE(WriteAndWait(Puts({{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}})).ok());

  EXPECT_EQ(ScanAll("b", "d"), (KeyValues{{"b", "2"}, {"c", "3"}}));
  EXPECT_EQ(ScanAll("bb", "cc"), (KeyValues{{"c", "3"}}));
  EXPECT_EQ(ScanAll("c", "c"), KeyValues{});
  EXPECT_EQ(ScanAll("d", "b"), KeyValues{});
  EXPECT_EQ(ScanAll("e", ""), KeyValues{});
}

TEST_P(StorageContractTest, ScanWithEmptyEndHasNoUpperBound) {
  ASSERT_TRUE(WriteAndWait(Puts({{"a", "1"}, {"b", "2"}, {"\xff\xff", "3"}})).ok());

  EXPECT_EQ(ScanAll("b", ""), (KeyValues{{"b", "2"}, {"\xff\xff", "3"}}));
  EXPECT_EQ(ScanAll("", "").size(), 3u);
}

TEST_P(StorageContractTest, ScanStopsWhenVisitorReturnsFalse) {
  ASSERT_TRUE(WriteAndWait(Puts({{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}})).ok());

  EXPECT_EQ(ScanAll("", "", /*limit=*/2), (KeyValues{{"a", "1"}, {"b", "2"}}));
  EXPECT_EQ(ScanAll("b", "", /*limit=*/1), (KeyValues{{"b", "2"}}));
}

TEST_P(StorageContractTest, BinaryKeysSortAsUnsignedBytes) {
  using namespace std::string_literals;
  const std::vector<std::string> sorted = {"\0"s,   "\0\0"s,  "\x01"s,   "a"s,       "a\0"s,
                                           "a\0b"s, "a\x7f"s, "a\x80"s,  "a\xff"s,   "\x7f"s,
                                           "\x80"s, "\xff"s,  "\xff\0"s, "\xff\xff"s};
  WriteBatch batch;
  for (auto it = sorted.rbegin(); it != sorted.rend(); ++it) batch.Put(*it, "\0v\xff"s + *it);
  ASSERT_TRUE(WriteAndWait(std::move(batch)).ok());

  std::vector<std::string> scanned;
  for (const auto& [key, value] : ScanAll("", "")) {
    EXPECT_EQ(value, "\0v\xff"s + key);
    scanned.push_back(key);
  }
  EXPECT_EQ(scanned, sorted);
  EXPECT_EQ(GetOrMissing("a\0b"s), "\0v\xff"s + "a\0b"s);
  EXPECT_EQ(GetOrMissing("a\0c"s), "<missing>");
  EXPECT_EQ(ScanAll("a\0"s, "a\x80"s).size(), 3u);
}

TEST_P(StorageContractTest, DeleteRangeHandlesBinaryBounds) {
  using namespace std::string_literals;
  ASSERT_TRUE(
      WriteAndWait(Puts({{"a"s, "1"}, {"a\0"s, "2"}, {"a\0b"s, "3"}, {"a\xff"s, "4"}, {"b"s, "5"}}))
          .ok());
  WriteBatch batch;
  batch.DeleteRange("a\0"s, "a\xff"s);
  ASSERT_TRUE(WriteAndWait(std::move(batch)).ok());

  EXPECT_EQ(ScanAll("", ""), (KeyValues{{"a"s, "1"}, {"a\xff"s, "4"}, {"b"s, "5"}}));
}

// RocksDB rejects a range whose end is not after its begin, and when it does it may already
// have applied the earlier ops of the batch. Such a range must delete nothing instead.
TEST_P(StorageContractTest, EmptyOrReversedDeleteRangeDeletesNothingAndKeepsBatchWhole) {
  ASSERT_TRUE(WriteAndWait(Puts({{"b", "1"}, {"c", "1"}})).ok());
  WriteBatch batch;
  batch.Put("a", "2");
  batch.DeleteRange("c", "b");
  batch.DeleteRange("b", "b");
  batch.DeleteRange("b", "");
  batch.Put("d", "2");
  ASSERT_TRUE(WriteAndWait(std::move(batch)).ok());

  EXPECT_EQ(ScanAll("", ""), (KeyValues{{"a", "2"}, {"b", "1"}, {"c", "1"}, {"d", "2"}}));
}

TEST_P(StorageContractTest, EmptyBatchCompletes) {
  EXPECT_TRUE(WriteAndWait(WriteBatch(), /*sync=*/false).ok());
  EXPECT_TRUE(WriteAndWait(WriteBatch(), /*sync=*/true).ok());
}

TEST_P(StorageContractTest, ManyQueuedWritesCompleteInOrder) {
  constexpr int kWrites = 3000;
  std::vector<int> completed;
  for (int i = 0; i < kWrites; ++i) {
    WriteBatch batch = Puts({{"key" + std::to_string(i), std::to_string(i)}});
    batch.Put("last", std::to_string(i));
    storage().Write(std::move(batch), i % 100 == 99, [&completed, i](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      completed.push_back(i);
    });
  }
  ASSERT_TRUE(RunUntil([&completed] { return completed.size() == kWrites; }));

  for (int i = 0; i < kWrites; ++i) ASSERT_EQ(completed[i], i);
  EXPECT_EQ(GetOrMissing("last"), std::to_string(kWrites - 1));
  EXPECT_EQ(ScanAll("key", "kez").size(), static_cast<size_t>(kWrites));
}

TEST_P(StorageContractTest, ApproximateSizeBytesGrowsWithData) {
  constexpr int kValues = 256;
  constexpr size_t kValueBytes = 4096;
  const int64_t before_bytes = storage().ApproximateSizeBytes();
  for (int i = 0; i < kValues; ++i) {
    ASSERT_TRUE(
        WriteAndWait(Puts({{"key" + std::to_string(i), std::string(kValueBytes, 'v')}})).ok());
  }
  EXPECT_GE(storage().ApproximateSizeBytes() - before_bytes,
            static_cast<int64_t>(kValues * kValueBytes / 2));
}

TEST_P(StorageContractTest, CompactRangeKeepsData) {
  ASSERT_TRUE(WriteAndWait(Puts({{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}})).ok());
  WriteBatch batch;
  batch.DeleteRange("b", "d");
  ASSERT_TRUE(WriteAndWait(std::move(batch), /*sync=*/true).ok());

  EXPECT_TRUE(storage().CompactRange("b", "d").ok());
  EXPECT_TRUE(storage().CompactRange("", "").ok());
  EXPECT_EQ(ScanAll("", ""), (KeyValues{{"a", "1"}, {"d", "4"}}));
}

INSTANTIATE_TEST_SUITE_P(AllStorages, StorageContractTest, ::testing::Values("Memory", "RocksDb"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

// ---- RocksDbStorage beyond the contract ----

class RocksDbStorageTest : public ::testing::Test {
 protected:
  std::unique_ptr<RocksDbStorage> Open(const RocksDbOptions& opts = RocksDbOptions()) {
    return OpenAt(dir_.path(), &executor_, opts);
  }
  static std::unique_ptr<RocksDbStorage> OpenAt(const std::string& dir, Executor* executor,
                                                const RocksDbOptions& opts = RocksDbOptions()) {
    auto opened = RocksDbStorage::Open(dir, executor, opts);
    EXPECT_TRUE(opened.ok()) << opened.status();
    return opened.ok() ? std::move(*opened) : nullptr;
  }

  // Queues `count` single-key writes key<first>... and returns how many completed OK.
  std::shared_ptr<int> WriteKeys(RocksDbStorage& storage, int first, int count, bool sync) {
    auto completed = std::make_shared<int>(0);
    for (int i = first; i < first + count; ++i) {
      storage.Write(Puts({{Key(i), std::to_string(i)}}), sync, [completed](absl::Status s) {
        if (s.ok()) ++*completed;
      });
    }
    return completed;
  }
  static std::string Key(int i) {
    std::string digits = std::to_string(i);
    return "key" + std::string(6 - std::min<size_t>(6, digits.size()), '0') + digits;
  }
  static int CountKeys(const Storage& storage) {
    int count = 0;
    EXPECT_TRUE(storage
                    .Scan("key", "kez",
                          [&count](std::string_view, std::string_view) {
                            ++count;
                            return true;
                          })
                    .ok());
    return count;
  }

  ScopedTempDir dir_;
  QueueExecutor executor_;
};

TEST_F(RocksDbStorageTest, DataSurvivesCloseAndReopen) {
  auto storage = Open();
  auto unsynced = WriteKeys(*storage, 0, 100, /*sync=*/false);
  auto synced = WriteKeys(*storage, 100, 100, /*sync=*/true);
  ASSERT_TRUE(executor_.RunUntil([&] { return *unsynced + *synced == 200; }));
  storage.reset();

  storage = Open();
  EXPECT_EQ(CountKeys(*storage), 200);
  std::string value;
  ASSERT_TRUE(storage->Get(Key(150), &value).ok());
  EXPECT_EQ(value, "150");
}

TEST_F(RocksDbStorageTest, DestructorWritesQueuedBatchesAndPostsTheirDone) {
  auto storage = Open();
  auto completed = WriteKeys(*storage, 0, 500, /*sync=*/false);
  storage.reset();
  executor_.RunReady();
  EXPECT_EQ(*completed, 500);

  storage = Open();
  EXPECT_EQ(CountKeys(*storage), 500);
}

TEST_F(RocksDbStorageTest, SecondOpenInSameProcessFailsWithClearMessage) {
  auto storage = Open();
  QueueExecutor other_executor;
  auto second = RocksDbStorage::Open(dir_.path(), &other_executor, RocksDbOptions());

  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(second.status().message(), "data dir " + dir_.path() +
                                           " is already open in this process (lock held on " +
                                           dir_.path() + "/LOCK)");
}

// Reads one byte from `fd`, waiting at most wait_ms. Returns -1 on timeout or EOF.
int ReadByte(int fd, int wait_ms) {
  pollfd pfd = {fd, POLLIN, 0};
  if (poll(&pfd, 1, wait_ms) != 1) return -1;
  char byte = 0;
  return read(fd, &byte, 1) == 1 ? byte : -1;
}

// The helper process of OpenOfDirHeldByAnotherProcessFailsWithClearMessage is this binary
// run again with the dir in this variable, a pipe on kHelperReadyFd to report the open and
// one on kHelperReleaseFd whose EOF lets it go. It runs no tests.
constexpr char kHoldLockDirEnv[] = "GEOETCD_TEST_HOLD_LOCK_DIR";
constexpr int kHelperReadyFd = 3;
constexpr int kHelperReleaseFd = 4;
constexpr int kHelperWaitMs = 30'000;

[[noreturn]] void RunLockHolderHelper(const char* dir) {
  QueueExecutor executor;
  auto held = RocksDbStorage::Open(dir, &executor, RocksDbOptions());
  const char byte = held.ok() ? 'y' : 'n';
  const bool reported = write(kHelperReadyFd, &byte, 1) == 1;
  ReadByte(kHelperReleaseFd, kHelperWaitMs);
  _exit(reported && held.ok() ? 0 : 1);  // Without closing: the lock dies with the process.
}

// In the helper process this takes over before the first test; elsewhere it does nothing.
// (Not a static initializer: RocksDB's own statics may not be initialized yet then.)
class LockHolderHelperEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    const char* dir = std::getenv(kHoldLockDirEnv);
    if (dir != nullptr) RunLockHolderHelper(dir);
  }
};
::testing::Environment* const kLockHolderHelper =
    ::testing::AddGlobalTestEnvironment(new LockHolderHelperEnvironment);

// Starts the helper process. The child only rearranges descriptors and execs: RocksDB's
// in-process lock table would otherwise be inherited, and forking a threaded process is
// unsafe beyond exec.
pid_t SpawnLockHolder(const std::string& dir, int ready_fd, int release_fd) {
  std::vector<std::string> env_strings = {std::string(kHoldLockDirEnv) + "=" + dir};
  for (char** var = environ; *var != nullptr; ++var) env_strings.emplace_back(*var);
  std::vector<char*> envp;
  for (std::string& var : env_strings) envp.push_back(var.data());
  envp.push_back(nullptr);
  std::string arg0 = "gateway_tests";
  char* argv[] = {arg0.data(), nullptr};

  const pid_t pid = fork();
  if (pid == 0) {
    const int null_fd = open("/dev/null", O_WRONLY);
    if (null_fd < 0 || dup2(null_fd, STDOUT_FILENO) < 0) _exit(127);
    if (dup2(ready_fd, kHelperReadyFd) < 0 || dup2(release_fd, kHelperReleaseFd) < 0) {
      _exit(127);
    }
    execve("/proc/self/exe", argv, envp.data());
    _exit(127);
  }
  return pid;
}

// A pipe whose ends are close-on-exec and numbered above the helper's fixed descriptors.
void HighPipe(int fds[2]) {
  int raw[2];
  ASSERT_EQ(pipe2(raw, O_CLOEXEC), 0);
  for (int i = 0; i < 2; ++i) {
    fds[i] = fcntl(raw[i], F_DUPFD_CLOEXEC, 10);
    ASSERT_GE(fds[i], 10);
    close(raw[i]);
  }
}

TEST_F(RocksDbStorageTest, OpenOfDirHeldByAnotherProcessFailsWithClearMessage) {
  int ready[2];
  int release[2];
  ASSERT_NO_FATAL_FAILURE(HighPipe(ready));
  ASSERT_NO_FATAL_FAILURE(HighPipe(release));
  const pid_t child = SpawnLockHolder(dir_.path(), ready[1], release[0]);
  ASSERT_GT(child, 0);
  close(ready[1]);
  close(release[0]);
  const int opened = ReadByte(ready[0], kHelperWaitMs);

  auto second = RocksDbStorage::Open(dir_.path(), &executor_, RocksDbOptions());
  close(release[1]);
  int wait_status = 0;
  waitpid(child, &wait_status, 0);
  close(ready[0]);

  ASSERT_EQ(opened, 'y') << "the helper process could not open the dir";
  EXPECT_TRUE(WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0) << wait_status;
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(second.status().message(), "data dir " + dir_.path() +
                                           " is in use by another geoetcd process (lock held on " +
                                           dir_.path() + "/LOCK)");
  EXPECT_NE(Open(), nullptr) << "the lock must be free once the other process exited";
}

TEST_F(RocksDbStorageTest, OpenOfUnusableDirNamesTheDir) {
  const std::string file = dir_.Sub("not-a-dir");
  FILE* f = std::fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);

  auto opened = RocksDbStorage::Open(file, &executor_, RocksDbOptions());
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.status().message().find("opening data dir " + file), std::string::npos)
      << opened.status();
}

// queue_batches_max = 1 makes nearly every Write() wait for the writer thread, and a 1-byte
// group cap makes every batch its own group.
TEST_F(RocksDbStorageTest, TinyQueueAndGroupBoundsKeepOrder) {
  RocksDbOptions opts;
  opts.queue_batches_max = 1;
  opts.group_bytes_max = 1;
  auto storage = Open(opts);
  std::vector<int> completed;
  for (int i = 0; i < 300; ++i) {
    storage->Write(Puts({{Key(i), "v"}}), i % 50 == 0, [&completed, i](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      completed.push_back(i);
    });
  }
  ASSERT_TRUE(executor_.RunUntil([&completed] { return completed.size() == 300; }));

  for (int i = 0; i < 300; ++i) ASSERT_EQ(completed[i], i);
  EXPECT_EQ(storage->stats().batches_written, 300u);
  EXPECT_EQ(storage->stats().groups_written, 300u);
}

TEST_F(RocksDbStorageTest, BatchLargerThanGroupCapIsWrittenWhole) {
  RocksDbOptions opts;
  opts.group_bytes_max = 1024;
  auto storage = Open(opts);
  WriteBatch big;
  for (int i = 0; i < 16; ++i) big.Put(Key(i), std::string(4096, 'v'));
  std::optional<absl::Status> result;
  storage->Write(std::move(big), true, [&result](absl::Status s) { result = s; });
  ASSERT_TRUE(executor_.RunUntil([&result] { return result.has_value(); }));

  EXPECT_TRUE(result->ok()) << *result;
  EXPECT_EQ(CountKeys(*storage), 16);
  EXPECT_EQ(storage->stats().groups_written, 1u);
}

// An executor whose Post() blocks while closed, to hold the writer thread between groups.
class GatedExecutor : public Executor {
 public:
  explicit GatedExecutor(Executor* inner) : inner_(inner) {}
  void Post(std::function<void()> fn) override {
    std::unique_lock<std::mutex> lock(mu_);
    ++posts_;
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_; });
    inner_->Post(std::move(fn));
  }
  TimerId PostAfter(int64_t delay_ms, std::function<void()> fn) override {
    return inner_->PostAfter(delay_ms, std::move(fn));
  }
  void Cancel(TimerId id) override { inner_->Cancel(id); }

  void WaitForPosts(int posts) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this, posts] { return posts_ >= posts; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  Executor* inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  int posts_ = 0;
  bool open_ = false;
};

TEST_F(RocksDbStorageTest, BatchesQueuedDuringACommitFormOneGroup) {
  GatedExecutor gate(&executor_);
  auto storage = OpenAt(dir_.path(), &gate);
  auto first = WriteKeys(*storage, 0, 1, /*sync=*/false);
  gate.WaitForPosts(1);  // The writer thread committed the first group and is held.
  auto rest = WriteKeys(*storage, 1, 99, /*sync=*/false);
  auto synced = WriteKeys(*storage, 100, 1, /*sync=*/true);
  gate.Open();
  ASSERT_TRUE(executor_.RunUntil([&] { return *first + *rest + *synced == 101; }));

  const RocksDbStorage::Stats stats = storage->stats();
  EXPECT_EQ(stats.batches_written, 101u);
  EXPECT_EQ(stats.groups_written, 2u);
  EXPECT_EQ(stats.synced_groups, 1u);
  storage.reset();
}

TEST_F(RocksDbStorageTest, ConcurrentWritersKeepPerThreadOrder) {
  constexpr int kThreads = 4;
  constexpr int kWritesPerThread = 500;
  auto storage = Open();
  std::vector<std::vector<int>> completed(kThreads);
  int total = 0;
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kWritesPerThread; ++i) {
        storage->Write(Puts({{Key(t * kWritesPerThread + i), "v"}}), i % 100 == 0,
                       [&, t, i](absl::Status s) {
                         EXPECT_TRUE(s.ok()) << s;
                         completed[t].push_back(i);
                         ++total;
                       });
      }
    });
  }
  const bool all_done = executor_.RunUntil([&] { return total == kThreads * kWritesPerThread; });
  for (std::thread& writer : writers) writer.join();
  ASSERT_TRUE(all_done);

  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(completed[t].size(), static_cast<size_t>(kWritesPerThread));
    EXPECT_TRUE(std::is_sorted(completed[t].begin(), completed[t].end())) << "thread " << t;
  }
  EXPECT_EQ(CountKeys(*storage), kThreads * kWritesPerThread);
}

TEST_F(RocksDbStorageTest, CheckpointIsAnOpenableCopy) {
  auto storage = Open();
  auto before = WriteKeys(*storage, 0, 10, /*sync=*/true);
  ASSERT_TRUE(executor_.RunUntil([&] { return *before == 10; }));
  const std::string checkpoint_dir = dir_.Sub("checkpoint");
  ASSERT_TRUE(storage->Checkpoint(checkpoint_dir).ok());
  auto after = WriteKeys(*storage, 10, 10, /*sync=*/true);
  ASSERT_TRUE(executor_.RunUntil([&] { return *after == 10; }));

  QueueExecutor copy_executor;
  auto copy = OpenAt(checkpoint_dir, &copy_executor);
  ASSERT_NE(copy, nullptr);
  EXPECT_EQ(CountKeys(*copy), 10);
  EXPECT_EQ(CountKeys(*storage), 20);
  EXPECT_FALSE(storage->Checkpoint(checkpoint_dir).ok()) << "the target must not exist";
}

}  // namespace
}  // namespace geoetcd
