#include "doctor/doctor.hpp"

#include "aws/credentials.hpp"
#include "aws/sqs_client.hpp"
#include "backend/sqs/held_receive.hpp"
#include "backend/sqs/message.hpp"
#include "backend/sqs/sqs_backend.hpp"
#include "forwarder/forwarder.hpp"
#include "redis/connection.hpp"
#include "redis/url.hpp"
#include "tunnel/secrets.hpp"
#include "util/clock.hpp"
#include "util/ids.hpp"

#include <fmt/format.h>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <set>
#include <utility>

namespace funcie::doctor {

namespace asio = boost::asio;
using std::chrono::milliseconds;

namespace {

const char* label(level severity) {
  switch (severity) {
    case level::ok:
      return "ok";
    case level::info:
      return "info";
    case level::warning:
      return "warning";
    case level::failed:
      return "FAILED";
  }
  return "?";
}

bool is_sqs_url(std::string_view url) {
  return url.size() >= 6 && (url[0] | 0x20) == 's' && (url[1] | 0x20) == 'q' &&
         (url[2] | 0x20) == 's' && url.substr(3, 3) == "://";
}

/// Every FUNCIE_* variable a function reads (the forwarder's reader, the SQS backend's
/// settings, the secret): another name is a typo.
constexpr std::array<std::string_view, 19> known_function_variables = {
    "FUNCIE_BACKEND",
    "FUNCIE_APP",
    "FUNCIE_REQUEST_QUEUE_URL",
    "FUNCIE_RESPONSE_QUEUE_URL",
    "FUNCIE_HEARTBEAT_MS",
    "FUNCIE_CONNECT_TIMEOUT_MS",
    "FUNCIE_DEADLINE_MARGIN_MS",
    "FUNCIE_CA_FILE",
    "FUNCIE_TLS_VERIFY",
    "FUNCIE_FORWARD_CREDENTIALS",
    "FUNCIE_SECRET",
    "FUNCIE_SECRET_PREVIOUS",
    "FUNCIE_ENCRYPT",
    "FUNCIE_SQS_CLAIM_MS",
    "FUNCIE_SQS_ABSENT_MS",
    "FUNCIE_SQS_PRESENCE_MS",
    "FUNCIE_SQS_PRESENCE_IDLE_MS",
    "FUNCIE_SQS_RECEIVE_BATCH",
    "FUNCIE_SQS_MAX_MESSAGE_BYTES",
};

constexpr std::string_view wrapper_path = "/opt/funcie-wrapper";

const char* lookup(const environment& env, const char* name) {
  auto it = env.find(name);
  return it == env.end() ? nullptr : it->second.c_str();
}

std::string value_in(const environment& env, const char* name) {
  const char* v = lookup(env, name);
  return v == nullptr ? std::string() : std::string(v);
}

bool false_text(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower == "false" || lower == "0";
}

std::string trim(std::string_view text) {
  const auto begin = text.find_first_not_of(" \t\r");
  if (begin == std::string_view::npos) return {};
  const auto end = text.find_last_not_of(" \t\r");
  return std::string(text.substr(begin, end - begin + 1));
}

bool valid_name(std::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0])) != 0) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
  });
}

constexpr const char* reach_redis_fix =
    "check the host and port in the URL, that the server runs, and that this machine reaches "
    "it: an ElastiCache in a VPC needs a VPN, a bastion or SSM port forwarding "
    "(docs/deploy.md, \"ElastiCache in a VPC\")";

}  // namespace

std::string format_finding(const finding& f) {
  // A detail of several lines (the credential chain's, say) keeps the column.
  std::string detail = f.detail;
  for (std::size_t at = detail.find('\n'); at != std::string::npos;
       at = detail.find('\n', at + 10)) {
    detail.insert(at + 1, 9, ' ');
  }
  std::string out = fmt::format("{:<8} {}: {}\n", label(f.severity), f.what, detail);
  if (!f.fix.empty()) out += fmt::format("{:<8} fix: {}\n", "", f.fix);
  return out;
}

void report::add(level severity, std::string what, std::string detail, std::string fix) {
  add(finding{severity, std::move(what), std::move(detail), std::move(fix)});
}

void report::add(finding f) {
  findings_.push_back(std::move(f));
  if (on_finding) on_finding(findings_.back());
}

std::size_t report::count(level severity) const {
  return static_cast<std::size_t>(
      std::count_if(findings_.begin(), findings_.end(),
                    [&](const finding& f) { return f.severity == severity; }));
}

std::string summary(const report& r) {
  const auto failed = r.count(level::failed);
  const auto warnings = r.count(level::warning);
  const std::string warning_text =
      warnings == 0 ? std::string()
                    : fmt::format("{} warning{}", warnings, warnings == 1 ? "" : "s");
  if (failed == 0) {
    return warnings == 0 ? "funcie doctor: all checks passed"
                         : fmt::format("funcie doctor: no check FAILED ({})", warning_text);
  }
  return fmt::format("funcie doctor: {} FAILED{}: fix the FAILED lines above and run it again",
                     failed, warnings == 0 ? std::string() : ", " + warning_text);
}

finding check_backend_url(std::string_view url) {
  if (url.empty()) {
    return {level::failed, "backend URL", "none given",
            "give --backend URL (or FUNCIE_BACKEND): redis://host:6379, rediss://host:6379 "
            "(TLS) or sqs://"};
  }
  try {
    tunnel::check_backend_url(url);
  } catch (const tunnel::backend_config_error& e) {
    // Its message never holds a password.
    return {level::failed, "backend URL", e.what(),
            "use redis://[user:password@]host[:port][/db], rediss://... (TLS) or sqs://"};
  }
  return {level::ok, "backend URL", tunnel::redact_url(url), {}};
}

finding check_app(std::string_view app, std::string_view flag) {
  if (app.empty()) {
    return {level::failed, "app", "none given",
            fmt::format("give {} NAME: the name the function forwards to (its FUNCIE_APP, or "
                        "the function's name)",
                        flag)};
  }
  if (!tunnel::is_valid_app(app)) {
    const std::string shown = app.size() <= 64 ? std::string(app) : std::string(app.substr(0, 64));
    return {level::failed, "app", fmt::format("'{}' is not a valid app name", shown),
            fmt::format("{}: use 1 to 64 characters of A-Z a-z 0-9 - _ .", flag)};
  }
  return {level::ok, "app", std::string(app), {}};
}

secret_check check_secret(std::string_view secret_file, bool encrypt, const getenv_function& getenv,
                          bool for_function) {
  secret_check out;
  const std::string source = !secret_file.empty() ? fmt::format("from {}", secret_file)
                                                  : std::string("from FUNCIE_SECRET");
  try {
    out.keys = tunnel::load_keyring(secret_file, encrypt, getenv);
  } catch (const tunnel::secret_error& e) {
    // secret_error never quotes the secret.
    out.result = {level::failed, "secret", e.what(),
                  for_function ? "set FUNCIE_SECRET to what `funcie secret` prints (32 random "
                                 "bytes, base64), the same as your --secret-file"
                               : "write a new one with `funcie secret > FILE` (32 random bytes, "
                                 "base64), give --secret-file FILE and set the same in the "
                                 "function's FUNCIE_SECRET (docs/security.md)"};
    return out;
  }
  if (!out.keys.enabled()) {
    out.result = {
        level::warning, "secret",
        "none set: tunnel messages are neither encrypted nor authenticated; anyone with access "
        "to the broker can read events and forge answers",
        for_function ? "set FUNCIE_SECRET in the function from Secrets Manager or SSM "
                       "(docs/deploy.md) and give the same to funcie connect --secret-file"
                     : "`funcie secret > FILE`, then --secret-file FILE here and the same secret "
                       "in the function's FUNCIE_SECRET (docs/security.md)"};
    return out;
  }
  const auto ids = out.keys.key_ids();
  std::string detail = fmt::format("key {} ({}), messages {}", ids.front(), source,
                                   out.keys.encrypts() ? "encrypted" : "signed, not encrypted");
  if (ids.size() > 1) detail += fmt::format("; also accepting key {} (rotation)", ids[1]);
  out.result = {level::ok, "secret", std::move(detail), {}};
  return out;
}

environment parse_environment(std::string_view text, std::string_view path) {
  environment env;
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && text[first] == '{') {
    boost::system::error_code ec;
    const auto value = boost::json::parse(text, ec);
    if (ec || !value.is_object()) {
      throw env_file_error(
          fmt::format("{}: not a JSON object of strings (as `aws lambda get-function-configuration "
                      "--query Environment.Variables` prints): {}",
                      path, ec ? ec.message() : std::string("not an object")));
    }
    for (const auto& [key, v] : value.as_object()) {
      const std::string name(key);
      if (!valid_name(name)) {
        throw env_file_error(
            fmt::format("{}: '{}' is not a variable name", path, name.substr(0, 64)));
      }
      if (v.is_string()) {
        env[name] = std::string(v.as_string());
      } else if (v.is_null()) {
        continue;
      } else {
        throw env_file_error(fmt::format(
            "{}: the value of {} is not a string (Lambda's variables are strings)", path, name));
      }
    }
    return env;
  }
  std::size_t line_number = 0;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    auto eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    const std::string line = trim(text.substr(pos, eol - pos));
    pos = eol + 1;
    ++line_number;
    if (line.empty() || line[0] == '#') continue;
    std::string_view rest = line;
    if (rest.starts_with("export ")) rest = std::string_view(rest).substr(7);
    const auto eq = rest.find('=');
    if (eq == std::string_view::npos) {
      throw env_file_error(
          fmt::format("{}:{}: not KEY=VALUE (nor a JSON object of strings)", path, line_number));
    }
    const std::string name = trim(rest.substr(0, eq));
    if (!valid_name(name)) {
      throw env_file_error(
          fmt::format("{}:{}: '{}' is not a variable name", path, line_number, name.substr(0, 64)));
    }
    std::string value(rest.substr(eq + 1));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    env[name] = std::move(value);
  }
  return env;
}

function_check check_function_environment(const environment& env, std::string_view function_name,
                                          report& out) {
  function_check result;

  // Names the forwarder would ignore: almost always a typo of a real one.
  for (const auto& [name, value] : env) {
    if (!name.starts_with("FUNCIE_")) continue;
    if (std::find(known_function_variables.begin(), known_function_variables.end(), name) ==
        known_function_variables.end()) {
      out.add(level::warning, "variable " + name, "funcie does not read it (a typo?)",
              "remove it or use one of the variables in README.md's table");
    }
  }

  // How funcie runs in the function: the layer's wrapper, or a custom runtime's bootstrap.
  const std::string wrapper = value_in(env, "AWS_LAMBDA_EXEC_WRAPPER");
  if (wrapper.empty()) {
    out.add(level::info, "AWS_LAMBDA_EXEC_WRAPPER",
            fmt::format("not set: right for the proxy-only function and for a custom runtime "
                        "whose bootstrap runs `exec {} ./real-bootstrap`; a managed runtime "
                        "(nodejs, python, java) needs AWS_LAMBDA_EXEC_WRAPPER={}",
                        wrapper_path, wrapper_path));
  } else if (wrapper != wrapper_path) {
    out.add(level::warning, "AWS_LAMBDA_EXEC_WRAPPER",
            fmt::format("is '{}', not funcie's", wrapper.substr(0, 200)),
            fmt::format("with the funcie layer, set AWS_LAMBDA_EXEC_WRAPPER={}", wrapper_path));
  } else {
    out.add(level::ok, "AWS_LAMBDA_EXEC_WRAPPER", std::string(wrapper_path));
  }

  const std::string url = value_in(env, "FUNCIE_BACKEND");
  if (url.empty()) {
    out.add(level::failed, "FUNCIE_BACKEND",
            "not set: forwarding is off, every invocation runs in the cloud",
            "set FUNCIE_BACKEND to redis://host:6379, rediss://host:6379 or sqs://");
    return result;
  }
  out.add(check_backend_url(url));
  if (out.findings().back().severity == level::failed) return result;

  // The secret gets its own line: read first, then hidden from the reader below so that its
  // errors are about the other variables.
  const bool encrypt = !false_text(value_in(env, "FUNCIE_ENCRYPT"));
  auto secret = check_secret(
      {}, encrypt, [&](const char* name) { return lookup(env, name); }, true);
  out.add(secret.result);

  const std::string ca_file = value_in(env, "FUNCIE_CA_FILE");
  const bool ca_here = !ca_file.empty() && ::access(ca_file.c_str(), R_OK) == 0;
  std::string lambda_name = value_in(env, "AWS_LAMBDA_FUNCTION_NAME");
  if (lambda_name.empty()) lambda_name = std::string(function_name);
  result.app_known = !value_in(env, "FUNCIE_APP").empty() || !lambda_name.empty();
  if (lambda_name.empty()) lambda_name = "function-name";  // Lambda always sets it.

  auto function_getenv = [&](const char* name) -> const char* {
    const std::string_view n(name);
    if (n == "FUNCIE_SECRET" || n == "FUNCIE_SECRET_PREVIOUS") return nullptr;
    if (n == "FUNCIE_CA_FILE" && !ca_here) return nullptr;  // a path in the function's files
    if (n == "AWS_LAMBDA_FUNCTION_NAME") return lambda_name.c_str();
    return lookup(env, name);
  };
  forwarder::forwarder_config config;
  try {
    config = forwarder::config_from_environment(function_getenv);
  } catch (const forwarder::config_error& e) {
    out.add(level::failed, "function environment", e.what(),
            "fix that variable: the forwarder refuses to start with it (Funcie.ConfigError)");
    return result;
  }
  out.add(level::ok, "function environment", "the forwarder's reader accepts every FUNCIE_ value");

  if (!value_in(env, "FUNCIE_APP").empty()) {
    out.add(check_app(config.backend.app, "FUNCIE_APP"));
  } else if (!function_name.empty() || !value_in(env, "AWS_LAMBDA_FUNCTION_NAME").empty()) {
    out.add(level::ok, "app",
            fmt::format("{} (the function's name; FUNCIE_APP is not set)", config.backend.app));
  } else {
    out.add(level::info, "app",
            "FUNCIE_APP is not set: the app is the function's name, and `funcie connect --app` "
            "must be that name (give --app FUNCTION_NAME to check it here)");
  }

  if (!ca_file.empty() && !ca_here) {
    out.add(level::info, "FUNCIE_CA_FILE",
            fmt::format("{} is not on this machine: it must be in the function's files (the "
                        "zip or a layer); the broker is checked from here with the system CAs",
                        ca_file.substr(0, 200)));
  }
  if (!config.backend.tls_verify) {
    out.add(level::warning, "FUNCIE_TLS_VERIFY",
            "false: the broker's certificate is not checked, anyone on the path can pose as it",
            "remove FUNCIE_TLS_VERIFY; give FUNCIE_CA_FILE for a private CA");
  }
  if (config.forward_credentials) {
    out.add(level::warning, "FUNCIE_FORWARD_CREDENTIALS",
            "true: each request carries the function's AWS credentials to the broker",
            "set a shared secret (they then travel encrypted) and use it only on a development "
            "stage");
  }
  if (!url.starts_with("rediss") && !is_sqs_url(url)) {
    out.add(level::info, "transport",
            "redis:// is not encrypted; ElastiCache with in-transit encryption takes rediss://");
  }

  config.backend.keys = secret.keys;
  if (is_sqs_url(url)) {
    std::string request = value_in(env, "FUNCIE_REQUEST_QUEUE_URL");
    if (request.empty()) request = value_in(env, "LAMBDA_PROXY_REQ_QUEUE_URL");
    std::string response = value_in(env, "FUNCIE_RESPONSE_QUEUE_URL");
    if (response.empty()) response = value_in(env, "LAMBDA_PROXY_RESP_QUEUE_URL");
    config.backend.sqs.request_queue_url = request;
    config.backend.sqs.response_queue_url = response;
    if (request.empty()) {
      out.add(level::failed, "FUNCIE_REQUEST_QUEUE_URL", "not set",
              "set it to the request queue's URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)");
      return result;
    }
    if (response.empty()) {
      out.add(level::warning, "FUNCIE_RESPONSE_QUEUE_URL",
              "not set: fire-and-forget, every invocation is answered null at once and its "
              "response is dropped",
              "set it to the response queue's URL unless that is what you want");
    }
    // The SQS settings the function would resolve (the queues' form; its FUNCIE_SQS_* were
    // read by config_from_environment).
    try {
      sqs_backend::resolve_settings(config.backend, [&](const char* name) -> const char* {
        const std::string_view n(name);
        if (n.starts_with("FUNCIE_") || n.starts_with("LAMBDA_PROXY_")) return lookup(env, name);
        if (n == "AWS_REGION" || n == "AWS_DEFAULT_REGION") {
          const char* own = lookup(env, name);
          return own != nullptr ? own : std::getenv(name);
        }
        return std::getenv(name);
      });
    } catch (const tunnel::backend_config_error& e) {
      out.add(level::failed, "SQS settings", e.what(), "fix that variable");
      return result;
    }
  }
  result.backend = config.backend;
  return result;
}

namespace {

void add_unreachable(report& out, bool from_function, std::string what, std::string detail,
                     std::string fix) {
  if (from_function) {
    detail += " (checked from this machine; the function reaches it from its own network)";
  }
  out.add(from_function ? level::warning : level::failed, std::move(what), std::move(detail),
          std::move(fix));
}

asio::awaitable<bool> check_redis(asio::any_io_executor executor,
                                  const tunnel::backend_options& backend,
                                  const reach_options& options, report& out) {
  redis::connect_options co;
  co.server = redis::parse_url(backend.url);  // checked before
  co.ca_file = backend.ca_file;
  co.verify = backend.tls_verify;
  co.connect_timeout = options.timeout;
  co.client_name = "funcie-doctor";
  // On a Redis Cluster: the node of the app's slot, as the tunnel connects (docs/tunnel.md).
  if (!backend.app.empty()) co.route_key = "funcie:{" + backend.app + "}:requests";
  const std::string where = tunnel::redact_url(backend.url);
  std::unique_ptr<redis::connection> conn;
  std::string failure;
  redis::errc code = redis::errc::connect_failed;
  try {
    conn = co_await redis::connection::connect(executor, co);
  } catch (const redis::error& e) {
    failure = e.what();  // never holds the password
    code = e.code();
  }
  if (!conn) {
    if (code == redis::errc::auth_failed || failure.find("NOAUTH") != std::string::npos) {
      add_unreachable(
          out, options.from_function, "broker", failure,
          fmt::format("{} in the URL: redis://:AUTH_TOKEN@host:port, or "
                      "redis://USER:PASSWORD@host:port for an ACL user (percent-encode '@', ':' "
                      "and '/' in them); keep the URL in a secret, not in a template",
                      co.server.password.empty() ? "the server wants a password: put it"
                                                 : "put the right credentials"));
    } else {
      std::string fix = reach_redis_fix;
      const bool tls_trouble = failure.find("TLS") != std::string::npos ||
                               failure.find("certificate") != std::string::npos;
      if (tls_trouble) {
        fix = co.server.tls ? "give --ca-file (FUNCIE_CA_FILE in the function) for a private CA; "
                              "check that the host name matches the certificate"
                            : "the server may want TLS: use rediss://";
      } else if (!co.server.tls) {
        fix += "; a server with in-transit encryption takes rediss://";
      }
      add_unreachable(out, options.from_function, "broker", failure, fix);
    }
    co_return false;
  }
  std::string version;
  try {
    const std::vector<std::string_view> ping{"PING"};
    co_await conn->execute_checked(ping, options.timeout);
    const std::vector<std::string_view> info_server{"INFO", "server"};
    auto info = co_await conn->execute_checked(info_server, options.timeout);
    const auto at = info.str.find("redis_version:");
    if (at != std::string::npos) {
      const auto end = info.str.find_first_of("\r\n", at);
      version = info.str.substr(at + 14, end == std::string::npos ? end : end - at - 14);
    }
  } catch (const redis::error& e) {
    conn->close();
    const std::string message = e.what();
    const bool no_auth = message.find("NOAUTH") != std::string::npos;
    add_unreachable(out, options.from_function, "broker", message,
                    no_auth ? "the server wants a password: redis://:AUTH_TOKEN@host:port, or "
                              "redis://USER:PASSWORD@host:port for an ACL user"
                            : reach_redis_fix);
    co_return false;
  }
  conn->close();
  out.add(level::ok, "broker",
          fmt::format("{} answered PING{}", where,
                      version.empty() ? std::string() : fmt::format(" (Redis {})", version)));
  if (conn->clustered()) {
    out.add(level::ok, "cluster",
            fmt::format("cluster with {} masters, app slot {} on {}{}", conn->cluster_masters(),
                        conn->route_slot(), conn->server_name(),
                        conn->sharded_pubsub() ? " (sharded pub/sub)"
                                               : " (classic pub/sub: Redis before 7.0)"));
  }
  int major = 0;
  int minor = 0;
  if (std::sscanf(version.c_str(), "%d.%d", &major, &minor) == 2 &&
      (major < 6 || (major == 6 && minor < 2))) {
    out.add(level::failed, "broker version", fmt::format("Redis {} is too old", version),
            "funcie needs Redis 6.2 or later (GETDEL, fractional BLPOP timeouts)");
  }
  co_return true;
}

// Does the server hold a batched long poll for its whole wait although a message is there
// (docs/sqs.md, "Servers that hold batched receives")? One message of our own on the response
// queue (no consumer reads it; a forwarder that reads it leaves it, not being an envelope),
// then one receive of 10 with a 2 s long poll: a server that honours the batch answers at
// once. The backend's own rule (held_batch_ms) judges it. What is ours is deleted, anything
// else received is released at once.
asio::awaitable<void> probe_held_receives(aws::sqs_client& client,
                                          const sqs_backend::settings& settings, report& out) {
  const std::string& queue = settings.response_queue;
  const std::string body = fmt::format("funcie-doctor-probe {}", util::new_request_id());
  constexpr int wait_seconds = 2;
  constexpr int asked = 10;
  std::optional<std::int64_t> held;
  bool seen = false;
  std::int64_t took_ms = 0;
  try {
    co_await client.send_message(queue, body);
    // Others' messages can come first; a few receives find ours.
    for (int attempt = 0; attempt < 3 && !seen; ++attempt) {
      const auto started = util::unix_ms_now();
      auto got = co_await client.receive_message(queue, asked, wait_seconds, 5);
      const auto returned = util::unix_ms_now();
      std::vector<aws::sqs_json::received_message> ours;
      for (auto& m : got) {
        if (m.body == body) {
          co_await client.delete_message(queue, m.receipt_handle);
          ours.push_back(std::move(m));
        } else {
          co_await client.change_message_visibility(queue, m.receipt_handle, 0);
        }
      }
      if (ours.empty()) continue;
      seen = true;
      took_ms = returned - started;
      held = sqs_backend::held_batch_ms(ours, started, returned, wait_seconds, asked,
                                        client.clock_offset().count());
    }
  } catch (const aws::sqs_error& e) {
    out.add(level::warning, "batched receives", fmt::format("could not probe: {}", e.what()),
            "funcie doctor sends, receives and deletes one message of its own on the response "
            "queue to see this; the backend finds out by itself at run time");
    co_return;
  }
  if (!seen) {
    out.add(level::warning, "batched receives",
            "the probe's message did not come back in 3 receives (a busy queue?)",
            "run funcie doctor again when the queue is quiet");
  } else if (held) {
    out.add(level::warning, "batched receives",
            fmt::format("the server held a receive of up to {} messages for {} ms although a "
                        "message was there: every end would receive one message at a time "
                        "after its first slow receive",
                        asked, *held),
            "set FUNCIE_SQS_RECEIVE_BATCH=1 for this server, for funcie connect and in the "
            "function's environment (docs/sqs.md)");
  } else {
    out.add(level::ok, "batched receives",
            fmt::format("a receive of up to {} returned in {} ms", asked, took_ms));
  }
}

asio::awaitable<bool> check_sqs(asio::any_io_executor executor,
                                const tunnel::backend_options& backend,
                                const reach_options& options, report& out) {
  sqs_backend::settings settings;
  const auto& getenv = options.getenv;
  try {
    settings = sqs_backend::resolve_settings(backend, getenv);
  } catch (const tunnel::backend_config_error& e) {
    out.add(level::failed, "SQS settings", e.what(),
            "give --request-queue and --response-queue (FUNCIE_REQUEST_QUEUE_URL, "
            "FUNCIE_RESPONSE_QUEUE_URL) and a region (AWS_REGION or the profile's region)");
    co_return false;
  }
  out.add(level::ok, "SQS region",
          fmt::format("{}, endpoint {}, profile {}", settings.service.region,
                      settings.service.endpoint, settings.service.profile));
  // The FUNCIE_SQS_* tunables in effect (the CLI's or the function's, read at the edges).
  out.add(level::ok, "SQS settings", tunnel::describe(backend.sqs_tuning));
  if (settings.response_queue.empty()) {
    out.add(level::failed, "response queue", "none given",
            "give --response-queue URL (or FUNCIE_RESPONSE_QUEUE_URL): funcie connect needs it");
  }

  auto credentials = std::make_shared<aws::credential_provider>(executor, getenv);
  try {
    const auto found = co_await credentials->get();
    std::string detail = fmt::format("from {}", found.source);
    if (found.expires) {
      const auto left = std::chrono::duration_cast<std::chrono::minutes>(
          *found.expires - std::chrono::system_clock::now());
      detail += fmt::format(", temporary, expiring in {} min", left.count());
    }
    out.add(level::ok, "AWS credentials", std::move(detail));
  } catch (const aws::credentials_error& e) {
    // Its message lists the sources tried; it never holds a key.
    out.add(level::failed, "AWS credentials", e.what(),
            "log in (aws sso login --profile P, then AWS_PROFILE=P) or export "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (docs/sqs.md)");
    co_return false;
  }

  aws::sqs_client_options client_options;
  client_options.region = settings.service.region;
  client_options.endpoint = settings.service.endpoint;
  client_options.tls.ca_file = settings.ca_file;
  client_options.tls.verify = settings.tls_verify;
  client_options.attempt_timeout = options.timeout;
  client_options.max_attempts = 1;
  std::unique_ptr<aws::sqs_client> client;
  try {
    client = std::make_unique<aws::sqs_client>(executor, client_options, credentials);
  } catch (const std::exception& e) {
    out.add(level::failed, "SQS endpoint", e.what(),
            "check AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL and the profile's endpoint_url");
    co_return false;
  }

  bool all_ok = !settings.response_queue.empty();
  const std::pair<const char*, std::string> queues[] = {
      {"request queue", settings.request_queue}, {"response queue", settings.response_queue}};
  for (const auto& [what, url] : queues) {
    if (url.empty()) continue;
    std::string failure;
    aws::sqs_error::kind cause = aws::sqs_error::kind::transport;
    std::size_t max_size = 0;
    try {
      const std::vector<std::string> names{"MaximumMessageSize"};
      auto attributes = co_await client->get_queue_attributes(url, names);
      if (auto it = attributes.find("MaximumMessageSize"); it != attributes.end()) {
        max_size = static_cast<std::size_t>(std::strtoull(it->second.c_str(), nullptr, 10));
      }
    } catch (const aws::sqs_error& e) {
      failure = e.what();  // names the queue, never a key
      cause = e.cause();
    }
    if (failure.empty()) {
      out.add(
          level::ok, what,
          fmt::format("{} exists and answers{}", url,
                      max_size == 0 ? std::string()
                                    : fmt::format(" (messages up to {} KiB)", max_size / 1024)));
      continue;
    }
    all_ok = false;
    std::string fix;
    switch (cause) {
      case aws::sqs_error::kind::queue_missing:
        fix = fmt::format(
            "create the {} (docs/deploy.md, docs/sqs.md) or correct its URL and "
            "the region",
            what);
        break;
      case aws::sqs_error::kind::access_denied:
        fix =
            "your role or user needs sqs:SendMessage, sqs:ReceiveMessage, sqs:DeleteMessage, "
            "sqs:ChangeMessageVisibility and sqs:GetQueueAttributes on both queues, and "
            "sqs:TagQueue, sqs:UntagQueue and sqs:ListQueueTags on the request queue "
            "(docs/deploy/iam-developer-policy.json)";
        break;
      case aws::sqs_error::kind::credentials:
        fix = "your credentials were refused: refresh them (aws sso login) or check the keys";
        break;
      default:
        fix = "check the network path to SQS, AWS_ENDPOINT_URL_SQS and the region";
        break;
    }
    add_unreachable(out, options.from_function, what, failure, fix);
  }
  // Presence: forwarders read the request queue's tags, funcie connect sets its own
  // (docs/sqs.md, "Presence"). Without the permission it still works, less well: say so.
  if (all_ok) {
    std::string failure;
    std::size_t present = 0;
    try {
      const auto tags = co_await client->list_queue_tags(settings.request_queue);
      present = sqs_backend::read_presence(tags, settings.app, util::unix_ms_now(), settings.keys)
                    .until_ms != 0;
    } catch (const aws::sqs_error& e) {
      failure = e.what();
    }
    if (failure.empty()) {
      out.add(level::ok, "presence tags",
              present != 0
                  ? fmt::format("readable; a session of app {} is connected", settings.app)
                  : fmt::format("readable; no session of app {} is connected now", settings.app));
    } else {
      out.add(level::warning, "presence tags", failure,
              "functions need sqs:ListQueueTags on the request queue to know at no cost whether "
              "anyone is connected, and funcie connect sqs:TagQueue and sqs:UntagQueue "
              "(docs/deploy.md, \"IAM for the SQS backend\")");
    }
  }
  if (all_ok && !settings.response_queue.empty() && settings.receive_batch > 1) {
    co_await probe_held_receives(*client, settings, out);
  }
  co_return all_ok;
}

}  // namespace

asio::awaitable<bool> check_broker(asio::any_io_executor executor, tunnel::backend_options backend,
                                   reach_options options, report& out) {
  if (!options.getenv) options.getenv = [](const char* name) { return std::getenv(name); };
  if (is_sqs_url(backend.url)) co_return co_await check_sqs(executor, backend, options, out);
  co_return co_await check_redis(executor, backend, options, out);
}

asio::awaitable<void> check_consumers(asio::any_io_executor executor,
                                      tunnel::backend_options backend, report& out) {
  std::vector<tunnel::consumer_info> consumers;
  std::string failure;
  try {
    consumers = co_await tunnel::list_consumers(executor, backend);
  } catch (const std::exception& e) {
    failure = e.what();  // backend messages never hold a password
  }
  if (!failure.empty()) {
    out.add(level::warning, "consumers", fmt::format("cannot list them: {}", failure),
            "funcie status --backend URL --app NAME shows them once the broker answers");
    co_return;
  }
  if (consumers.empty()) {
    out.add(
        level::info, "consumers",
        fmt::format("nobody is connected to app {}: invocations run in the cloud", backend.app));
    co_return;
  }
  std::string list;
  for (const auto& c : consumers) {
    if (!list.empty()) list += ", ";
    list += fmt::format("{} on {} (pid {}, {} in flight)", c.session.substr(0, 8), c.host, c.pid,
                        c.in_flight);
  }
  out.add(level::info, "consumers",
          fmt::format("{} connected to app {}: {}", consumers.size(), backend.app, list));
}

}  // namespace funcie::doctor
