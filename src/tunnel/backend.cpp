// Backends are picked by the scheme of their URL, among the kinds registered
// (src/tunnel/registry.hpp): redis:// and rediss:// (src/backend/redis), sqs://
// (src/backend/sqs).
#include "tunnel/backend.hpp"

#include "tunnel/registry.hpp"

#include <fmt/format.h>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <cctype>

namespace funcie::tunnel {

namespace {

std::string scheme_of(std::string_view url) {
  const auto end = url.find("://");
  if (end == std::string_view::npos) return {};
  std::string scheme(url.substr(0, end));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return scheme;
}

const backend_kind* kind_of(const std::string& scheme) {
  for (const backend_kind* kind : backend_kinds()) {
    for (const auto known : kind->schemes) {
      if (scheme == known) return kind;
    }
  }
  return nullptr;
}

/// "use redis://, rediss:// or sqs://"
std::string schemes_hint() {
  std::vector<std::string> all;
  for (const backend_kind* kind : backend_kinds()) {
    for (const auto scheme : kind->schemes) all.push_back(fmt::format("{}://", scheme));
  }
  std::string hint = "use ";
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (i > 0) hint += i + 1 == all.size() ? " or " : ", ";
    hint += all[i];
  }
  return hint;
}

/// The kind serving `options.url`, whose form is checked. Throws backend_config_error.
const backend_kind& checked_kind(const backend_options& options) {
  check_backend_url(options.url);
  return *kind_of(scheme_of(options.url));
}

}  // namespace

forward_outcome not_taken(std::string reason) {
  forward_outcome out;
  out.outcome = forward_outcome::kind::not_taken;
  out.reason = std::move(reason);
  return out;
}

forward_outcome failed(std::string error_type, std::string message) {
  forward_outcome out;
  out.outcome = forward_outcome::kind::failed;
  out.error_type = std::move(error_type);
  out.message = std::move(message);
  return out;
}

forward_outcome answered(response answer) {
  forward_outcome out;
  out.outcome = forward_outcome::kind::answered;
  out.answer = std::move(answer);
  return out;
}

response bad_request_response(std::string_view id, std::string_view app, std::string_view session,
                              std::string_view why) {
  response refusal;
  refusal.id = id;
  refusal.app = app;
  refusal.consumer = session;
  refusal.result = response::outcome::error;
  refusal.error_type = "Funcie.BadRequest";
  boost::json::object body;
  body["errorMessage"] = fmt::format("the consumer could not read the request: {}", why);
  body["errorType"] = refusal.error_type;
  refusal.body = boost::json::serialize(body);
  return refusal;
}

void check_app(std::string_view app) {
  if (!is_valid_app(app)) {
    throw backend_config_error(
        fmt::format("invalid app name '{}': use 1 to 64 characters of A-Z a-z 0-9 - _ .",
                    app.size() <= 64 ? std::string(app) : std::string(app.substr(0, 64)) + "..."));
  }
}

void check_backend_url(std::string_view url) {
  if (url.empty()) throw backend_config_error(fmt::format("no backend URL; {}", schemes_hint()));
  const std::string scheme = scheme_of(url);
  if (scheme.empty()) {
    throw backend_config_error(fmt::format("the backend URL has no scheme; {}", schemes_hint()));
  }
  if (const backend_kind* kind = kind_of(scheme)) {
    kind->check_url(url);
    return;
  }
  // The scheme is shown only when it is short and plain: it is not a secret, but a URL
  // typed without its scheme could start with one.
  const bool plain =
      scheme.size() <= 16 && std::all_of(scheme.begin(), scheme.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '+' || c == '-' || c == '.';
      });
  throw backend_config_error(fmt::format("unsupported backend URL scheme '{}'; {}",
                                         plain ? scheme : std::string("?"), schemes_hint()));
}

std::unique_ptr<forwarder_backend> make_forwarder_backend(boost::asio::any_io_executor executor,
                                                          const backend_options& options) {
  return checked_kind(options).make_forwarder(std::move(executor), options);
}

std::unique_ptr<consumer_session> make_consumer_session(boost::asio::any_io_executor executor,
                                                        const backend_options& options) {
  return checked_kind(options).make_session(std::move(executor), options);
}

boost::asio::awaitable<std::vector<consumer_info>> list_consumers(
    boost::asio::any_io_executor executor, const backend_options& options) {
  const backend_kind& kind = checked_kind(options);
  co_return co_await kind.list_consumers(std::move(executor), options);
}

std::string redact_url(std::string_view url) {
  const std::string scheme = scheme_of(url);
  if (const backend_kind* kind = kind_of(scheme); kind != nullptr && kind->redact_url) {
    return kind->redact_url(url);
  }
  if (scheme.empty()) return "(not a URL)";
  // Any other URL: hide what stands between the user name and '@' in the authority.
  const auto authority_begin = url.find("://") + 3;
  auto authority_end = url.find_first_of("/?#", authority_begin);
  if (authority_end == std::string_view::npos) authority_end = url.size();
  const std::string_view authority = url.substr(authority_begin, authority_end - authority_begin);
  const auto at = authority.rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  const auto colon = authority.substr(0, at).find(':');
  if (colon == std::string_view::npos) return std::string(url);
  std::string out(url.substr(0, authority_begin + colon + 1));
  out += "****";
  out += url.substr(authority_begin + at);
  return out;
}

}  // namespace funcie::tunnel
