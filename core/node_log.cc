// The Node's replicated log (core/node.h): staging entries at the write region, applying
// them elsewhere, recovering, reading and truncating the log.
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/errors.h"
#include "core/keyspace_codec.h"
#include "core/node.h"
#include "core/node_internal.h"

namespace geoetcd {

namespace {

int64_t EntryBytes(const LogEntry& entry) { return static_cast<int64_t>(entry.ByteSizeLong()); }

}  // namespace

void Node::StageEntry(Account* account, LogEntry entry) {
  entry.set_index(account->head_index + 1);
  entry.set_epoch(account->epoch);
  if (entry.origin() == 0) entry.set_origin(account->write_region);
  if (executing_forward_.first != 0 && entry.forward_from() == 0) {
    entry.set_forward_from(executing_forward_.first);
    entry.set_forward_id(executing_forward_.second);
    forwards_logged_.insert(executing_forward_);
  }
  staged_.Put(codec::LogKey(account->name(), entry.index()), entry.SerializeAsString());
  account->head_index = entry.index();
  account->tail_bytes += EntryBytes(entry);
  account->tail.push_back(std::move(entry));
  // Keep at least the newest entry: it tells a restarted region where the log ends.
  while (account->tail.size() > 1 && account->tail_bytes > options_.log_tail_bytes_max) {
    account->tail_bytes -= EntryBytes(account->tail.front());
    account->tail.pop_front();
  }
}

absl::Status Node::ApplyEntry(Account* account, const LogEntry& entry) {
  CHECK(entry.index() == account->head_index + 1);
  hlc_.Observe(entry.hlc());
  CommitStamp stamp;
  stamp.epoch = entry.epoch();
  stamp.hlc = entry.hlc();
  stamp.origin = entry.origin();
  if (entry.ops_size() > 0) {
    auto rev = account->kv.ApplyOps(entry, stamp, &staged_);
    if (!rev.ok()) return rev.status();
    // InjectedBugs that skip entries leave this region's history diverged on purpose: let
    // it run on, so the simulator's checkers (not this check) have to find it.
    const bool bug_diverges =
        options_.bugs.apply_out_of_order || options_.bugs.drop_replicated_commit;
    if (*rev != entry.revision() && !bug_diverges) {
      return absl::DataLossError(
          absl::StrCat("geoetcd: log entry ", entry.index(), " of account ", account->name(),
                       " applies at revision ", *rev, ", sequenced at ", entry.revision()));
    }
  }
  if (entry.has_lease_grant() && entry.lease_grant().id() != 0) {
    account->lessor.Grant(entry.lease_grant().id(), entry.lease_grant().ttl_s(),
                          ports_.clock->MonotonicMs());
    staged_.Put(codec::LeaseKey(account->name(), entry.lease_grant().id()),
                entry.lease_grant().SerializeAsString());
  }
  if (entry.lease_revoke() != 0) {
    account->lessor.Remove(entry.lease_revoke());
    staged_.Delete(codec::LeaseKey(account->name(), entry.lease_revoke()));
  }
  if (entry.compact_revision() != 0) {
    if (entry.compact_revision() > account->kv.compact_revision() &&
        entry.compact_revision() <= account->kv.revision()) {
      account->kv.Compact(entry.compact_revision(), &staged_);
      account->pending_compact_rev =
          std::max(account->pending_compact_rev, entry.compact_revision());
    }
  }
  if (entry.has_alarms()) {
    auto alarms = AlarmSet::Decode(entry.alarms().SerializeAsString());
    if (!alarms.ok()) return alarms.status();
    account->alarms = *std::move(alarms);
    StageAlarms(account);
  }
  StageEntry(account, entry);
  ++peer_stats_.entries_applied;
  return absl::OkStatus();
}

absl::Status Node::RecoverLog(Account* account) {
  const std::string prefix = codec::LogPrefix(account->name());
  bool corrupt = false;
  bool first = true;
  std::deque<LogEntry> tail;
  int64_t tail_bytes = 0;
  uint64_t last = 0;
  auto s = ports_.storage->Scan(prefix, codec::PrefixEnd(prefix),
                                [&](std::string_view k, std::string_view v) {
    uint64_t index = 0;
    LogEntry entry;
    if (!codec::ParseLogKey(account->name(), k, &index) ||
        !entry.ParseFromArray(v.data(), static_cast<int>(v.size())) || entry.index() != index ||
        (!first && index != last + 1)) {
      corrupt = true;
      return false;
    }
    if (first) account->first_index = index;
    first = false;
    last = index;
    tail_bytes += EntryBytes(entry);
    if (entry.forward_from() != 0) {
      // Executed before the restart; its answer is lost, so a retry learns only that.
      auto reply = std::make_unique<ForwardReply>();
      reply->set_id(entry.forward_id());
      const absl::Status unknown = errors::Timeout();
      reply->set_code(static_cast<int32_t>(unknown.code()));
      reply->set_message(std::string(unknown.message()));
      reply->set_index(index);
      RememberForward({entry.forward_from(), entry.forward_id()}, std::move(reply));
    }
    tail.push_back(std::move(entry));
    while (tail.size() > 1 && tail_bytes > options_.log_tail_bytes_max) {
      tail_bytes -= EntryBytes(tail.front());
      tail.pop_front();
    }
    return true;
  });
  if (!s.ok()) return s;
  if (corrupt) return errors::Corrupt();
  if (!tail.empty()) {
    // The log and the keyspace are written in the same atomic batches.
    if (tail.back().revision() != account->kv.revision()) return errors::Corrupt();
    account->epoch = std::max<uint64_t>(1, tail.back().epoch());
  } else {
    account->first_index = 1;
  }
  account->head_index = account->sealed_index = account->durable_index = last;
  account->tail = std::move(tail);
  account->tail_bytes = tail_bytes;
  return absl::OkStatus();
}

absl::Status Node::RecoverForwardMarkers() {
  const std::string prefix = codec::ForwardMarkerPrefix();
  bool corrupt = false;
  auto s = ports_.storage->Scan(prefix, codec::PrefixEnd(prefix),
                                [&](std::string_view k, std::string_view v) {
    auto reply = std::make_unique<ForwardReply>();
    if (k.size() != prefix.size() + 16 ||
        !reply->ParseFromArray(v.data(), static_cast<int>(v.size()))) {
      corrupt = true;
      return false;
    }
    uint64_t origin = 0;
    for (size_t i = prefix.size(); i < prefix.size() + 8; ++i) {
      origin = (origin << 8) | static_cast<unsigned char>(k[i]);
    }
    const uint64_t id = reply->id();
    RememberForward({origin, id}, std::move(reply));
    return true;
  });
  if (!s.ok()) return s;
  return corrupt ? errors::Corrupt() : absl::OkStatus();
}

std::vector<LogEntry> Node::ReadEntries(Account* account, uint64_t from_index,
                                        uint64_t to_index) {
  std::vector<LogEntry> out;
  if (from_index > to_index || from_index < account->first_index) return out;
  int64_t bytes = 0;
  auto take = [&](const LogEntry& e) {
    if (e.index() < from_index) return true;
    if (e.index() > to_index || (!out.empty() && bytes + EntryBytes(e) > options_.append_bytes_max)) {
      return false;
    }
    bytes += EntryBytes(e);
    out.push_back(e);
    return true;
  };
  if (!account->tail.empty() && account->tail.front().index() <= from_index) {
    const size_t start = static_cast<size_t>(from_index - account->tail.front().index());
    for (size_t i = start; i < account->tail.size(); ++i) {
      if (!take(account->tail[i])) break;
    }
    return out;
  }
  // Older than the tail: from storage, which holds every durable entry.
  const std::string name = account->name();
  auto s = ports_.storage->Scan(codec::LogKey(name, from_index),
                                codec::LogKey(name, to_index + 1),
                                [&](std::string_view, std::string_view v) {
                                  LogEntry e;
                                  if (!e.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
                                    return false;
                                  }
                                  return take(e);
                                });
  // A gap (or a read error) ends the answer early; the asker pulls again or repairs.
  if (!s.ok()) out.clear();
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].index() != from_index + i) {
      out.resize(i);
      break;
    }
  }
  return out;
}

uint64_t Node::LogTruncationPoint(Account* account) {
  // The log below the compaction point is history no reader can ask for; but a region that
  // has not got it yet needs it to catch up, so W keeps what a region lacks, unless that
  // region is more than log_catchup_entries_max behind: it repairs from another's state
  // (node_repair.cc) rather than hold the log without bound.
  const uint64_t catchup = static_cast<uint64_t>(std::max<int64_t>(1, options_.log_catchup_entries_max));
  const uint64_t laggard_floor = account->head_index > catchup ? account->head_index - catchup : 0;
  uint64_t keep_from = account->head_index + 1;
  for (const RegionInfo& region : options_.regions) {
    if (region.id == options_.member_id) continue;
    auto it = account->peers.find(region.id);
    const uint64_t needs = it == account->peers.end() ? 1 : it->second.durable_index + 1;
    keep_from = std::min(keep_from, std::max(needs, laggard_floor + 1));
  }
  if (keep_from <= account->first_index) return account->first_index;
  const int64_t compact_rev = account->kv.compact_revision();
  const std::string name = account->name();
  uint64_t compacted_below = account->first_index;
  auto s = ports_.storage->Scan(codec::LogKey(name, account->first_index),
                                codec::LogKey(name, account->head_index + 1),
                                [&](std::string_view, std::string_view v) {
                                  LogEntry e;
                                  if (!e.ParseFromArray(v.data(), static_cast<int>(v.size())) ||
                                      e.revision() >= compact_rev || e.index() >= keep_from) {
                                    return false;
                                  }
                                  // Keep the entry whose state the compaction point shows.
                                  compacted_below = e.index();
                                  return true;
                                });
  if (!s.ok()) return account->first_index;
  return std::min(keep_from, compacted_below);
}

void Node::TruncateLog(Account* account, uint64_t keep_from) {
  if (keep_from <= account->first_index || keep_from > account->head_index) return;
  const std::string name = account->name();
  // The log is also W's memory of which forwards it executed (RecoverLog): an entry a
  // forward made must leave that memory behind as a marker, or a retry reaching a W that
  // restarted after the truncation would execute the forward a second time.
  auto keep_answer = [&](const LogEntry& e) {
    if (e.forward_from() == 0) return;
    const std::pair<uint64_t, uint64_t> key{e.forward_from(), e.forward_id()};
    auto it = forwards_seen_.find(key);
    if (it == forwards_seen_.end()) return;  // aged out of the dedup window already
    ForwardReply unknown;
    const ForwardReply* reply = it->second.get();
    if (reply == nullptr) {
      // Not answered yet: after a restart a retry can only learn that it ran.
      const absl::Status timeout = errors::Timeout();
      unknown.set_id(key.second);
      unknown.set_code(static_cast<int32_t>(timeout.code()));
      unknown.set_message(std::string(timeout.message()));
      unknown.set_index(e.index());
      reply = &unknown;
    }
    staged_.Put(codec::ForwardMarkerKey(key.first, key.second), reply->SerializeAsString());
  };
  if (!account->tail.empty() && account->tail.front().index() <= account->first_index) {
    for (const LogEntry& e : account->tail) {
      if (e.index() >= keep_from) break;
      keep_answer(e);
    }
  } else {
    (void)ports_.storage->Scan(codec::LogKey(name, account->first_index),
                               codec::LogKey(name, keep_from),
                               [&](std::string_view, std::string_view v) {
                                 LogEntry e;
                                 if (e.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
                                   keep_answer(e);
                                 }
                                 return true;
                               });
  }
  staged_.DeleteRange(codec::LogKey(name, account->first_index), codec::LogKey(name, keep_from));
  account->first_index = keep_from;
  while (account->tail.size() > 1 && account->tail.front().index() < keep_from) {
    account->tail_bytes -= EntryBytes(account->tail.front());
    account->tail.pop_front();
  }
}

void Node::WhenDurable(Account* account, uint64_t index, std::function<void()> fn) {
  if (index <= account->durable_index) {
    ports_.executor->Post(std::move(fn));
    return;
  }
  account->index_waiters.emplace(index, std::move(fn));
}

}  // namespace geoetcd
