#include "consistency/level.h"

#include "gtest/gtest.h"

namespace geoetcd {
namespace {

constexpr Level kAll[] = {Level::kStrong, Level::kBounded, Level::kSession,
                          Level::kConsistentPrefix, Level::kEventual};

TEST(LevelTest, NamesRoundTripAndUnknownNamesAreRefused) {
  for (Level l : kAll) EXPECT_EQ(*ParseLevel(LevelName(l)), l);
  EXPECT_EQ(ParseLevel("linearizable").status().message(),
            "geoetcd: unknown consistency level \"linearizable\" (strong, bounded, session, "
            "consistent-prefix or eventual)");
  EXPECT_FALSE(ParseLevel("").ok());
  EXPECT_FALSE(ParseLevel("Strong").ok());
}

TEST(LevelTest, ARequestMayOnlyWeakenItsAccountsLevel) {
  for (Level account : kAll) {
    EXPECT_EQ(*EffectiveLevel(account, false, std::nullopt), account);
    for (Level asked : kAll) {
      auto got = EffectiveLevel(account, false, asked);
      if (asked > account) {
        ASSERT_FALSE(got.ok());
        EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
        EXPECT_EQ(got.status().message(),
                  std::string("geoetcd: consistency level ") + LevelName(asked) +
                      " is stronger than the account's level " + LevelName(account));
      } else {
        EXPECT_EQ(*got, asked);
      }
    }
  }
}

TEST(LevelTest, SerializableMeansAtMostConsistentPrefix) {
  EXPECT_EQ(*EffectiveLevel(Level::kStrong, true, std::nullopt), Level::kConsistentPrefix);
  EXPECT_EQ(*EffectiveLevel(Level::kSession, true, std::nullopt), Level::kConsistentPrefix);
  EXPECT_EQ(*EffectiveLevel(Level::kEventual, true, std::nullopt), Level::kEventual);
  EXPECT_EQ(*EffectiveLevel(Level::kStrong, true, Level::kEventual), Level::kEventual);
  EXPECT_FALSE(EffectiveLevel(Level::kSession, true, Level::kStrong).ok());
}

TEST(SessionTokenTest, FormatsAndParsesBack) {
  const SessionToken t{"default", 3, 1234567};
  EXPECT_EQ(FormatSessionToken(t), "default:3:1234567");
  EXPECT_EQ(*ParseSessionToken("default:3:1234567", "default"), t);
  const SessionToken big{"a.b-c_9", 18446744073709551615ull, 9223372036854775807};
  EXPECT_EQ(*ParseSessionToken(FormatSessionToken(big), "a.b-c_9"), big);
}

TEST(SessionTokenTest, MalformedAndForeignTokensAreRefused) {
  for (const char* bad :
       {"", "default", "default:1", "default:1:2:3", ":1:2", "default:0:2", "default:1:0",
        "default:01:2", "default:1:+2", "default:1:-2", "default:x:2", "default:1:2 ",
        "de fault:1:2", "default:18446744073709551616:2", "default:1:9223372036854775808"}) {
    auto got = ParseSessionToken(bad, "default");
    EXPECT_FALSE(got.ok()) << bad;
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(ParseSessionToken("x:1:2", "default").status().message(),
            "geoetcd: session token of account \"x\" sent for account \"default\"");
  EXPECT_EQ(ParseSessionToken("default:0:2", "default").status().message(),
            "geoetcd: malformed session token \"default:0:2\" (want account:epoch:revision)");
  EXPECT_FALSE(ParseSessionToken(std::string(65, 'a') + ":1:2", std::string(65, 'a')).ok());
  EXPECT_TRUE(ParseSessionToken(std::string(64, 'a') + ":1:2", std::string(64, 'a')).ok());
}

}  // namespace
}  // namespace geoetcd
