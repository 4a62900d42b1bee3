// What a request's header list must look like before the transport acts on it: the rules of
// RFC 9113 §8.2-8.3 that make a request malformed, and gRPC's stricter rule for metadata.
//
// A malformed request is a stream error PROTOCOL_ERROR (RFC 9113 §8.1.1), answered with
// RST_STREAM as nghttp2 and Go's http2 server answer it; nothing of it reaches a method.
// geoetcd judges this itself rather than with nghttp2's HTTP messaging checks, which also
// reject an :authority that is not an RFC 3986 authority: etcdctl 3.4 sends
// "http://host:port" there, and etcd's grpc-go server takes it.
// Fields HTTP/2 allows but gRPC metadata does not (obs-text, HTAB, '{' in a name) stay in
// CallStart::metadata; whoever hands metadata to gRPC C++ checks IsGrpcMetadata first,
// because gRPC C++ aborts the process on metadata it considers illegal.
#ifndef GEOETCD_GATEWAY_H2_REQUEST_HEADERS_H_
#define GEOETCD_GATEWAY_H2_REQUEST_HEADERS_H_

#include <string_view>
#include <vector>

#include "gateway/h2/header_field.h"

namespace geoetcd::h2 {

enum class HeaderBlockKind {
  kRequest,   // the block that opens a stream: pseudo-headers first, :method :scheme :path
  kTrailers,  // a later block on the same stream: no pseudo-headers at all
};

// Checks one header block field by field, in wire order (as MalformedReason does at once).
class HeaderBlockCheck {
 public:
  explicit HeaderBlockCheck(HeaderBlockKind kind = HeaderBlockKind::kRequest) : kind_(kind) {}
  // The next field; empty while the block is well-formed so far, else why it is not.
  std::string_view Add(std::string_view name, std::string_view value);
  // After the last field: what the whole block lacks, if anything.
  std::string_view Finish() const;

 private:
  HeaderBlockKind kind_;
  bool regular_seen_ = false;
  bool method_ = false, scheme_ = false, path_ = false, authority_ = false;
  bool connect_ = false, path_empty_ = false;
};

// Empty when `fields` (in wire order) is a well-formed block of `kind`; otherwise a short
// reason it is malformed. Checks: field names are non-empty and lowercase visible ASCII
// without ':' (but for a pseudo-header's leading one); values hold no NUL, CR or LF and do
// not start or end with SP or HTAB; only the four request pseudo-headers, each at most
// once, all before the first regular field; :method, and :scheme and a non-empty :path
// unless the method is CONNECT; no connection-specific fields (connection, keep-alive,
// proxy-connection, transfer-encoding, upgrade); te only as "trailers".
std::string_view MalformedReason(const std::vector<HeaderField>& fields, HeaderBlockKind kind);

// Whether gRPC C++ accepts `name: value` as metadata (ClientContext::AddMetadata): the name
// is non-empty [0-9a-z_.-], and, unless it ends in "-bin", the value is printable ASCII
// (0x20-0x7e).
bool IsGrpcMetadata(std::string_view name, std::string_view value);

}  // namespace geoetcd::h2

#endif  // GEOETCD_GATEWAY_H2_REQUEST_HEADERS_H_
