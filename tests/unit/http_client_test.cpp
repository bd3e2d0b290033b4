// http_client against a tiny loopback Beast server in the test: keep-alive reuse, a pooled
// connection the server closed, timeout, cancellation, concurrency, large bodies, and TLS
// verification with certificates made by the openssl CLI at test time.
#include "aws/http_client.hpp"
#include "../support/async.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace funcie::aws {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using namespace std::chrono_literals;
using namespace boost::asio::experimental::awaitable_operators;
using funcie::test::run_async;
using funcie::test::sleep_for;

using server_request = http::request<http::string_body>;
using server_response = http::response<http::string_body>;

/// A loopback HTTP/1.1 server (TLS when given a context) that answers with `handler` and
/// counts connections and requests.
struct test_server {
  struct shared {
    int connections = 0;
    int requests = 0;
    std::chrono::milliseconds delay{0};
    /// Close each connection right after its answer, without saying so (as a server closing
    /// an idle keep-alive connection does).
    bool close_after_answer = false;
    std::function<server_response(const server_request&)> handler;
    std::vector<std::string> hosts;  ///< Host header of each request
  };

  test_server(asio::io_context& ctx, ssl::context* tls = nullptr)
      : acceptor(ctx, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        state(std::make_shared<shared>()) {
    state->handler = [](const server_request& r) {
      server_response res(http::status::ok, 11);
      res.body() = "echo:" + r.body();
      return res;
    };
    asio::co_spawn(ctx, accept_loop(acceptor, state, tls), asio::detached);
  }

  std::uint16_t port() const { return acceptor.local_endpoint().port(); }
  endpoint at(bool tls = false, std::string host = "127.0.0.1") const {
    endpoint e;
    e.tls = tls;
    e.host = std::move(host);
    e.port = port();
    return e;
  }

  template <class Stream>
  static asio::awaitable<void> serve(Stream& stream, std::shared_ptr<shared> s) {
    boost::beast::flat_buffer buffer;
    for (;;) {
      server_request req;
      http::request_parser<http::string_body> parser;
      parser.body_limit(64 * 1024 * 1024);
      error_code ec;
      co_await http::async_read(stream, buffer, parser,
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      req = parser.release();
      ++s->requests;
      s->hosts.emplace_back(req[http::field::host]);
      if (s->delay.count() > 0) co_await sleep_for(s->delay);
      server_response res = s->handler(req);
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
      if (ec || s->close_after_answer || !req.keep_alive()) co_return;
    }
  }

  static asio::awaitable<void> session(tcp::socket socket, std::shared_ptr<shared> s,
                                       ssl::context* tls) {
    if (tls == nullptr) {
      co_await serve(socket, s);
      co_return;
    }
    ssl::stream<tcp::socket> stream(std::move(socket), *tls);
    error_code ec;
    co_await stream.async_handshake(ssl::stream_base::server,
                                    asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    co_await serve(stream, s);
  }

  static asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, std::shared_ptr<shared> s,
                                           ssl::context* tls) {
    for (;;) {
      error_code ec;
      tcp::socket socket =
          co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      ++s->connections;
      asio::co_spawn(acceptor.get_executor(), session(std::move(socket), s, tls), asio::detached);
    }
  }

  tcp::acceptor acceptor;
  std::shared_ptr<shared> state;
};

http_request post(std::string body) {
  http_request r;
  r.body = std::move(body);
  r.headers.emplace_back("Content-Type", "text/plain");
  return r;
}

TEST(HttpClientTest, ParsesEndpoints) {
  endpoint a = parse_endpoint("https://sqs.eu-west-1.amazonaws.com");
  EXPECT_TRUE(a.tls);
  EXPECT_EQ(a.host, "sqs.eu-west-1.amazonaws.com");
  EXPECT_EQ(a.port, 443);
  EXPECT_EQ(a.host_header(), "sqs.eu-west-1.amazonaws.com");
  endpoint b = parse_endpoint("http://127.0.0.1:4566/");
  EXPECT_FALSE(b.tls);
  EXPECT_EQ(b.port, 4566);
  EXPECT_EQ(b.host_header(), "127.0.0.1:4566");
  endpoint c = parse_endpoint("HTTP://[::1]:9324");
  EXPECT_EQ(c.host, "::1");
  EXPECT_EQ(c.host_header(), "[::1]:9324");
  EXPECT_EQ(parse_endpoint("https://h:443").host_header(), "h");
  for (const char* bad : {"sqs.amazonaws.com", "ftp://h", "http://", "http://h:0", "http://h:70000",
                          "http://h:x", "http://h/path", "http://[::1", "http://u@h"}) {
    EXPECT_THROW(parse_endpoint(bad), endpoint_error) << bad;
  }
}

TEST(HttpClientTest, ReusesOneConnectionForSequentialRequests) {
  run_async(
      [](asio::io_context& ctx) -> asio::awaitable<void> {
        test_server server(ctx);
        http_client client(ctx.get_executor(), {});
        for (int i = 0; i < 5; ++i) {
          http_response r = co_await client.send(server.at(), post("n" + std::to_string(i)), 2s);
          EXPECT_EQ(r.status, 200u);
          EXPECT_EQ(r.body, "echo:n" + std::to_string(i));
        }
        EXPECT_EQ(server.state->connections, 1);
        EXPECT_EQ(server.state->requests, 5);
        EXPECT_EQ(server.state->hosts.front(), "127.0.0.1:" + std::to_string(server.port()));
      },
      10s);
}

TEST(HttpClientTest, RetriesOnceWhenThePeerClosedAnIdleConnection) {
  run_async(
      [](asio::io_context& ctx) -> asio::awaitable<void> {
        test_server server(ctx);
        server.state->close_after_answer = true;
        http_client client(ctx.get_executor(), {});
        for (int i = 0; i < 3; ++i) {
          http_response r = co_await client.send(server.at(), post("x"), 2s);
          EXPECT_EQ(r.body, "echo:x");
          co_await sleep_for(20ms);  // let the close reach us
        }
        EXPECT_EQ(server.state->requests, 3);  // no request ran twice
        EXPECT_EQ(server.state->connections, 3);
      },
      10s);
}

TEST(HttpClientTest, ReturnsAnyStatusAndHeaders) {
  run_async(
      [](asio::io_context& ctx) -> asio::awaitable<void> {
        test_server server(ctx);
        server.state->handler = [](const server_request&) {
          server_response res(http::status::bad_request, 11);
          res.set("X-Amzn-Query-Error", "AccessDenied;Sender");
          res.body() = "{}";
          return res;
        };
        http_client client(ctx.get_executor(), {});
        http_response r = co_await client.send(server.at(), post(""), 2s);
        EXPECT_EQ(r.status, 400u);
        EXPECT_EQ(r.header("x-amzn-query-error"), "AccessDenied;Sender");
        EXPECT_EQ(r.header("absent"), "");
      },
      10s);
}

TEST(HttpClientTest, TimesOutAndDropsTheConnection) {
  run_async(
      [](asio::io_context& ctx) -> asio::awaitable<void> {
        test_server server(ctx);
        http_client client(ctx.get_executor(), {});
        co_await client.send(server.at(), post("warm"), 2s);
        server.state->delay = 1500ms;
        auto start = std::chrono::steady_clock::now();
        try {
          co_await client.send(server.at(), post("slow"), 200ms);
          ADD_FAILURE() << "no timeout";
        } catch (const http_error& e) {
          EXPECT_EQ(e.cause(), http_error::kind::timeout);
          EXPECT_NE(std::string(e.what()).find("200 ms"), std::string::npos) << e.what();
        }
        EXPECT_LT(std::chrono::steady_clock::now() - start, 800ms);
        server.state->delay = 0ms;
        http_response r = co_await client.send(server.at(), post("after"), 2s);
        EXPECT_EQ(r.body, "echo:after");
        EXPECT_EQ(server.state->connections, 2);  // the timed-out one was not pooled
      },
      10s);
}

TEST(HttpClientTest, ConnectRefusedIsAConnectError) {
  run_async(
      [](asio::io_context& ctx) -> asio::awaitable<void> {
        std::uint16_t port = 0;
        {
          tcp::acceptor probe(ctx, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
          port = probe.local_endpoint().port();
        }
        http_client client(ctx.get_executor(), {});
        endpoint to = parse_endpoint("http://127.0.0.1:" + std::to_string(port));
        try {
          co_await client.send(to, post(""), 2s);
          ADD_FAILURE() << "connected";
        } catch (const http_error& e) {
          EXPECT_EQ(e.cause(), http_error::kind::connect);
          EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(port)),
                    std::string::npos)
              << e.what();
        }
      },
      10s);
}

TEST(HttpClientTest, CancellationStopsTheRequestAndDropsTheConnection) {
  run_async(
      [](asio::io_context& ctx) -> asio::awaitable<void> {
        test_server server(ctx);
        http_client client(ctx.get_executor(), {});
        co_await client.send(server.at(), post("warm"), 2s);
        server.state->delay = 1000ms;
        asio::steady_timer timer(ctx, 100ms);
        auto start = std::chrono::steady_clock::now();
        auto winner = co_await (client.send(server.at(), post("slow"), 5s) ||
                                timer.async_wait(asio::use_awaitable));
        EXPECT_EQ(winner.index(), 1u);
        EXPECT_LT(std::chrono::steady_clock::now() - start, 500ms);
        server.state->delay = 0ms;
        http_response r = co_await client.send(server.at(), post("after"), 2s);
        EXPECT_EQ(r.body, "echo:after");
        EXPECT_EQ(server.state->connections, 2);
      },
      10s);
}

TEST(HttpClientTest, ConcurrentSendsUseTheirOwnConnections) {
  run_async(
      [](asio::io_context& ctx) -> asio::awaitable<void> {
        test_server server(ctx);
        server.state->delay = 200ms;
        http_client client(ctx.get_executor(), {});
        auto start = std::chrono::steady_clock::now();
        auto one = [&](std::string body) -> asio::awaitable<std::string> {
          http_response r = co_await client.send(server.at(), post(std::move(body)), 3s);
          co_return r.body;
        };
        auto [a, b, c, d] = co_await (one("a") && one("b") && one("c") && one("d"));
        EXPECT_EQ(a, "echo:a");
        EXPECT_EQ(b, "echo:b");
        EXPECT_EQ(c, "echo:c");
        EXPECT_EQ(d, "echo:d");
        EXPECT_LT(std::chrono::steady_clock::now() - start, 700ms);  // not one after another
        EXPECT_EQ(server.state->connections, 4);
        co_await (one("e") && one("f"));  // from the pool
        EXPECT_EQ(server.state->connections, 4);
      },
      10s);
}

TEST(HttpClientTest, CarriesLargeBodies) {
  run_async(
      [](asio::io_context& ctx) -> asio::awaitable<void> {
        test_server server(ctx);
        server.state->handler = [](const server_request& r) {
          server_response res(http::status::ok, 11);
          res.body() = r.body() + r.body() + r.body() + r.body() + r.body();
          return res;
        };
        http_client client(ctx.get_executor(), {});
        std::string body(2 * 1024 * 1024, 'q');
        body.back() = 'z';
        http_response r = co_await client.send(server.at(), post(body), 5s);
        EXPECT_EQ(r.body.size(), 10u * 1024 * 1024);
        EXPECT_EQ(r.body.back(), 'z');
      },
      20s);
}

/// A CA and server certificates made with the openssl CLI in a temporary directory.
struct certificates {
  certificates() {
    char pattern[] = "/tmp/funcie-http-tls-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir = pattern;
    std::string d = dir.string() + "/";
    std::ofstream(d + "good.ext") << "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                     "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n";
    std::ofstream(d + "wrong.ext") << "subjectAltName=DNS:wrong.example\n"
                                      "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n";
    std::string quiet = " >>" + d + "openssl.log 2>&1";
    run("openssl ecparam -name prime256v1 -out " + d + "params.pem" + quiet);
    run("openssl req -x509 -newkey ec:" + d +
        "params.pem -nodes -days 2 -subj '/CN=funcie test ca'"
        " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
        " -keyout " +
        d + "ca.key -out " + d + "ca.pem" + quiet);
    for (std::string name : {"good", "wrong"}) {
      run("openssl req -new -newkey ec:" + d + "params.pem -nodes -subj '/CN=" + name +
          "' -keyout " + d + name + ".key -out " + d + name + ".csr" + quiet);
      run("openssl x509 -req -in " + d + name + ".csr -CA " + d + "ca.pem -CAkey " + d +
          "ca.key -CAcreateserial -days 2 -extfile " + d + name + ".ext -out " + d + name + ".pem" +
          quiet);
    }
  }
  ~certificates() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  static void run(const std::string& command) {
    if (std::system(command.c_str()) != 0) throw std::runtime_error("failed: " + command);
  }
  std::unique_ptr<ssl::context> server_context(const std::string& name) const {
    auto context = std::make_unique<ssl::context>(ssl::context::tls_server);
    context->use_certificate_chain_file((dir / (name + ".pem")).string());
    context->use_private_key_file((dir / (name + ".key")).string(), ssl::context::pem);
    return context;
  }
  std::string ca() const { return (dir / "ca.pem").string(); }
  std::filesystem::path dir;
};

class HttpClientTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { certs_ = new certificates(); }
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
  }
  static certificates* certs_;
};
certificates* HttpClientTlsTest::certs_ = nullptr;

/// Sends one request to a TLS server with certificate `cert`; returns the error, if any.
std::optional<http_error> tls_attempt(const certificates& certs, const std::string& cert,
                                      tls_options options, const std::string& host,
                                      std::string* body = nullptr) {
  std::optional<http_error> failure;
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        auto context = certs.server_context(cert);
        test_server server(ctx, context.get());
        http_client client(ctx.get_executor(), options);
        try {
          http_response r = co_await client.send(server.at(true, host), post("tls"), 3s);
          if (body) *body = r.body;
          r = co_await client.send(server.at(true, host), post("again"), 3s);
          EXPECT_EQ(server.state->connections, 1);
        } catch (const http_error& e) {
          failure = e;
        }
      },
      10s);
  return failure;
}

TEST_F(HttpClientTlsTest, VerifiesWithTheGivenCaFile) {
  tls_options options;
  options.ca_file = certs_->ca();
  std::string body;
  auto failure = tls_attempt(*certs_, "good", options, "127.0.0.1", &body);
  EXPECT_FALSE(failure) << failure->what();
  EXPECT_EQ(body, "echo:tls");
  failure = tls_attempt(*certs_, "good", options, "localhost", &body);  // by name, with SNI
  EXPECT_FALSE(failure) << failure->what();
}

TEST_F(HttpClientTlsTest, RefusesACertificateTheSystemDoesNotTrust) {
  auto failure = tls_attempt(*certs_, "good", tls_options{}, "127.0.0.1");
  ASSERT_TRUE(failure);
  EXPECT_EQ(failure->cause(), http_error::kind::tls);
  std::string text = failure->what();
  EXPECT_NE(text.find("could not be verified"), std::string::npos) << text;
  EXPECT_NE(text.find("FUNCIE_CA_FILE"), std::string::npos) << text;
  EXPECT_NE(text.find("AWS_CA_BUNDLE"), std::string::npos) << text;
}

TEST_F(HttpClientTlsTest, RefusesACertificateForAnotherHost) {
  tls_options options;
  options.ca_file = certs_->ca();
  auto failure = tls_attempt(*certs_, "wrong", options, "127.0.0.1");
  ASSERT_TRUE(failure);
  EXPECT_EQ(failure->cause(), http_error::kind::tls);
  EXPECT_NE(std::string(failure->what()).find("not for the host name 127.0.0.1"), std::string::npos)
      << failure->what();
  failure = tls_attempt(*certs_, "wrong", options, "localhost");  // a name, not an address
  ASSERT_TRUE(failure);
  EXPECT_NE(std::string(failure->what()).find("not for the host name localhost"), std::string::npos)
      << failure->what();
}

TEST_F(HttpClientTlsTest, AcceptsAnyCertificateWhenVerificationIsOff) {
  tls_options options;
  options.verify = false;
  auto failure = tls_attempt(*certs_, "wrong", options, "127.0.0.1");
  EXPECT_FALSE(failure) << failure->what();
}

TEST_F(HttpClientTlsTest, SaysWhenTheCaFileCannotBeRead) {
  tls_options options;
  options.ca_file = "/nonexistent/ca.pem";
  auto failure = tls_attempt(*certs_, "good", options, "127.0.0.1");
  ASSERT_TRUE(failure);
  EXPECT_NE(std::string(failure->what()).find("/nonexistent/ca.pem"), std::string::npos);
}

}  // namespace
}  // namespace funcie::aws
