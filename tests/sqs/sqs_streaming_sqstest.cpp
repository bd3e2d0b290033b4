// Streamed responses on the SQS tunnel (docs/sqs.md, "Streamed responses"), against both SQS
// servers: a consumer session sends each piece as `piece` messages cut to the queue's limit
// and the forwarder passes them on in order; pieces that a standard queue reorders or
// delivers twice are passed on once, in order; a piece the consumer says it stored that never
// comes ends the stream within the heartbeat bound; a whole stream leaves nothing on the queues.
#include "../support/async.hpp"
#include "../support/request.hpp"
#include "../support/sqs_fixture.hpp"
#include "aws/credentials.hpp"
#include "aws/sqs_client.hpp"
#include "backend/sqs/message.hpp"
#include "sqs/sqs_server.hpp"
#include "tunnel/backend.hpp"
#include "util/clock.hpp"
#include "util/ids.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace funcie {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using kind = tunnel::forward_outcome::kind;
using funcie::test::run_async;
using funcie::test::sleep_for;
using funcie::test::sqs_server;
namespace sq = sqs_backend;

constexpr std::string_view app = "stream-app";
constexpr int queue_limit = 256 * 1024;

class SqsStreaming : public ::testing::TestWithParam<sqs_server::kind>,
                     protected test::sqs_fixture {
 protected:
  SqsStreaming() : sqs_fixture(GetParam(), {{"req", queue_limit}, {"resp", queue_limit}}) {}

  tunnel::backend_options options() const { return test::sqs_options(server, app, 1500ms); }

  /// Messages on both queues, visible or not, once that is 0 or `bound` has passed.
  asio::awaitable<int> left_after(aws::sqs_client& raw, std::chrono::milliseconds bound) const {
    const std::vector<std::string> names{"ApproximateNumberOfMessages",
                                         "ApproximateNumberOfMessagesNotVisible"};
    const auto until = steady::now() + bound;
    for (;;) {
      int n = 0;
      for (const auto* queue : {"req", "resp"}) {
        const auto a = co_await raw.get_queue_attributes(server.url(queue), names);
        for (const auto& name : names) {
          if (auto it = a.find(name); it != a.end()) n += std::stoi(it->second);
        }
      }
      if (n == 0 || steady::now() >= until) co_return n;
      co_await sleep_for(250ms);
    }
  }

  /// The first message of `kind` for `id` on `queue` (others are deleted), within `bound`.
  static asio::awaitable<std::optional<sq::message>> take(aws::sqs_client& raw,
                                                          const std::string& queue,
                                                          sq::message_kind wanted,
                                                          const std::string& id,
                                                          std::chrono::milliseconds bound) {
    const auto until = steady::now() + bound;
    while (steady::now() < until) {
      for (const auto& got : co_await raw.receive_message(queue, 1, 1)) {
        co_await raw.delete_message(queue, got.receipt_handle);
        const auto m = sq::decode(got.body);
        if (m.kind == wanted && m.id == id) co_return m;
      }
    }
    co_return std::nullopt;
  }
};

tunnel::response piece_of(const tunnel::request& req, const std::string& session,
                          std::int64_t piece, bool more, std::string body) {
  tunnel::response r;
  r.id = req.id;
  r.app = req.app;
  r.consumer = session;
  r.piece = piece;
  r.more = more;
  r.body = std::move(body);
  return r;
}

TEST_P(SqsStreaming, AConsumerSessionsPiecesArriveInOrderCutToTheQueuesLimit) {
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        auto session = tunnel::make_consumer_session(ctx.get_executor(), options());
        co_await session->open();
        auto forwarder = tunnel::make_forwarder_backend(ctx.get_executor(), options());
        EXPECT_TRUE(forwarder->streams()) << "a forwarder with a response queue takes pieces";
        if (!(forwarder->streams())) co_return;
        auto raw = raw_client(ctx);

        auto req = test::fresh_request(app, "{}");
        req.stream = true;
        // The consumer: three pieces as a handler would write them (the first binary and
        // bigger than a message, so cut into parts), the last with the error it ended with.
        std::string binary(600 * 1024, '\0');
        for (std::size_t i = 0; i < binary.size(); ++i) binary[i] = static_cast<char>(i * 7);
        const std::vector<tunnel::response> sent{
            piece_of(req, session->id(), 0, true, binary),
            piece_of(req, session->id(), 1, true, "second\n"), [&] {
              auto last = piece_of(req, session->id(), 2, false,
                                   R"({"errorType":"TypeError","errorMessage":"broke"})");
              last.result = tunnel::response::outcome::error;
              last.error_type = "TypeError";
              return last;
            }()};
        asio::co_spawn(
            ctx,
            [&]() -> asio::awaitable<void> {
              const auto got = co_await session->next();
              EXPECT_TRUE(got.stream) << "the request says the forwarder takes pieces";
              for (const auto& piece : sent) {
                co_await session->respond(piece);
                co_await sleep_for(200ms);
              }
            },
            asio::detached);

        auto first = co_await forwarder->forward(req, steady::now() + 30s);
        EXPECT_EQ(first.outcome, kind::answered) << first.reason << first.message;
        if (!(first.outcome == kind::answered)) co_return;
        EXPECT_EQ(first.answer.piece, 0);
        EXPECT_TRUE(first.answer.more);
        EXPECT_EQ(first.answer.body, binary) << "the binary piece came back byte for byte";
        EXPECT_TRUE(first.pieces) << "the rest of the stream comes from the same wait";
        if (!(first.pieces)) co_return;
        for (std::size_t i = 1; i < sent.size(); ++i) {
          auto next = co_await first.pieces->next(steady::now() + 30s);
          EXPECT_EQ(next.outcome, kind::answered) << next.message;
          if (!(next.outcome == kind::answered)) co_return;
          EXPECT_EQ(next.answer.piece, sent[i].piece);
          EXPECT_EQ(next.answer.more, sent[i].more);
          EXPECT_EQ(next.answer.body, sent[i].body);
          EXPECT_EQ(next.answer.error_type, sent[i].error_type);
        }
        first.pieces.reset();
        EXPECT_EQ(co_await left_after(*raw, 10s), 0) << "every piece was deleted";
        co_await session->close();
      },
      90s);
}

TEST_P(SqsStreaming, ReorderedAndRepeatedPiecesPassOnceInOrderAndALostOneEndsTheStream) {
  run_async(
      [&](asio::io_context& ctx) -> asio::awaitable<void> {
        auto raw = raw_client(ctx);
        // A consumer made by hand: its presence tag, then its claim, pieces and alives as
        // raw messages, so that the queue's reordering and copies can be played exactly.
        const std::string session = util::random_hex(32);
        const std::string tag = sq::presence_tag_key(app, session);
        const std::map<std::string, std::string> present{
            {tag, sq::presence_tag_value(tag, util::unix_ms_now() + 60'000, {}, session)}};
        co_await raw->tag_queue(server.url("req"), present);
        auto forwarder = tunnel::make_forwarder_backend(ctx.get_executor(), options());
        auto req = test::fresh_request(app, "{}");
        req.stream = true;
        const std::int64_t expires = util::unix_ms_now() + 30'000;
        auto send = [&](const sq::message& m) -> asio::awaitable<void> {
          co_await raw->send_message(server.url("resp"), sq::encode(m));
        };
        auto piece_message = [&](std::uint32_t k, bool more, std::string body) {
          sq::message m;
          m.kind = sq::message_kind::piece;
          m.app = std::string(app);
          m.id = req.id;
          m.session = session;
          m.piece = k;
          m.expires_ms = expires;
          m.data = tunnel::encode(piece_of(req, session, k, more, std::move(body)));
          return m;
        };
        auto alive = [&](std::uint32_t stored) {
          sq::message m;
          m.kind = sq::message_kind::alive;
          m.app = std::string(app);
          m.id = req.id;
          m.session = session;
          m.sent = stored;
          m.expires_ms = expires;
          return m;
        };

        asio::co_spawn(
            ctx,
            [&]() -> asio::awaitable<void> {
              auto offer =
                  co_await take(*raw, server.url("req"), sq::message_kind::offer, req.id, 10s);
              EXPECT_TRUE(offer.has_value()) << "no offer";
              EXPECT_TRUE(offer && tunnel::decode_request(offer->data).stream);
              sq::message claim;
              claim.kind = sq::message_kind::claim;
              claim.app = std::string(app);
              claim.id = req.id;
              claim.session = session;
              claim.expires_ms = util::unix_ms_now() + 5000;
              co_await send(claim);
              auto commit =
                  co_await take(*raw, server.url("req"), sq::message_kind::commit, req.id, 10s);
              EXPECT_TRUE(commit && commit->session == session) << "no commit to this session";
              // Piece 1 before piece 0, piece 0 twice, piece 3 before piece 2, which never
              // comes although the alives say 4 pieces are stored.
              co_await send(piece_message(1, true, "one "));
              co_await sleep_for(300ms);
              co_await send(piece_message(0, true, "zero "));
              co_await send(piece_message(0, true, "zero "));
              co_await send(piece_message(3, true, "three "));
              for (int i = 0; i < 8; ++i) {
                co_await send(alive(4));
                co_await sleep_for(500ms);
              }
            },
            asio::detached);

        auto first = co_await forwarder->forward(req, steady::now() + 30s);
        EXPECT_EQ(first.outcome, kind::answered) << first.reason << first.message;
        if (!(first.outcome == kind::answered)) co_return;
        EXPECT_EQ(first.answer.piece, 0) << "piece 0 is passed on first, although 1 came first";
        EXPECT_EQ(first.answer.body, "zero ");
        EXPECT_TRUE(first.pieces);
        if (!(first.pieces)) co_return;
        auto second = co_await first.pieces->next(steady::now() + 30s);
        EXPECT_EQ(second.outcome, kind::answered) << second.message;
        if (!(second.outcome == kind::answered)) co_return;
        EXPECT_EQ(second.answer.piece, 1);
        EXPECT_EQ(second.answer.body, "one ");
        const auto waiting = steady::now();
        auto third = co_await first.pieces->next(steady::now() + 30s);
        const auto waited =
            std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - waiting);
        EXPECT_EQ(third.outcome, kind::failed) << "the copy of piece 0 or piece 3 was passed on";
        EXPECT_EQ(third.error_type, "Funcie.BrokerLost") << third.message;
        EXPECT_NE(third.message.find("piece 2"), std::string::npos) << third.message;
        // The alive saying 4 were stored came within the first 0.5 s; the bound is 1.5 s.
        EXPECT_LT(waited, 3500ms) << "the lost piece was noticed within the heartbeat bound";
        first.pieces.reset();
        const std::vector<std::string> tags{tag};
        co_await raw->untag_queue(server.url("req"), tags);
      },
      90s);
}

INSTANTIATE_TEST_SUITE_P(Servers, SqsStreaming,
                         ::testing::Values(sqs_server::kind::faux, sqs_server::kind::local),
                         test::sqs_server_name);

}  // namespace
}  // namespace funcie
