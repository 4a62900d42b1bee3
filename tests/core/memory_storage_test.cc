// MemoryStorage beyond the Storage contract (tests/gateway/storage_contract_test.cc runs the
// contract): the disk model the simulator relies on — durability, crashes, faults, latency.
#include "core/memory_storage.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/manual_ports.h"

namespace geoetcd {
namespace {

using testing::ManualClock;
using testing::ManualExecutor;

class MemoryStorageTest : public ::testing::Test {
 protected:
  // Writes key=value and returns where the outcome of its `done` will be recorded.
  std::shared_ptr<std::vector<absl::Status>> Put(const std::string& key, const std::string& value,
                                                 bool sync) {
    WriteBatch batch;
    batch.Put(key, value);
    storage_.Write(std::move(batch), sync,
                   [results = results_](absl::Status s) { results->push_back(std::move(s)); });
    return results_;
  }

  std::string Keys() {
    std::string keys;
    EXPECT_TRUE(storage_
                    .Scan("", "",
                          [&keys](std::string_view key, std::string_view) {
                            keys += std::string(key) + ",";
                            return true;
                          })
                    .ok());
    return keys;
  }

  ManualClock clock_;
  ManualExecutor executor_{&clock_};
  MemoryStorage storage_{&executor_};
  std::shared_ptr<std::vector<absl::Status>> results_ =
      std::make_shared<std::vector<absl::Status>>();
};

TEST_F(MemoryStorageTest, WriteIsVisibleAtOnceButDoneIsPosted) {
  Put("a", "1", /*sync=*/true);
  EXPECT_EQ(Keys(), "a,");
  EXPECT_TRUE(results_->empty());
  EXPECT_EQ(executor_.pending(), 1u);

  executor_.RunUntilIdle();
  ASSERT_EQ(results_->size(), 1u);
  EXPECT_TRUE((*results_)[0].ok());
}

TEST_F(MemoryStorageTest, CrashDropsUnsyncedBatchesWhole) {
  Put("a", "1", /*sync=*/true);
  executor_.RunUntilIdle();
  WriteBatch batch;
  batch.Put("b", "2");
  batch.Put("c", "3");
  batch.Delete("a");
  storage_.Write(std::move(batch), /*sync=*/false, [](absl::Status) {});
  executor_.RunUntilIdle();
  EXPECT_EQ(Keys(), "b,c,");
  EXPECT_EQ(storage_.unsynced_batches(), 1u);

  storage_.Crash();
  EXPECT_EQ(Keys(), "a,");
  EXPECT_EQ(storage_.unsynced_batches(), 0u);
  EXPECT_EQ(storage_.ApproximateSizeBytes(), 2);
}

TEST_F(MemoryStorageTest, SyncWriteMakesEarlierWritesDurable) {
  Put("a", "1", /*sync=*/false);
  Put("b", "2", /*sync=*/false);
  Put("c", "3", /*sync=*/true);
  Put("d", "4", /*sync=*/false);
  executor_.RunUntilIdle();
  EXPECT_EQ(storage_.synced_batches(), 3u);

  storage_.Crash();
  EXPECT_EQ(Keys(), "a,b,c,");
}

// Durability comes with the `done`: a crash before it may lose the batch, and the model
// takes that harsher outcome. The `done` of a batch lost that way never runs.
TEST_F(MemoryStorageTest, CrashBeforeDoneLosesSyncWriteAndItsDone) {
  Put("a", "1", /*sync=*/true);
  storage_.Crash();
  EXPECT_EQ(Keys(), "");

  executor_.RunUntilIdle();
  EXPECT_TRUE(results_->empty());
  EXPECT_EQ(storage_.pending_dones(), 0u);
}

TEST_F(MemoryStorageTest, FlushMakesEverythingDurable) {
  Put("a", "1", /*sync=*/false);
  Put("b", "2", /*sync=*/false);
  storage_.Flush();
  EXPECT_EQ(storage_.synced_batches(), 2u);

  storage_.Crash();
  EXPECT_EQ(Keys(), "a,b,");
}

TEST_F(MemoryStorageTest, CrashKeepingUnsyncedKeepsAPrefix) {
  Put("a", "1", /*sync=*/false);
  Put("b", "2", /*sync=*/false);
  Put("c", "3", /*sync=*/false);
  executor_.RunUntilIdle();

  storage_.CrashKeepingUnsynced(2);
  EXPECT_EQ(Keys(), "a,b,");
  storage_.CrashKeepingUnsynced(5);
  EXPECT_EQ(Keys(), "a,b,");
}

TEST_F(MemoryStorageTest, StorageKeepsWorkingAfterCrash) {
  Put("a", "1", /*sync=*/false);
  storage_.Crash();
  Put("b", "2", /*sync=*/true);
  executor_.RunUntilIdle();

  ASSERT_EQ(results_->size(), 1u);
  EXPECT_TRUE((*results_)[0].ok());
  storage_.Crash();
  EXPECT_EQ(Keys(), "b,");
}

TEST_F(MemoryStorageTest, WriteErrorAppliesNothingAndReachesDone) {
  Put("a", "1", /*sync=*/false);
  storage_.SetWriteError(absl::DataLossError("disk on fire"));
  Put("b", "2", /*sync=*/true);
  executor_.RunUntilIdle();

  ASSERT_EQ(results_->size(), 2u);
  EXPECT_TRUE((*results_)[0].ok());
  EXPECT_EQ((*results_)[1], absl::DataLossError("disk on fire"));
  EXPECT_EQ(Keys(), "a,");
  EXPECT_EQ(storage_.synced_batches(), 0u) << "a failed sync write makes nothing durable";

  storage_.SetWriteError(absl::OkStatus());
  Put("c", "3", /*sync=*/false);
  executor_.RunUntilIdle();
  EXPECT_TRUE((*results_)[2].ok());
  EXPECT_EQ(Keys(), "a,c,");
}

TEST_F(MemoryStorageTest, LatencyHookDelaysDoneAndKeepsFifo) {
  std::vector<int64_t> latencies_ms = {30, 10, 20};
  size_t next = 0;
  storage_.SetLatencyHook([&] { return latencies_ms[next++]; });
  std::vector<int> completed;
  for (int i = 0; i < 3; ++i) {
    WriteBatch batch;
    batch.Put("k" + std::to_string(i), "v");
    storage_.Write(std::move(batch), i == 2,
                   [&completed, i](absl::Status) { completed.push_back(i); });
  }
  EXPECT_EQ(Keys(), "k0,k1,k2,");

  executor_.AdvanceMs(29);
  EXPECT_TRUE(completed.empty()) << "the second write must wait for the first";
  EXPECT_EQ(storage_.synced_batches(), 0u);
  executor_.AdvanceMs(1);
  EXPECT_EQ(completed, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(storage_.synced_batches(), 3u);
}

TEST_F(MemoryStorageTest, LatencyHookDeliversEachDoneAtItsOwnTimeWhenInOrder) {
  int64_t latency_ms = 10;
  storage_.SetLatencyHook([&latency_ms] { return latency_ms; });
  std::vector<int> completed;
  for (int i = 0; i < 2; ++i) {
    latency_ms = 10 * (i + 1);
    storage_.Write(WriteBatch(), false, [&completed, i](absl::Status) { completed.push_back(i); });
  }

  executor_.AdvanceMs(10);
  EXPECT_EQ(completed, (std::vector<int>{0}));
  executor_.AdvanceMs(10);
  EXPECT_EQ(completed, (std::vector<int>{0, 1}));
}

TEST_F(MemoryStorageTest, CrashDropsDonesDelayedByLatency) {
  storage_.SetLatencyHook([] { return int64_t{5}; });
  Put("a", "1", /*sync=*/true);
  storage_.Crash();
  executor_.AdvanceMs(10);

  EXPECT_TRUE(results_->empty());
  EXPECT_EQ(Keys(), "");
}

TEST_F(MemoryStorageTest, DoneMayWriteAndCrashReentrantly) {
  storage_.Write(WriteBatch(), true, [this](absl::Status) {
    Put("inner", "v", /*sync=*/false);
    storage_.Crash();
  });
  Put("second", "v", /*sync=*/false);
  executor_.RunUntilIdle();

  EXPECT_TRUE(results_->empty()) << "both writes' dones were pending at the crash";
  EXPECT_EQ(Keys(), "");
}

TEST_F(MemoryStorageTest, ApproximateSizeBytesIsKeysPlusValues) {
  Put("ab", "123", /*sync=*/false);
  Put("c", "4", /*sync=*/false);
  EXPECT_EQ(storage_.ApproximateSizeBytes(), 7);
  Put("ab", "1", /*sync=*/false);
  EXPECT_EQ(storage_.ApproximateSizeBytes(), 5);
  WriteBatch batch;
  batch.DeleteRange("a", "b");
  storage_.Write(std::move(batch), false, [](absl::Status) {});
  EXPECT_EQ(storage_.ApproximateSizeBytes(), 2);
}

}  // namespace
}  // namespace geoetcd
