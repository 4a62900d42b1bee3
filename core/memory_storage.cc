#include "core/memory_storage.h"

#include <algorithm>
#include <utility>

#include "core/check.h"

namespace geoetcd {

void MemoryStorage::State::Apply(const WriteBatch& batch) {
  for (const WriteBatch::Op& op : batch.ops()) {
    switch (op.type) {
      case WriteBatch::OpType::kPut:
        Put(op.key, op.value);
        break;
      case WriteBatch::OpType::kDelete: {
        auto it = entries.find(op.key);
        if (it != entries.end()) Erase(it);
        break;
      }
      case WriteBatch::OpType::kDeleteRange: {
        if (op.value <= op.key) break;
        auto it = entries.lower_bound(op.key);
        while (it != entries.end() && it->first < op.value) Erase(it++);
        break;
      }
    }
  }
}

void MemoryStorage::State::Put(const std::string& key, const std::string& value) {
  auto [it, inserted] = entries.try_emplace(key);
  if (inserted) bytes += static_cast<int64_t>(key.size());
  bytes += static_cast<int64_t>(value.size()) - static_cast<int64_t>(it->second.size());
  it->second = value;
}

void MemoryStorage::State::Erase(std::map<std::string, std::string, std::less<>>::iterator it) {
  bytes -= static_cast<int64_t>(it->first.size() + it->second.size());
  entries.erase(it);
}

MemoryStorage::MemoryStorage(Executor* executor) : executor_(executor) {
  CHECK(executor != nullptr);
}

void MemoryStorage::Write(WriteBatch batch, bool sync, Done done) {
  const uint64_t seq = next_seq_++;
  if (!write_error_.ok()) {
    // A failed write makes nothing durable, not even the batches before it.
    Schedule(seq, /*sync=*/false, write_error_, std::move(done));
    return;
  }
  visible_.Apply(batch);
  unsynced_.push_back({seq, std::move(batch)});
  Schedule(seq, sync, absl::OkStatus(), std::move(done));
}

void MemoryStorage::Schedule(uint64_t seq, bool sync, absl::Status status, Done done) {
  completions_.push_back({seq, sync, std::move(status), std::move(done)});
  auto ready = [this, epoch = epoch_, seq] { MarkReady(epoch, seq); };
  if (latency_ms_) {
    executor_->PostAfter(latency_ms_(), std::move(ready));
  } else {
    executor_->Post(std::move(ready));
  }
}

void MemoryStorage::MarkReady(uint64_t epoch, uint64_t seq) {
  if (epoch != epoch_) return;  // Scheduled before a crash: the process that waited died.
  CHECK(!completions_.empty() && completions_.front().seq <= seq);
  const size_t index = seq - completions_.front().seq;
  CHECK(index < completions_.size() && completions_[index].seq == seq);
  completions_[index].ready = true;
  DeliverReady();
}

void MemoryStorage::DeliverReady() {
  const uint64_t epoch = epoch_;
  while (!completions_.empty() && completions_.front().ready && epoch == epoch_) {
    Completion completion = std::move(completions_.front());
    completions_.pop_front();
    if (completion.sync) PersistThrough(completion.seq);
    completion.done(std::move(completion.status));
  }
}

void MemoryStorage::PersistThrough(uint64_t seq) {
  while (!unsynced_.empty() && unsynced_.front().seq <= seq) {
    durable_.Apply(unsynced_.front().batch);
    unsynced_.pop_front();
    ++synced_batches_;
  }
}

absl::Status MemoryStorage::Get(std::string_view key, std::string* value) const {
  auto it = visible_.entries.find(key);
  if (it == visible_.entries.end()) return absl::NotFoundError("key not found");
  *value = it->second;
  return absl::OkStatus();
}

absl::Status MemoryStorage::Scan(std::string_view begin, std::string_view end,
                                 const Visitor& visit) const {
  for (auto it = visible_.entries.lower_bound(begin); it != visible_.entries.end(); ++it) {
    if (!end.empty() && it->first >= end) break;
    if (!visit(it->first, it->second)) break;
  }
  return absl::OkStatus();
}

int64_t MemoryStorage::ApproximateSizeBytes() const { return visible_.bytes; }

absl::Status MemoryStorage::CompactRange(std::string_view begin, std::string_view end) {
  return absl::OkStatus();
}

void MemoryStorage::Flush() { PersistThrough(next_seq_ - 1); }

void MemoryStorage::Crash() { CrashKeepingUnsynced(0); }

void MemoryStorage::CrashKeepingUnsynced(size_t batches_kept) {
  if (batches_kept > 0 && !unsynced_.empty()) {
    const size_t kept = std::min(batches_kept, unsynced_.size());
    PersistThrough(unsynced_[kept - 1].seq);
  }
  unsynced_.clear();
  completions_.clear();
  visible_ = durable_;
  ++epoch_;
}

void MemoryStorage::SetWriteError(absl::Status status) { write_error_ = std::move(status); }

void MemoryStorage::SetLatencyHook(std::function<int64_t()> latency_ms) {
  latency_ms_ = std::move(latency_ms);
}

}  // namespace geoetcd
