// Storage encoding of an account's keyspace. Layout (all under the account prefix):
//   a/<account>/c/<revision BE64>             -> CommitMeta   one per commit: the log index
//   a/<account>/r/<revision BE64><sub BE32>   -> KeyRecord    one per key version written
//   a/<account>/meta                          -> AccountMeta  compaction point, epoch
//   a/<account>/l/<lease id BE64>             -> LeaseRecord  granted leases
//   a/<account>/alarms                        -> AlarmList    active alarms (core/quota.h)
//   a/<account>/g/<log index BE64>            -> LogEntry     the replicated log (core/node.h)
// Big-endian revisions make byte order equal revision order, so a scan replays history.
#ifndef GEOETCD_CORE_KEYSPACE_CODEC_H_
#define GEOETCD_CORE_KEYSPACE_CODEC_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "core/keyspace.h"
#include "geoetcd/storage.pb.h"

namespace geoetcd::codec {

// Account names: 1..64 characters of [A-Za-z0-9_.-].
bool ValidAccountName(std::string_view account);

std::string AccountPrefix(std::string_view account);
std::string CommitKey(std::string_view account, int64_t revision);
std::string CommitPrefix(std::string_view account);
std::string VersionKey(std::string_view account, VersionId id);
std::string VersionPrefix(std::string_view account);
std::string LogPrefix(std::string_view account);
std::string LogKey(std::string_view account, uint64_t index);
// The write region's record of an answered forward that left no log entry (the answer,
// a ForwardReply), so a restarted W answers a late retry the same way:
//   n/fwd/<origin BE64><id BE64>
std::string ForwardMarkerPrefix();
std::string ForwardMarkerKey(uint64_t origin, uint64_t id);
// Parses the index of a LogKey; false if malformed.
bool ParseLogKey(std::string_view account, std::string_view key, uint64_t* index);
std::string MetaKey(std::string_view account);
std::string LeasePrefix(std::string_view account);
std::string LeaseKey(std::string_view account, int64_t lease_id);
std::string AlarmsKey(std::string_view account);
// The smallest key greater than every key starting with `prefix`.
std::string PrefixEnd(std::string_view prefix);

// Parses the (revision, sub) suffix of a VersionKey; false if malformed.
bool ParseVersionKey(std::string_view account, std::string_view key, VersionId* id);

KeyRecord ToRecord(const std::string& key, const KeyVersion& v);
KeyVersion FromRecord(const KeyRecord& r, VersionId id);

}  // namespace geoetcd::codec

#endif  // GEOETCD_CORE_KEYSPACE_CODEC_H_
