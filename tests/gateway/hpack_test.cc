// HPACK must agree bit for bit with every HTTP/2 client: the RFC 7541 Appendix C examples
// pin the decoder's output and dynamic table, and each malformed input the RFC makes a
// COMPRESSION_ERROR is tested at its bound.
#include "gateway/h2/hpack.h"

#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace geoetcd::h2 {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

constexpr size_t kNoLimit = std::numeric_limits<size_t>::max();

// Bytes from hex written as in the RFC ("8286 8441"): spaces are ignored.
std::string Hex(std::string_view hex) {
  std::string digits;
  for (const char c : hex) {
    if (c != ' ' && c != '\n') digits.push_back(c);
  }
  return absl::HexStringToBytes(digits);
}

// An integer with a prefix_bits prefix (RFC 7541 5.1), written independently of hpack.cc.
std::string Int(uint8_t flags, int prefix_bits, uint64_t value) {
  const uint64_t max = (uint64_t{1} << prefix_bits) - 1;
  std::string out;
  if (value < max) {
    out.push_back(static_cast<char>(flags | value));
    return out;
  }
  out.push_back(static_cast<char>(flags | max));
  value -= max;
  for (; value >= 128; value /= 128) out.push_back(static_cast<char>(128 + value % 128));
  out.push_back(static_cast<char>(value));
  return out;
}

// A raw string literal.
std::string Str(std::string_view s) { return Int(0x00, 7, s.size()) + std::string(s); }

// Literal with incremental indexing, new name.
std::string Indexing(std::string_view name, std::string_view value) {
  return "\x40" + Str(name) + Str(value);
}

// Literal without indexing, new name "n", whose value is the Huffman string `coded`.
std::string HuffmanValueBlock(std::string_view coded) {
  return std::string(1, '\0') + Str("n") + Int(0x80, 7, coded.size()) + std::string(coded);
}

Fields ToPairs(const std::vector<HeaderField>& fields) {
  Fields out;
  for (const auto& f : fields) out.emplace_back(f.name, f.value);
  return out;
}

// Decodes one block with no list limit; the fields, or a failure naming the status.
Fields DecodeOk(HpackDecoder* d, std::string_view block) {
  std::vector<HeaderField> out;
  const absl::Status s = d->Decode(block, kNoLimit, &out);
  EXPECT_TRUE(s.ok()) << s;
  return ToPairs(out);
}

absl::StatusCode DecodeCode(HpackDecoder* d, std::string_view block) {
  std::vector<HeaderField> out;
  return d->Decode(block, kNoLimit, &out).code();
}

// The dynamic table, newest first, read through indexed fields on a copy of the decoder.
Fields DynamicTable(HpackDecoder d) {
  Fields table;
  for (uint64_t index = 62;; ++index) {
    std::vector<HeaderField> out;
    if (!d.Decode(Int(0x80, 7, index), kNoLimit, &out).ok()) break;
    table.emplace_back(out[0].name, out[0].value);
  }
  return table;
}

// ---- RFC 7541 Appendix C ----

TEST(HpackRfcExamplesTest, C2_1LiteralWithIndexing) {
  HpackDecoder d;
  EXPECT_EQ(DecodeOk(&d, Hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")),
            (Fields{{"custom-key", "custom-header"}}));
  EXPECT_EQ(d.table_size(), 55u);
  EXPECT_EQ(DynamicTable(d), (Fields{{"custom-key", "custom-header"}}));
}

TEST(HpackRfcExamplesTest, C2_2LiteralWithoutIndexing) {
  HpackDecoder d;
  EXPECT_EQ(DecodeOk(&d, Hex("040c 2f73 616d 706c 652f 7061 7468")),
            (Fields{{":path", "/sample/path"}}));
  EXPECT_EQ(d.table_size(), 0u);
}

TEST(HpackRfcExamplesTest, C2_3LiteralNeverIndexed) {
  HpackDecoder d;
  EXPECT_EQ(DecodeOk(&d, Hex("1008 7061 7373 776f 7264 0673 6563 7265 74")),
            (Fields{{"password", "secret"}}));
  EXPECT_EQ(d.table_size(), 0u);
}

TEST(HpackRfcExamplesTest, C2_4Indexed) {
  HpackDecoder d;
  EXPECT_EQ(DecodeOk(&d, Hex("82")), (Fields{{":method", "GET"}}));
  EXPECT_EQ(d.table_size(), 0u);
}

// C.3 and C.4 decode to the same lists and tables.
void ExpectRequests(const std::string& first, const std::string& second,
                    const std::string& third) {
  HpackDecoder d;
  EXPECT_EQ(DecodeOk(&d, first), (Fields{{":method", "GET"},
                                         {":scheme", "http"},
                                         {":path", "/"},
                                         {":authority", "www.example.com"}}));
  EXPECT_EQ(d.table_size(), 57u);
  EXPECT_EQ(DynamicTable(d), (Fields{{":authority", "www.example.com"}}));

  EXPECT_EQ(DecodeOk(&d, second), (Fields{{":method", "GET"},
                                          {":scheme", "http"},
                                          {":path", "/"},
                                          {":authority", "www.example.com"},
                                          {"cache-control", "no-cache"}}));
  EXPECT_EQ(d.table_size(), 110u);
  EXPECT_EQ(DynamicTable(d),
            (Fields{{"cache-control", "no-cache"}, {":authority", "www.example.com"}}));

  EXPECT_EQ(DecodeOk(&d, third), (Fields{{":method", "GET"},
                                         {":scheme", "https"},
                                         {":path", "/index.html"},
                                         {":authority", "www.example.com"},
                                         {"custom-key", "custom-value"}}));
  EXPECT_EQ(d.table_size(), 164u);
  EXPECT_EQ(DynamicTable(d), (Fields{{"custom-key", "custom-value"},
                                     {"cache-control", "no-cache"},
                                     {":authority", "www.example.com"}}));
}

TEST(HpackRfcExamplesTest, C3_RequestsWithoutHuffman) {
  ExpectRequests(Hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"),
                 Hex("8286 84be 5808 6e6f 2d63 6163 6865"),
                 Hex("8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 "
                     "65"));
}

TEST(HpackRfcExamplesTest, C4_RequestsWithHuffman) {
  ExpectRequests(Hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"),
                 Hex("8286 84be 5886 a8eb 1064 9cbf"),
                 Hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"));
}

// C.5 and C.6: a 256-octet table, so the responses evict.
void ExpectResponses(const std::string& first, const std::string& second,
                     const std::string& third) {
  const std::string date21 = "Mon, 21 Oct 2013 20:13:21 GMT";
  const std::string date22 = "Mon, 21 Oct 2013 20:13:22 GMT";
  const std::string location = "https://www.example.com";
  const std::string cookie = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
  HpackDecoder d(256);
  EXPECT_EQ(DecodeOk(&d, first), (Fields{{":status", "302"},
                                         {"cache-control", "private"},
                                         {"date", date21},
                                         {"location", location}}));
  EXPECT_EQ(d.table_size(), 222u);
  EXPECT_EQ(DynamicTable(d), (Fields{{"location", location},
                                     {"date", date21},
                                     {"cache-control", "private"},
                                     {":status", "302"}}));

  EXPECT_EQ(DecodeOk(&d, second), (Fields{{":status", "307"},
                                          {"cache-control", "private"},
                                          {"date", date21},
                                          {"location", location}}));
  EXPECT_EQ(d.table_size(), 222u);
  EXPECT_EQ(DynamicTable(d), (Fields{{":status", "307"},
                                     {"location", location},
                                     {"date", date21},
                                     {"cache-control", "private"}}));

  EXPECT_EQ(DecodeOk(&d, third), (Fields{{":status", "200"},
                                         {"cache-control", "private"},
                                         {"date", date22},
                                         {"location", location},
                                         {"content-encoding", "gzip"},
                                         {"set-cookie", cookie}}));
  EXPECT_EQ(d.table_size(), 215u);
  EXPECT_EQ(DynamicTable(d), (Fields{{"set-cookie", cookie},
                                     {"content-encoding", "gzip"},
                                     {"date", date22}}));
}

TEST(HpackRfcExamplesTest, C5_ResponsesWithoutHuffman) {
  ExpectResponses(
      Hex("4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 "
          "2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 "
          "6c65 2e63 6f6d"),
      Hex("4803 3330 37c1 c0bf"),
      Hex("88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d "
          "54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 "
          "5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e "
          "3d31"));
}

TEST(HpackRfcExamplesTest, C6_ResponsesWithHuffman) {
  ExpectResponses(
      Hex("4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 "
          "2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3"),
      Hex("4883 640e ffc1 c0bf"),
      Hex("88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab "
          "77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f "
          "9587 3160 65c0 03ed 4ee5 b106 3d50 07"));
}

// ---- Huffman ----

TEST(HpackHuffmanTest, EncodesTheRfcExampleStrings) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"www.example.com", "f1e3 c2e5 f23a 6ba0 ab90 f4ff"},
      {"no-cache", "a8eb 1064 9cbf"},
      {"custom-key", "25a8 49e9 5ba9 7d7f"},
      {"custom-value", "25a8 49e9 5bb8 e8b4 bf"},
      {"302", "6402"},
      {"307", "640e ff"},
      {"private", "aec3 771a 4b"},
      {"Mon, 21 Oct 2013 20:13:21 GMT", "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff"},
      {"https://www.example.com", "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3"},
      {"gzip", "9bd9 ab"},
  };
  for (const auto& [plain, coded] : cases) {
    std::string out;
    HuffmanEncode(plain, &out);
    EXPECT_EQ(absl::BytesToHexString(out), absl::BytesToHexString(Hex(coded))) << plain;
  }
}

TEST(HpackHuffmanTest, EveryOctetRoundTrips) {
  std::string all;
  for (int b = 0; b < 256; ++b) {
    const std::string one(1, static_cast<char>(b));
    all += one;
    std::string coded;
    HuffmanEncode(one, &coded);
    HpackDecoder d;
    EXPECT_EQ(DecodeOk(&d, HuffmanValueBlock(coded)), (Fields{{"n", one}})) << b;
  }
  const std::string reversed(all.rbegin(), all.rend());
  for (const std::string& plain : {all, reversed, all + all}) {
    std::string coded;
    HuffmanEncode(plain, &coded);
    HpackDecoder d;
    EXPECT_EQ(DecodeOk(&d, HuffmanValueBlock(coded)), (Fields{{"n", plain}}));
  }
}

TEST(HpackHuffmanTest, HuffmanNamesAndEmptyStrings) {
  std::string name;
  HuffmanEncode("custom-key", &name);
  HpackDecoder d;
  const std::string block = "\x40" + Int(0x80, 7, name.size()) + name + Hex("80");
  EXPECT_EQ(DecodeOk(&d, block), (Fields{{"custom-key", ""}}));
  EXPECT_EQ(d.table_size(), 10u + 32u);
}

TEST(HpackHuffmanTest, PaddingOfSevenOnesIsTheLimit) {
  // "aa " is 5 + 5 + 6 bits: no padding at all.
  HpackDecoder d;
  EXPECT_EQ(DecodeOk(&d, HuffmanValueBlock(Hex("18d4"))), (Fields{{"n", "aa "}}));
  // The same and a whole octet of ones: 8 bits of padding.
  EXPECT_EQ(DecodeCode(&d, HuffmanValueBlock(Hex("18d4 ff"))),
            absl::StatusCode::kInvalidArgument);
  // "aa:" is 5 + 5 + 7 bits: 7 bits of padding, all ones.
  HpackDecoder d2;
  EXPECT_EQ(DecodeOk(&d2, HuffmanValueBlock(Hex("18ee 7f"))), (Fields{{"n", "aa:"}}));
  std::string coded;
  HuffmanEncode("aa:", &coded);
  EXPECT_EQ(coded, Hex("18ee 7f"));
}

TEST(HpackHuffmanTest, PaddingMustBeOnes) {
  HpackDecoder d;
  EXPECT_EQ(DecodeCode(&d, HuffmanValueBlock(Hex("18ee 7e"))),
            absl::StatusCode::kInvalidArgument);
  // 'a' (00011) then 110: a prefix of other codes, not of EOS.
  HpackDecoder d2;
  EXPECT_EQ(DecodeCode(&d2, HuffmanValueBlock(Hex("1e"))), absl::StatusCode::kInvalidArgument);
  HpackDecoder d3;
  EXPECT_EQ(DecodeOk(&d3, HuffmanValueBlock(Hex("1f"))), (Fields{{"n", "a"}}));
  // Eight padding bits with no symbol, and seven ones then a zero.
  HpackDecoder d4;
  EXPECT_EQ(DecodeCode(&d4, HuffmanValueBlock(Hex("ff"))), absl::StatusCode::kInvalidArgument);
  HpackDecoder d5;
  EXPECT_EQ(DecodeCode(&d5, HuffmanValueBlock(Hex("fe"))), absl::StatusCode::kInvalidArgument);
}

TEST(HpackHuffmanTest, EosInTheDataIsAnError) {
  // EOS is 30 ones.
  HpackDecoder d;
  EXPECT_EQ(DecodeCode(&d, HuffmanValueBlock(Hex("ffff ffff"))),
            absl::StatusCode::kInvalidArgument);
  HpackDecoder d2;
  EXPECT_EQ(DecodeCode(&d2, HuffmanValueBlock(Hex("ffff fffc"))),
            absl::StatusCode::kInvalidArgument);
  // 29 ones and a zero is the code next to EOS (octet 22), then 2 bits of padding.
  HpackDecoder d3;
  EXPECT_EQ(DecodeOk(&d3, HuffmanValueBlock(Hex("ffff fffb"))), (Fields{{"n", "\x16"}}));
  // 'a' (00011), then 34 ones and a zero: EOS after a symbol.
  HpackDecoder d4;
  EXPECT_EQ(DecodeCode(&d4, HuffmanValueBlock(Hex("1fff ffff fe"))),
            absl::StatusCode::kInvalidArgument);
  // 'a', then 35 ones: EOS, then what would be valid padding.
  HpackDecoder d5;
  EXPECT_EQ(DecodeCode(&d5, HuffmanValueBlock(Hex("1fff ffff ff"))),
            absl::StatusCode::kInvalidArgument);
}

// ---- Encoder ----

TEST(HpackEncoderTest, ExactBytes) {
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {":authority", "", "81"},
      {":method", "GET", "82"},
      {":method", "POST", "83"},
      {":status", "200", "88"},
      {":status", "500", "8e"},
      {"accept-charset", "", "8f"},
      {"www-authenticate", "", "bd"},
      {"accept-encoding", "gzip, deflate", "90"},
      // Static name, other value: 4-bit prefix, 15 is the first index needing a second octet.
      {":status", "201", "0803 323031"},
      {":status", "", "0800"},
      {"content-type", "application/grpc", "0f10 10" + absl::BytesToHexString("application/grpc")},
      {":scheme", "ftp", "0603 667470"},
      {"accept-charset", "x", "0f00 0178"},
      {"www-authenticate", "x", "0f2e 0178"},
      {"accept-encoding", "br", "0f01 026272"},
      {"grpc-status", "0", "000b " + absl::BytesToHexString("grpc-status") + "0130"},
      {"x-empty", "", "0007 " + absl::BytesToHexString("x-empty") + "00"},
      {"", "", "000000"},
  };
  for (const auto& [name, value, hex] : cases) {
    std::string out = "prefix";
    HpackEncoder::Encode(name, value, &out);
    EXPECT_EQ(absl::BytesToHexString(out), absl::BytesToHexString("prefix" + Hex(hex)))
        << name << ": " << value;
  }
}

TEST(HpackEncoderTest, ContentTypeUsesItsStaticName) {
  std::string out;
  HpackEncoder::Encode("content-type", "application/grpc", &out);
  EXPECT_EQ(out.substr(0, 3), Hex("0f10 10"));  // index 31, length 16
}

TEST(HpackEncoderTest, LengthsAtThePrefixBound) {
  std::string out;
  HpackEncoder::Encode("k", std::string(126, 'v'), &out);
  EXPECT_EQ(out.substr(0, 4), Hex("0001 6b7e"));
  out.clear();
  HpackEncoder::Encode("k", std::string(127, 'v'), &out);
  EXPECT_EQ(out.substr(0, 5), Hex("0001 6b7f 00"));
  out.clear();
  HpackEncoder::Encode("k", std::string(128, 'v'), &out);
  EXPECT_EQ(out.substr(0, 5), Hex("0001 6b7f 01"));
  EXPECT_EQ(out.size(), 5u + 128u);
}

TEST(HpackEncoderTest, RoundTripsThroughTheDecoder) {
  const Fields fields = {
      {":method", "POST"},                       // static exact
      {":authority", ""},                        // static exact, empty value
      {":path", "/etcdserverpb.KV/Range"},       // static name
      {"content-type", "application/grpc"},      // static name past the 4-bit prefix
      {"www-authenticate", "x"},                 // last static name
      {"accept-charset", ""},                    // static exact at index 15
      {"te", "trailers"},                        // new name
      {"grpc-timeout", ""},                      // new name, empty value
      {"", ""},                                  // empty everything
      {"k", std::string(126, 'a')},              // lengths around the 7-bit prefix
      {"k", std::string(127, 'b')},
      {"k", std::string(128, 'c')},
      {std::string(127, 'n'), std::string(100000, 'v')},  // large
      {"bin", std::string("\0\xff\x80\x01", 4)},           // any octets
  };
  std::string block;
  for (const auto& [name, value] : fields) HpackEncoder::Encode(name, value, &block);
  HpackDecoder d;
  EXPECT_EQ(DecodeOk(&d, block), fields);
  EXPECT_EQ(d.table_size(), 0u);  // the encoder never indexes
  // A decoder with no dynamic table at all decodes it too.
  HpackDecoder zero(0);
  EXPECT_EQ(DecodeOk(&zero, block), fields);
}

// ---- Decoder errors at their bounds ----

TEST(HpackDecoderTest, IndexZeroIsAnError) {
  HpackDecoder d;
  EXPECT_EQ(DecodeCode(&d, Hex("80")), absl::StatusCode::kInvalidArgument);
  // Index 0 in a literal means "new name", so it is not an error there.
  HpackDecoder d2;
  EXPECT_EQ(DecodeOk(&d2, Hex("00 0161 0162")), (Fields{{"a", "b"}}));
}

TEST(HpackDecoderTest, IndexPastTheTableIsAnError) {
  HpackDecoder d;
  EXPECT_EQ(DecodeOk(&d, Hex("bd")), (Fields{{"www-authenticate", ""}}));  // 61
  EXPECT_EQ(DecodeCode(&d, Hex("be")), absl::StatusCode::kInvalidArgument);  // 62
  HpackDecoder d2;
  DecodeOk(&d2, Indexing("k", "v"));
  EXPECT_EQ(DecodeOk(&d2, Hex("be")), (Fields{{"k", "v"}}));  // 62 = table length
  EXPECT_EQ(DecodeCode(&d2, Hex("bf")), absl::StatusCode::kInvalidArgument);  // length + 1
}

TEST(HpackDecoderTest, NameIndexPastTheTableIsAnError) {
  // 6-bit prefix (incremental indexing).
  HpackDecoder d;
  EXPECT_EQ(DecodeOk(&d, Hex("7d 0178")), (Fields{{"www-authenticate", "x"}}));
  HpackDecoder d1;
  EXPECT_EQ(DecodeCode(&d1, Hex("7e 0178")), absl::StatusCode::kInvalidArgument);
  // 4-bit prefix, without indexing and never indexed.
  HpackDecoder d2;
  EXPECT_EQ(DecodeOk(&d2, Hex("0f2e 0178")), (Fields{{"www-authenticate", "x"}}));
  EXPECT_EQ(DecodeCode(&d2, Hex("0f2f 0178")), absl::StatusCode::kInvalidArgument);
  HpackDecoder d3;
  EXPECT_EQ(DecodeOk(&d3, Hex("1f2e 0178")), (Fields{{"www-authenticate", "x"}}));
  EXPECT_EQ(DecodeCode(&d3, Hex("1f2f 0178")), absl::StatusCode::kInvalidArgument);
  // With one dynamic entry, 62 names it and 63 is past the end.
  HpackDecoder d4;
  DecodeOk(&d4, Indexing("k", "v"));
  EXPECT_EQ(DecodeOk(&d4, Hex("0f2f 0178")), (Fields{{"k", "x"}}));
  EXPECT_EQ(DecodeCode(&d4, Hex("0f30 0178")), absl::StatusCode::kInvalidArgument);
}

TEST(HpackDecoderTest, TableSizeUpdateUpToTheAdvertisedMaximum) {
  HpackDecoder d(4096);
  EXPECT_EQ(DecodeOk(&d, Hex("3fe1 1f")), Fields{});  // 4096
  HpackDecoder d2(4096);
  EXPECT_EQ(DecodeCode(&d2, Hex("3fe2 1f")), absl::StatusCode::kInvalidArgument);  // 4097
  HpackDecoder d3(0);
  EXPECT_EQ(DecodeOk(&d3, Hex("20")), Fields{});  // 0
  EXPECT_EQ(DecodeCode(&d3, Hex("21")), absl::StatusCode::kInvalidArgument);  // 1
}

TEST(HpackDecoderTest, TableSizeUpdateOnlyAtTheStartOfABlock) {
  HpackDecoder d;
  EXPECT_EQ(DecodeCode(&d, Hex("82 3fe1 1f")), absl::StatusCode::kInvalidArgument);
  HpackDecoder d2;
  EXPECT_EQ(DecodeCode(&d2, Hex("20 82 20")), absl::StatusCode::kInvalidArgument);
  // Several at the start are fine (RFC 7541 4.2), and each block has its own start.
  HpackDecoder d3;
  EXPECT_EQ(DecodeOk(&d3, Hex("20 3fe1 1f 82")), (Fields{{":method", "GET"}}));
  EXPECT_EQ(DecodeOk(&d3, Hex("3f00 82")), (Fields{{":method", "GET"}}));
}

TEST(HpackDecoderTest, TableSizeUpdateEvictsAndLimitsLaterInsertions) {
  HpackDecoder d;
  DecodeOk(&d, Indexing("a", "1") + Indexing("b", "2") + Indexing("c", "3"));  // 34 each
  EXPECT_EQ(d.table_size(), 102u);
  // Shrink to 68: the oldest entry goes.
  EXPECT_EQ(DecodeOk(&d, Int(0x20, 5, 68)), Fields{});
  EXPECT_EQ(d.table_size(), 68u);
  EXPECT_EQ(DynamicTable(d), (Fields{{"c", "3"}, {"b", "2"}}));
  // While at 68, a third entry evicts the oldest.
  DecodeOk(&d, Indexing("d", "4"));
  EXPECT_EQ(DynamicTable(d), (Fields{{"d", "4"}, {"c", "3"}}));
  // Zero empties the table; growing back does not bring entries back.
  EXPECT_EQ(DecodeOk(&d, Hex("20 3fe1 1f")), Fields{});
  EXPECT_EQ(d.table_size(), 0u);
  EXPECT_EQ(DynamicTable(d), Fields{});
  DecodeOk(&d, Indexing("e", "5") + Indexing("f", "6") + Indexing("g", "7"));
  EXPECT_EQ(d.table_size(), 102u);
}

TEST(HpackDecoderTest, IntegerOfExactly32BitsIsTheLimit) {
  // Size updates carry the largest integers a decoder with a 2^32-1 maximum accepts.
  HpackDecoder d(std::numeric_limits<uint32_t>::max());
  EXPECT_EQ(Int(0x20, 5, 0xffffffffu), Hex("3fe0 ffff ff0f"));
  EXPECT_EQ(DecodeOk(&d, Hex("3fe0 ffff ff0f")), Fields{});         // 2^32 - 1
  EXPECT_EQ(DecodeCode(&d, Hex("3fe1 ffff ff0f")),                   // 2^32
            absl::StatusCode::kInvalidArgument);
  HpackDecoder d2(std::numeric_limits<uint32_t>::max());
  EXPECT_EQ(DecodeCode(&d2, Hex("3fe0 ffff ff1f")),                  // far past 2^32
            absl::StatusCode::kInvalidArgument);
  // Five continuation octets are the most a 32-bit value needs; zeros in the middle count.
  HpackDecoder d3(std::numeric_limits<uint32_t>::max());
  EXPECT_EQ(DecodeOk(&d3, Hex("3f80 8080 800f")), Fields{});
  HpackDecoder d4(std::numeric_limits<uint32_t>::max());
  EXPECT_EQ(DecodeCode(&d4, Hex("3f80 8080 8080 00")), absl::StatusCode::kInvalidArgument);
  HpackDecoder d5(std::numeric_limits<uint32_t>::max());
  EXPECT_EQ(DecodeCode(&d5, Hex("3f80 8080 8080 01")), absl::StatusCode::kInvalidArgument);
  // A long run of empty continuation octets.
  HpackDecoder d6(std::numeric_limits<uint32_t>::max());
  EXPECT_EQ(DecodeCode(&d6, Hex("3f") + std::string(100, '\x80') + Hex("01")),
            absl::StatusCode::kInvalidArgument);
  // A string length of 2^32 - 1 with a few octets behind it.
  HpackDecoder d7;
  EXPECT_EQ(Int(0x00, 7, 0xffffffffu), Hex("7f80 ffff ff0f"));
  EXPECT_EQ(DecodeCode(&d7, Hex("00 7f80 ffff ff0f 6162 63")), absl::StatusCode::kInvalidArgument);
}

TEST(HpackDecoderTest, IntegerWithARedundantLastOctetIsAnError) {
  HpackDecoder d;
  EXPECT_EQ(DecodeOk(&d, Hex("3f00")), Fields{});   // 31: the zero octet is needed
  EXPECT_EQ(DecodeOk(&d, Hex("3f8001")), Fields{});  // 31 + 128: so is the 0x80
  HpackDecoder d2;
  EXPECT_EQ(DecodeCode(&d2, Hex("3f8000")), absl::StatusCode::kInvalidArgument);  // 31 again
  HpackDecoder d3;
  EXPECT_EQ(DecodeCode(&d3, Hex("ff8000")), absl::StatusCode::kInvalidArgument);  // index 127
}

TEST(HpackDecoderTest, TruncationAnywhereInAFieldIsAnError) {
  const std::vector<std::string> blocks = {
      Hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"),
      Hex("040c 2f73 616d 706c 652f 7061 7468"),
      Hex("1008 7061 7373 776f 7264 0673 6563 7265 74"),
      Hex("418c f1e3 c2e5 f23a 6ba0 ab90 f4ff"),
      Hex("3fe1 1f"),
      Hex("0f2e 0178"),
      Indexing("k", std::string(200, 'v')),
  };
  for (const std::string& block : blocks) {
    for (size_t len = 1; len < block.size(); ++len) {
      HpackDecoder d;
      EXPECT_EQ(DecodeCode(&d, block.substr(0, len)), absl::StatusCode::kInvalidArgument)
          << absl::BytesToHexString(block) << " cut at " << len;
    }
    HpackDecoder d;
    std::vector<HeaderField> out;
    EXPECT_TRUE(d.Decode(block, kNoLimit, &out).ok()) << absl::BytesToHexString(block);
  }
  HpackDecoder d;
  EXPECT_EQ(DecodeOk(&d, ""), Fields{});
}

// ---- Dynamic table ----

TEST(HpackDecoderTest, OnlyIncrementalIndexingAddsToTheTable) {
  HpackDecoder d;
  DecodeOk(&d, Hex("0001 6101 62 1001 6301 64 82"));
  EXPECT_EQ(d.table_size(), 0u);
  DecodeOk(&d, Indexing("a", "b"));
  EXPECT_EQ(d.table_size(), 34u);
}

TEST(HpackDecoderTest, EntryLargerThanTheTableEmptiesIt) {
  HpackDecoder d(64);
  DecodeOk(&d, Indexing("a", "1"));
  EXPECT_EQ(d.table_size(), 34u);
  // 1 + 32 + 32 = 65 > 64: not an error, the table is emptied and the field still decoded.
  EXPECT_EQ(DecodeOk(&d, Indexing("k", std::string(32, 'v'))),
            (Fields{{"k", std::string(32, 'v')}}));
  EXPECT_EQ(d.table_size(), 0u);
  EXPECT_EQ(DynamicTable(d), Fields{});
  // 64 exactly fits.
  DecodeOk(&d, Indexing("k", std::string(31, 'v')));
  EXPECT_EQ(d.table_size(), 64u);
  EXPECT_EQ(DynamicTable(d), (Fields{{"k", std::string(31, 'v')}}));
}

TEST(HpackDecoderTest, NewEntryMayNameTheEntryItEvicts) {
  HpackDecoder d(80);
  DecodeOk(&d, Indexing("name-a", "1"));  // 39
  // Indexed name 62 ("name-a"), value "22222": 43 more, so "name-a: 1" must go first.
  EXPECT_EQ(DecodeOk(&d, Hex("7e") + Str("22222")), (Fields{{"name-a", "22222"}}));
  EXPECT_EQ(d.table_size(), 43u);
  EXPECT_EQ(DynamicTable(d), (Fields{{"name-a", "22222"}}));
}

TEST(HpackDecoderTest, ManyInsertionsWrapTheTable) {
  HpackDecoder d;  // 4096: 113 entries of 36 octets
  for (int i = 0; i < 500; ++i) {
    DecodeOk(&d, Indexing(absl::StrCat("n", 100 + i), ""));
    if (i == 112) {
      EXPECT_EQ(d.table_size(), 113u * 36u);
    }
  }
  EXPECT_EQ(d.table_size(), 113u * 36u);
  const Fields table = DynamicTable(d);
  ASSERT_EQ(table.size(), 113u);
  for (int i = 0; i < 113; ++i) EXPECT_EQ(table[i].first, absl::StrCat("n", 599 - i));
  // Values too big to keep their buffers once evicted are replaced correctly too.
  for (int i = 0; i < 20; ++i) {
    DecodeOk(&d, Indexing(absl::StrCat("b", 10 + i), std::string(985, static_cast<char>('a' + i))));
  }
  const Fields big = DynamicTable(d);
  ASSERT_EQ(big.size(), 4u);  // 4 * 1020 <= 4096 < 5 * 1020
  EXPECT_EQ(d.table_size(), 4u * 1020u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(big[i], std::make_pair(absl::StrCat("b", 29 - i),
                                     std::string(985, static_cast<char>('a' + 19 - i))));
  }
}

// ---- Header list limit ----

TEST(HpackDecoderTest, ListOfExactlyTheLimitDecodes) {
  const std::string block =
      Indexing("k1", "v1") + Indexing("key2", "value2") + Indexing("k3", "");  // 36+42+34
  HpackDecoder d;
  std::vector<HeaderField> out;
  ASSERT_TRUE(d.Decode(block, 112, &out).ok());
  EXPECT_EQ(ToPairs(out), (Fields{{"k1", "v1"}, {"key2", "value2"}, {"k3", ""}}));
}

TEST(HpackDecoderTest, ListOneByteOverTheLimitIsExhaustedAndTheTableStaysInSync) {
  const std::string block =
      Indexing("k1", "v1") + Indexing("key2", "value2") + Indexing("k3", "");  // 36+42+34
  HpackDecoder d;
  std::vector<HeaderField> out = {{"earlier", "field"}};
  EXPECT_EQ(d.Decode(block, 111, &out).code(), absl::StatusCode::kResourceExhausted);
  // Appended up to the field that crossed the limit.
  EXPECT_EQ(ToPairs(out), (Fields{{"earlier", "field"}, {"k1", "v1"}, {"key2", "value2"}}));
  EXPECT_EQ(d.table_size(), 112u);
  // The next block, on the same connection, refers to all three entries.
  EXPECT_EQ(DecodeOk(&d, Hex("be bf c0 82")),
            (Fields{{"k3", ""}, {"key2", "value2"}, {"k1", "v1"}, {":method", "GET"}}));
}

TEST(HpackDecoderTest, FieldsAfterTheLimitAreDroppedEvenIfSmall) {
  const std::string block =
      Indexing("k1", "v1") + Indexing("key2", "value2") + Indexing("k3", "") + Hex("82");
  HpackDecoder d;
  std::vector<HeaderField> out;
  // 36 + 42 > 77: "key2" crosses, so "k3" and ":method" go too, though 36 + 34 <= 77.
  EXPECT_EQ(d.Decode(block, 77, &out).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ToPairs(out), (Fields{{"k1", "v1"}}));
  EXPECT_EQ(d.table_size(), 112u);
  // A limit below the first field drops everything but still fills the table.
  HpackDecoder d2;
  std::vector<HeaderField> none;
  EXPECT_EQ(d2.Decode(block, 35, &none).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(DynamicTable(d2), (Fields{{"k3", ""}, {"key2", "value2"}, {"k1", "v1"}}));
  // A malformed block past the limit is still malformed.
  HpackDecoder d3;
  std::vector<HeaderField> ignored;
  EXPECT_EQ(d3.Decode(block + Hex("80"), 35, &ignored).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(HpackEncoderTest, TableSizeUpdateLeadsABlockAndIsBounded) {
  std::string block;
  HpackEncoder::EncodeTableSizeUpdate(0, &block);
  EXPECT_EQ(block, std::string(1, '\x20'));
  HpackEncoder::Encode(":status", "200", &block);
  HpackDecoder decoder(4096);
  std::vector<HeaderField> fields;
  ASSERT_TRUE(decoder.Decode(block, 1 << 20, &fields).ok());
  ASSERT_EQ(fields.size(), 1u);
  EXPECT_EQ(fields[0].value, "200");

  std::string at_max, over_max;
  HpackEncoder::EncodeTableSizeUpdate(4096, &at_max);  // 5-bit prefix continues: 0x3f 0xe1 0x1f
  EXPECT_EQ(at_max, std::string("\x3f\xe1\x1f", 3));
  HpackEncoder::EncodeTableSizeUpdate(4097, &over_max);
  HpackDecoder bounded(4096);
  fields.clear();
  EXPECT_TRUE(bounded.Decode(at_max, 1 << 20, &fields).ok());
  EXPECT_EQ(bounded.Decode(over_max, 1 << 20, &fields).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace geoetcd::h2
