// What the C++ tests against an SQS server share (tests/sqs, tests/conformance): the server
// with its queues, the AWS client's settings a function's environment would give (set for the
// fixture's time, pointing at the server), the backend options that reach it, and a plain SQS
// client for what a test does behind the backend's back. Header-only.
//
//   class SqsSomething : public ::testing::TestWithParam<sqs_server::kind>,
//                        protected test::sqs_fixture {
//    protected:
//     SqsSomething() : sqs_fixture(GetParam(), {{"req"}, {"resp"}}) {}
//   };
//   server.url("req"); sqs_options(server, app, 3000ms); raw_client(ctx)
#pragma once

#include "aws/credentials.hpp"
#include "aws/sqs_client.hpp"
#include "env.hpp"
#include "sqs/sqs_server.hpp"
#include "tunnel/backend.hpp"

#include <gtest/gtest.h>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace funcie::test {

/// The AWS client's settings as a function's environment gives them (static test keys, no
/// session token or profile, us-east-1, no instance metadata), with SQS at `endpoint`; set for
/// the object's lifetime.
class aws_test_env {
 public:
  explicit aws_test_env(const std::string& endpoint) {
    const std::pair<const char*, const char*> vars[] = {
        {"AWS_ACCESS_KEY_ID", "AKIDFUNCIETEST"},
        {"AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"},
        {"AWS_SESSION_TOKEN", nullptr},
        {"AWS_PROFILE", nullptr},
        {"AWS_REGION", "us-east-1"},
        {"AWS_ENDPOINT_URL_SQS", endpoint.c_str()},
        {"AWS_EC2_METADATA_DISABLED", "true"}};
    for (const auto& [name, value] : vars) {
      vars_.push_back(std::make_unique<scoped_env>(name, value));
    }
  }

 private:
  std::vector<std::unique_ptr<scoped_env>> vars_;
};

/// Backend options that reach `server`'s queues `req` and `resp` for `app`: presence read
/// every second rather than 10 s (a warm forwarder notices a session that comes or goes in a
/// test's time) and, on local-aws-sqs, one message a receive (it holds a batched receive for
/// its whole wait; funcie finds that out by itself, tests/sqs HeldBatchedReceivesAreDetected,
/// and the tests skip that first slow receive).
inline tunnel::backend_options sqs_options(const sqs_server& server, std::string_view app,
                                           std::chrono::milliseconds heartbeat,
                                           const std::string& req = "req",
                                           const std::string& resp = "resp") {
  tunnel::backend_options o;
  o.sqs_tuning.presence_every = std::chrono::milliseconds(1000);
  if (server.which() == sqs_server::kind::local) o.sqs_tuning.receive_batch = 1;
  o.url = "sqs://";
  o.app = std::string(app);
  o.timing.heartbeat = heartbeat;
  o.sqs.request_queue_url = server.url(req);
  o.sqs.response_queue_url = server.url(resp);
  return o;
}

/// A plain SQS client of `server`, with the credentials of the environment (aws_test_env).
inline std::unique_ptr<aws::sqs_client> raw_sqs_client(const boost::asio::any_io_executor& ex,
                                                       const sqs_server& server) {
  aws::sqs_client_options o;
  o.region = "us-east-1";
  o.endpoint = server.endpoint();
  auto credentials = std::make_shared<aws::credential_provider>(
      ex, [](const char* name) { return std::getenv(name); });
  return std::make_unique<aws::sqs_client>(ex, o, credentials);
}

/// A test fixture's SQS server and environment (a base next to ::testing::Test or
/// TestWithParam): the server starts before, and stops after, the settings that point at it.
class sqs_fixture {
 protected:
  sqs_fixture(sqs_server::kind kind, const std::vector<sqs_queue_spec>& queues)
      : server(kind, queues) {}

  std::unique_ptr<aws::sqs_client> raw_client(boost::asio::io_context& ctx) const {
    return raw_sqs_client(ctx.get_executor(), server);
  }

  sqs_server server;
  aws_test_env env{server.endpoint()};
};

/// Test names for suites run against both servers ("fauxqs", "local").
inline std::string sqs_server_name(const ::testing::TestParamInfo<sqs_server::kind>& param) {
  return param.param == sqs_server::kind::faux ? std::string("fauxqs") : std::string("local");
}

}  // namespace funcie::test
