// The SQS JSON 1.0 answers: bodies from SQS (or from anything between us and it) -> received
// messages, a message id, a queue URL, queue attributes, queue tags, batch results, an error. Each
// parser throws parse_error or returns; parse_error_response never throws and returns printable
// text.
#include "aws/sqs_json.hpp"
#include "http_message.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sj = funcie::aws::sqs_json;
namespace fz = funcie::fuzz;

namespace {

template <typename Parse>
void parse(Parse p) {
  try {
    (void)p();
  } catch (const sj::parse_error&) {
  }
}

bool printable(std::string_view s, std::size_t max) {
  if (s.size() > max) return false;
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) return false;
  }
  return true;
}

// A request body carries `text` exactly when it is UTF-8 (JSON text must be).
void check_request(std::string_view text) {
  boost::system::error_code ec;
  const auto body = sj::send_message(text, text);
  const auto v = boost::json::parse(body, ec);
  if (ec) return;  // not UTF-8: the serializer copies such bytes as they are
  const auto& o = v.as_object();
  if (o.at("QueueUrl").as_string() != text || o.at("MessageBody").as_string() != text) {
    fz::fail("a request body does not carry its strings");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  parse([&] { return sj::parse_send_message(bytes); });
  parse([&] { return sj::parse_send_message(bytes, bytes); });
  parse([&] { return sj::parse_receive_message(bytes); });
  parse([&] { return sj::parse_get_queue_url(bytes); });
  parse([&] { return sj::parse_get_queue_attributes(bytes); });
  parse([&] { return sj::parse_list_queue_tags(bytes); });
  // A batch answer names only entries the request had, each once at most in the result.
  const std::vector<std::string> sent(size % 11, std::string(bytes.substr(0, 8)));
  parse([&] {
    const auto r = sj::parse_send_message_batch(bytes, sent);
    if (r.failed.size() != sent.size()) fz::fail("a batch result has another number of entries");
    return r;
  });
  parse([&] {
    const auto r = sj::parse_delete_message_batch(bytes, size % 11);
    if (r.failed.size() != size % 11) fz::fail("a batch result has another number of entries");
    return r;
  });
  parse([&] {
    const auto r = sj::parse_change_message_visibility_batch(bytes, size % 11);
    if (r.failed.size() != size % 11) fz::fail("a batch result has another number of entries");
    return r;
  });

  // The first line plays the x-amzn-query-error header, the rest the body.
  const auto newline = bytes.find('\n');
  const auto header =
      newline == std::string_view::npos ? std::string_view() : bytes.substr(0, newline);
  const auto body = newline == std::string_view::npos ? bytes : bytes.substr(newline + 1);
  const unsigned status = size == 0 ? 400 : 400 + data[0] % 200;
  for (const auto& e : {sj::parse_error_response(status, bytes, ""),
                        sj::parse_error_response(status, body, header)}) {
    if (!printable(e.message, 300) || !printable(e.code, 100)) {
      fz::fail("an error's code or message is not printable or too long");
    }
  }
  check_request(bytes.substr(0, 512));
  return 0;
}
