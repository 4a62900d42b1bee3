#include "gateway/go_duration.h"

#include <cstdint>
#include <utility>

#include "gtest/gtest.h"

namespace geoetcd {
namespace {

TEST(GoDurationTest, ReadsGoSyntaxInWholeMilliseconds) {
  const std::pair<const char*, int64_t> cases[] = {
      {"0", 0},
      {"-0", 0},
      {"10m", 600000},
      {"1h30m", 5400000},
      {"5s", 5000},
      {"100ms", 100},
      {"1.5s", 1500},
      {".5s", 500},
      {"5.s", 5000},
      {"-2s", -2000},
      {"+3ms", 3},
      {"1500us", 1},
      {"1500\xC2\xB5s", 1},
      {"1500\xCE\xBCs", 1},
      {"999999ns", 0},
      {"-1999999ns", -1},
      {"2h45m30.5s", 9930500},
  };
  for (const auto& [text, ms] : cases) {
    absl::StatusOr<int64_t> parsed = ParseGoDurationMs(text);
    ASSERT_TRUE(parsed.ok()) << text << ": " << parsed.status();
    EXPECT_EQ(*parsed, ms) << text;
  }
}

TEST(GoDurationTest, KeepsNanosecondPrecision) {
  EXPECT_EQ(absl::ToInt64Nanoseconds(*ParseGoDuration("1.000000001s")), 1000000001);
  EXPECT_EQ(absl::ToInt64Nanoseconds(*ParseGoDuration("3us")), 3000);
}

// Go's range is an int64 count of nanoseconds, both ends included.
TEST(GoDurationTest, RangeIsGoInt64Nanoseconds) {
  EXPECT_EQ(*ParseGoDurationMs("2562047h47m16.854775807s"), 9223372036854);
  EXPECT_EQ(*ParseGoDurationMs("-2562047h47m16.854775808s"), -9223372036854);
  EXPECT_EQ(ParseGoDurationMs("2562047h47m16.854775808s").status().message(),
            "overflow in duration \"2562047h47m16.854775808s\"");
  EXPECT_FALSE(ParseGoDurationMs("2562048h").ok());
}

TEST(GoDurationTest, ErrorsInGoWords) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "invalid duration \"\""},
      {"5", "missing unit in duration \"5\""},
      {"1h5", "missing unit in duration \"1h5\""},
      {"s", "invalid duration \"s\""},
      {".s", "invalid duration \".s\""},
      {"--5s", "invalid duration \"--5s\""},
      {"5x", "unknown unit \"x\" in duration \"5x\""},
      {"1e3s", "unknown unit \"e\" in duration \"1e3s\""},
      {"5s 3m", "unknown unit \"s \" in duration \"5s 3m\""},
      {"inf", "invalid duration \"inf\""},
      {"-inf", "invalid duration \"-inf\""},
  };
  for (const auto& [text, message] : cases) {
    EXPECT_EQ(ParseGoDurationMs(text).status().message(), message) << text;
  }
}

}  // namespace
}  // namespace geoetcd
