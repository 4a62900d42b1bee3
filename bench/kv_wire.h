// The few response fields the KV workloads inspect, read straight from protobuf wire bytes
// (the h2 transport's responses): parsing a whole RangeResponse or TxnResponse would copy
// every key and value only to look at a count or a revision.
#ifndef GEOETCD_BENCH_KV_WIRE_H_
#define GEOETCD_BENCH_KV_WIRE_H_

#include <cstdint>
#include <string_view>

namespace geoetcd::bench {

// What KvClient looks at in a successful response.
struct KvResponseFields {
  int64_t range_kvs = 0;         // Range: kvs_size()
  bool txn_succeeded = false;    // Txn: succeeded()
  int64_t txn_revision = 0;      // Txn: header().revision()
  int64_t txn_current_mod = 0;   // Txn: responses(0).response_range().kvs(0).mod_revision()
};

// Each returns false when the bytes are not a well-formed message of that type's wire
// shape (a truncated field, a bad varint, a group, a field number 0).

// etcdserverpb.RangeResponse: counts kvs (field 2).
bool ScanRangeResponse(std::string_view bytes, KvResponseFields* out);
// etcdserverpb.TxnResponse: header.revision (1.3), succeeded (2), and the first
// response's response_range (3.1) first kv's mod_revision (.2.3).
bool ScanTxnResponse(std::string_view bytes, KvResponseFields* out);
// Any message: only checks the wire shape.
bool ScanMessage(std::string_view bytes);

}  // namespace geoetcd::bench

#endif  // GEOETCD_BENCH_KV_WIRE_H_
