// The Cluster and Maintenance answers that etcd fixes and clients parse (etcdctl's
// `member` and `defrag` commands), checked through a real in-process server over gRPC.
#include "gateway/admin_services.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "gateway/config.h"
#include "gateway/server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace geoetcd {
namespace {

using testing::ScopedTempDir;

class AdminServicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A unix socket: no TCP port to pick, nothing shared with other tests.
    const std::string url = "unix://" + dir_.Sub("client.sock");
    const std::vector<std::string> args = {
        "geoetcd",
        "--name", "m1",
        "--data-dir", dir_.Sub("data"),
        "--listen-client-urls", url,
        "--advertise-client-urls", url,
        "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
        "--log-level", "error",
    };
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    auto parsed = ParseServerFlags(static_cast<int>(argv.size()), argv.data(), {});
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    auto server = Server::Start(parsed->config);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    auto channel = grpc::CreateChannel("unix:" + dir_.Sub("client.sock"),
                                       grpc::InsecureChannelCredentials());
    cluster_ = etcdserverpb::Cluster::NewStub(channel);
    maintenance_ = etcdserverpb::Maintenance::NewStub(channel);
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  template <typename Stub, typename Method, typename Req, typename Resp>
  grpc::Status Call(Stub* stub, Method method, const Req& req, Resp* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return (stub->*method)(&ctx, req, resp);
  }

  ScopedTempDir dir_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<etcdserverpb::Cluster::Stub> cluster_;
  std::unique_ptr<etcdserverpb::Maintenance::Stub> maintenance_;
};

TEST_F(AdminServicesTest, MemberListHeaderHasNoRevisionAsInEtcd) {
  etcdserverpb::MemberListResponse resp;
  auto s = Call(cluster_.get(), &etcdserverpb::Cluster::Stub::MemberList,
                etcdserverpb::MemberListRequest(), &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.header().revision(), 0);
  EXPECT_EQ(resp.header().member_id(), server_->member_id());
  EXPECT_EQ(resp.header().cluster_id(), server_->cluster_id());
  ASSERT_EQ(resp.members_size(), 1);
  EXPECT_EQ(resp.members(0).id(), server_->member_id());
  EXPECT_EQ(resp.members(0).name(), "m1");
  EXPECT_THAT(resp.members(0).peerurls(), ::testing::ElementsAre("http://127.0.0.1:2380"));
  EXPECT_FALSE(resp.members(0).islearner());
}

TEST_F(AdminServicesTest, UnknownMemberIsNotFoundAsInEtcd) {
  const uint64_t unknown = server_->member_id() + 1;
  {
    etcdserverpb::MemberRemoveRequest req;
    req.set_id(unknown);
    etcdserverpb::MemberRemoveResponse resp;
    auto s = Call(cluster_.get(), &etcdserverpb::Cluster::Stub::MemberRemove, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::NOT_FOUND);
    EXPECT_EQ(s.error_message(), "etcdserver: member not found");
  }
  {
    etcdserverpb::MemberUpdateRequest req;
    req.set_id(unknown);
    req.add_peerurls("http://127.0.0.1:2381");
    etcdserverpb::MemberUpdateResponse resp;
    auto s = Call(cluster_.get(), &etcdserverpb::Cluster::Stub::MemberUpdate, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::NOT_FOUND);
    EXPECT_EQ(s.error_message(), "etcdserver: member not found");
  }
  {
    etcdserverpb::MemberPromoteRequest req;
    req.set_id(unknown);
    etcdserverpb::MemberPromoteResponse resp;
    auto s = Call(cluster_.get(), &etcdserverpb::Cluster::Stub::MemberPromote, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::NOT_FOUND);
    EXPECT_EQ(s.error_message(), "etcdserver: member not found");
  }
}

TEST_F(AdminServicesTest, ChangingAKnownMemberIsRefused) {
  const uint64_t self = server_->member_id();
  {
    // A region is a voting member: etcd's answer for promoting one.
    etcdserverpb::MemberPromoteRequest req;
    req.set_id(self);
    etcdserverpb::MemberPromoteResponse resp;
    auto s = Call(cluster_.get(), &etcdserverpb::Cluster::Stub::MemberPromote, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::FAILED_PRECONDITION);
    EXPECT_EQ(s.error_message(), "etcdserver: can only promote a learner member");
  }
  {
    etcdserverpb::MemberRemoveRequest req;
    req.set_id(self);
    etcdserverpb::MemberRemoveResponse resp;
    auto s = Call(cluster_.get(), &etcdserverpb::Cluster::Stub::MemberRemove, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::UNIMPLEMENTED);
    EXPECT_THAT(s.error_message(), ::testing::HasSubstr("membership change"));
  }
  {
    etcdserverpb::MemberAddRequest req;
    req.add_peerurls("http://127.0.0.1:2390");
    etcdserverpb::MemberAddResponse resp;
    auto s = Call(cluster_.get(), &etcdserverpb::Cluster::Stub::MemberAdd, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::UNIMPLEMENTED);
  }
}

TEST_F(AdminServicesTest, DefragmentAnswersAnEmptyResponseAsEtcd) {
  etcdserverpb::DefragmentResponse resp;
  auto s = Call(maintenance_.get(), &etcdserverpb::Maintenance::Stub::Defragment,
                etcdserverpb::DefragmentRequest(), &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(resp.has_header());
}

}  // namespace
}  // namespace geoetcd
