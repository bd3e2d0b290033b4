#include "aws/credentials.hpp"

#include "aws/http_client.hpp"
#include "aws/profile_files.hpp"
#include "process/child.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>
#include <variant>
#include <vector>

extern char** environ;

// Messages name the source and what was wrong with it, never a value it returned: the
// output of credential_process and the bodies of the metadata endpoints hold secrets.

namespace funcie::aws {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace asio::experimental::awaitable_operators;
using clock_type = std::chrono::system_clock;

/// Temporary credentials are replaced this long before they expire (as AWS SDKs do).
constexpr auto refresh_margin = std::chrono::minutes(5);
/// credential_process's stdout is a small JSON document; more is a broken command.
constexpr std::size_t max_process_output = 64 * 1024;

const char* set_or_null(const getenv_fn& getenv, const char* name) {
  const char* value = getenv(name);
  return (value != nullptr && *value != '\0') ? value : nullptr;
}

std::string seconds_text(std::chrono::milliseconds d) {
  std::ostringstream out;
  out << static_cast<double>(d.count()) / 1000.0 << " s";
  return out.str();
}

// ISO 8601 as AWS writes it: "2024-05-01T12:34:56Z", with optional fractions of a second
// and an offset ("+00:00") instead of Z.
std::optional<clock_type::time_point> parse_iso8601(const std::string& text) {
  std::tm tm{};
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6) {
    return std::nullopt;
  }
  std::string_view rest = std::string_view(text).substr(static_cast<std::size_t>(consumed));
  if (rest.starts_with('.')) {
    rest.remove_prefix(1);
    while (!rest.empty() && rest.front() >= '0' && rest.front() <= '9') rest.remove_prefix(1);
  }
  long offset = 0;
  if (rest == "Z" || rest == "z") {
    offset = 0;
  } else if (rest.size() >= 5 && (rest[0] == '+' || rest[0] == '-')) {
    int hours = 0, minutes = 0;
    const std::string zone(rest.substr(1));
    if (std::sscanf(zone.c_str(), "%2d:%2d", &hours, &minutes) != 2 &&
        std::sscanf(zone.c_str(), "%2d%2d", &hours, &minutes) != 2) {
      return std::nullopt;
    }
    offset = (rest[0] == '+' ? 1 : -1) * (hours * 3600L + minutes * 60L);
  } else {
    return std::nullopt;
  }
  if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31) return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const std::time_t t = timegm(&tm);
  return clock_type::from_time_t(t - offset);
}

std::string format_time(clock_type::time_point time) {
  const std::time_t t = clock_type::to_time_t(time);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buffer;
}

std::string string_field(const json::object& object, std::string_view name) {
  const json::value* value = object.if_contains(name);
  if (value == nullptr || !value->is_string()) return {};
  return std::string(value->get_string());
}

// The body of a source's answer as a JSON object; `who` names the source in messages.
json::object parse_object(std::string_view body, const std::string& who) {
  boost::system::error_code ec;
  json::value document = json::parse(body, ec);
  if (ec || !document.is_object()) {
    throw credentials_error(who +
                            " did not return a JSON object (output not shown: it may "
                            "hold secrets)");
  }
  return std::move(document.get_object());
}

// The credentials in the answer of credential_process (token field "SessionToken") or of
// the metadata endpoints ("Token").
credentials credentials_from(const json::object& object, std::string_view token_field,
                             const std::string& who, std::string source) {
  credentials out;
  out.access_key_id = string_field(object, "AccessKeyId");
  out.secret_access_key = string_field(object, "SecretAccessKey");
  out.session_token = string_field(object, token_field);
  out.source = std::move(source);
  if (out.access_key_id.empty() || out.secret_access_key.empty()) {
    throw credentials_error(who + " returned no AccessKeyId or no SecretAccessKey");
  }
  if (const std::string expiration = string_field(object, "Expiration"); !expiration.empty()) {
    out.expires = parse_iso8601(expiration);
    if (!out.expires) {
      throw credentials_error(who + " returned an Expiration that is not an ISO 8601 time");
    }
    if (*out.expires <= clock_type::now()) {
      throw credentials_error(who + " returned credentials that expired at " +
                              format_time(*out.expires));
    }
  }
  return out;
}

// ---- 1. environment ----

std::optional<credentials> from_environment(const getenv_fn& getenv,
                                            std::vector<std::string>& tried) {
  const char* key = set_or_null(getenv, "AWS_ACCESS_KEY_ID");
  const char* secret = set_or_null(getenv, "AWS_SECRET_ACCESS_KEY");
  if (key == nullptr && secret == nullptr) {
    tried.push_back("environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set");
    return std::nullopt;
  }
  if (key == nullptr || secret == nullptr) {
    throw credentials_error(
        std::string(key ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY") + " is set but " +
        (key ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID") +
        " is not: set both (and AWS_SESSION_TOKEN for temporary keys), or neither");
  }
  credentials out;
  out.access_key_id = key;
  out.secret_access_key = secret;
  if (const char* token = set_or_null(getenv, "AWS_SESSION_TOKEN")) out.session_token = token;
  out.source = "environment";
  return out;
}

// ---- 2. profile: static keys ----

// Settings of profiles that AWS SDKs turn into credentials and funcie does not.
constexpr const char* unsupported_settings[] = {"role_arn", "sso_session", "sso_start_url",
                                                "web_identity_token_file", "login_session"};

void refuse_unsupported(const profile_files& files) {
  if (files.find("credential_process") != nullptr) return;
  for (const char* setting : unsupported_settings) {
    if (files.find(setting) == nullptr) continue;
    throw credentials_error(
        "profile " + files.profile + " uses " + setting +
        ", which funcie cannot turn into credentials itself: add `credential_process = aws "
        "configure export-credentials --profile " +
        files.profile +
        " --format process` to a profile and use that one, or export the keys with `eval "
        "\"$(aws configure export-credentials --profile " +
        files.profile + " --format env)\"`");
  }
}

std::optional<credentials> from_profile_keys(const profile_files& files) {
  for (const auto* section : {&files.credentials, &files.config}) {
    auto key = section->find("aws_access_key_id");
    auto secret = section->find("aws_secret_access_key");
    if (key == section->end() && secret == section->end()) continue;
    const std::string& path =
        section == &files.credentials ? files.credentials_path : files.config_path;
    if (key == section->end() || secret == section->end() || key->second.empty() ||
        secret->second.empty()) {
      throw credentials_error("profile " + files.profile + " in " + path +
                              " needs both aws_access_key_id and aws_secret_access_key");
    }
    credentials out;
    out.access_key_id = key->second;
    out.secret_access_key = secret->second;
    if (auto token = section->find("aws_session_token"); token != section->end()) {
      out.session_token = token->second;
    }
    out.source = "profile " + files.profile + " (" + path + ")";
    return out;
  }
  return std::nullopt;
}

// ---- 2. profile: credential_process ----

std::vector<std::string> current_environment() {
  std::vector<std::string> out;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    out.emplace_back(*entry);
  }
  return out;
}

// Runs the command as the AWS CLI does on Unix (through /bin/sh, stdin /dev/null); its
// stderr goes to ours, so that a tool's own message ("run aws sso login") reaches the user.
asio::awaitable<credentials> run_credential_process(asio::any_io_executor executor,
                                                    const std::string& command,
                                                    const std::string& profile,
                                                    std::chrono::milliseconds timeout) {
  const std::string who = "credential_process of profile " + profile;
  struct captured {
    std::string out;
    bool too_long = false;
  };
  auto output = std::make_shared<captured>();
  process::child_options options;
  options.on_line = [output](int stream, std::string_view line) {
    if (stream == 2) {
      std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
      return;
    }
    if (output->out.size() + line.size() + 1 > max_process_output) {
      output->too_long = true;
      return;
    }
    output->out.append(line);
    output->out += '\n';
  };
  std::unique_ptr<process::child> proc;
  try {
    const std::vector<std::string> argv{"/bin/sh", "-c", command};
    proc =
        std::make_unique<process::child>(executor, argv, current_environment(), std::move(options));
  } catch (const process::spawn_error& e) {
    throw credentials_error(who + " could not be started: " + e.what());
  }
  asio::steady_timer timer(executor, timeout);
  auto ended = co_await (proc->wait() || timer.async_wait(asio::use_awaitable));
  if (ended.index() == 1) {
    proc.reset();  // kills its whole process group
    throw credentials_error(who + " did not finish within " + seconds_text(timeout) +
                            " (it was stopped); run it by hand to see where it waits");
  }
  const process::exit_status status = std::get<0>(ended);
  proc.reset();  // delivers what its pipes still hold
  if (status.code != 0 || status.signal != 0) {
    throw credentials_error(who + " failed (" + status.describe() +
                            "); its error output, if any, is above");
  }
  if (output->too_long) {
    throw credentials_error(who + " printed more than " + std::to_string(max_process_output) +
                            " bytes; it should print one small JSON object");
  }
  const json::object answer = parse_object(output->out, who);
  const json::value* version = answer.if_contains("Version");
  if (version == nullptr) throw credentials_error(who + " returned no \"Version\": 1");
  if (!(version->is_int64() && version->get_int64() == 1)) {
    throw credentials_error(who + " returned Version other than 1, the only one there is");
  }
  co_return credentials_from(answer, "SessionToken", who, who);
}

// ---- 3. container endpoint ----

struct url_parts {
  endpoint to;
  std::string target;
  std::string host;
};

// "http://host:port/path?query" -> the endpoint and the request target.
url_parts split_url(const std::string& url, const std::string& what) {
  const auto scheme_end = url.find("://");
  const auto path_start =
      scheme_end == std::string::npos ? scheme_end : url.find_first_of("/?", scheme_end + 3);
  url_parts out;
  try {
    out.to = parse_endpoint(url.substr(0, path_start));
  } catch (const endpoint_error& e) {
    throw credentials_error(what + " is not a usable URL: " + e.what());
  }
  out.target = path_start == std::string::npos ? "/" : url.substr(path_start);
  if (out.target.starts_with('?')) out.target.insert(0, "/");
  out.host = out.to.host;
  return out;
}

// AWS SDKs accept plain http only to the ECS and EKS agents' addresses and to loopback.
bool allowed_plain_host(const std::string& host) {
  if (host == "localhost" || host == "169.254.170.2" || host == "169.254.170.23") return true;
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) return false;
  if (address.is_loopback()) return true;
  return address.is_v6() && address == asio::ip::make_address("fd00:ec2::23");
}

std::string container_authorization(const getenv_fn& getenv) {
  std::string token;
  if (const char* file = set_or_null(getenv, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")) {
    // Read each time: EKS Pod Identity rotates the file.
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      throw credentials_error(std::string("cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE ") +
                              file);
    }
    std::ostringstream text;
    text << in.rdbuf();
    token = text.str();
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  } else if (const char* value = set_or_null(getenv, "AWS_CONTAINER_AUTHORIZATION_TOKEN")) {
    token = value;
  }
  if (token.find_first_of("\r\n") != std::string::npos) {
    throw credentials_error("the container authorization token holds a line break");
  }
  return token;
}

asio::awaitable<std::optional<credentials>> from_container(asio::any_io_executor executor,
                                                           const getenv_fn& getenv,
                                                           std::chrono::milliseconds timeout,
                                                           std::vector<std::string>& tried) {
  const char* relative = set_or_null(getenv, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  const char* full = set_or_null(getenv, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
  if (relative == nullptr && full == nullptr) {
    tried.push_back(
        "container endpoint: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and "
        "AWS_CONTAINER_CREDENTIALS_FULL_URI are not set");
    co_return std::nullopt;
  }
  const std::string variable =
      relative ? "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI" : "AWS_CONTAINER_CREDENTIALS_FULL_URI";
  const std::string url =
      relative ? std::string("http://169.254.170.2") + (relative[0] == '/' ? "" : "/") + relative
               : std::string(full);
  const url_parts parts = split_url(url, variable);
  if (!parts.to.tls && !allowed_plain_host(parts.host)) {
    throw credentials_error(variable + " uses plain http to " + parts.host +
                            ", which AWS SDKs allow only to loopback and the ECS/EKS agents' "
                            "addresses: use https");
  }
  const std::string who = "the container endpoint (" + variable + ", host " + parts.host + ")";
  http_request request;
  request.method = "GET";
  request.target = parts.target;
  request.headers.emplace_back("Accept", "application/json");
  if (std::string token = container_authorization(getenv); !token.empty()) {
    request.headers.emplace_back("Authorization", std::move(token));
  }
  http_client client(executor, tls_options{});
  http_response response;
  // One more attempt after a broken connection: the agent may be starting.
  for (int attempt = 1;; ++attempt) {
    try {
      response = co_await client.send(parts.to, request, timeout);
      break;
    } catch (const http_error& e) {
      if (attempt == 2) throw credentials_error(who + " did not answer: " + e.what());
    }
  }
  if (response.status != 200) {
    throw credentials_error(who + " answered HTTP " + std::to_string(response.status) +
                            (response.status == 401 || response.status == 403
                                 ? ": check AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)"
                                 : ""));
  }
  co_return credentials_from(parse_object(response.body, who), "Token", who, "container endpoint");
}

// ---- 4. instance metadata (IMDSv2) ----

asio::awaitable<std::optional<credentials>> from_instance_metadata(
    asio::any_io_executor executor, const getenv_fn& getenv, std::chrono::milliseconds timeout,
    std::vector<std::string>& tried) {
  if (is_true(getenv("AWS_EC2_METADATA_DISABLED"))) {
    tried.push_back("instance metadata: off (AWS_EC2_METADATA_DISABLED=true)");
    co_return std::nullopt;
  }
  std::string url = "http://169.254.169.254";
  if (const char* mode = set_or_null(getenv, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
      mode && std::string_view(mode) == "IPv6") {
    url = "http://[fd00:ec2::254]";
  }
  if (const char* set = set_or_null(getenv, "AWS_EC2_METADATA_SERVICE_ENDPOINT")) url = set;
  while (url.ends_with('/')) url.pop_back();
  const url_parts parts = split_url(url, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
  const std::string base = parts.target == "/" ? "" : parts.target;
  http_client client(executor, tls_options{});

  http_request token_request;
  token_request.method = "PUT";
  token_request.target = base + "/latest/api/token";
  token_request.headers.emplace_back("X-aws-ec2-metadata-token-ttl-seconds", "21600");
  http_response token;
  try {
    token = co_await client.send(parts.to, std::move(token_request), timeout);
  } catch (const http_error&) {
    tried.push_back("instance metadata: no answer from " + url + " within " +
                    seconds_text(timeout));
    co_return std::nullopt;
  }
  if (token.status != 200 || token.body.empty()) {
    tried.push_back("instance metadata: " + url + " gave no session token (HTTP " +
                    std::to_string(token.status) + "; IMDSv2 may be off)");
    co_return std::nullopt;
  }

  const std::string roles_path = base + "/latest/meta-data/iam/security-credentials/";
  auto get = [&](std::string target) -> asio::awaitable<http_response> {
    http_request request;
    request.method = "GET";
    request.target = std::move(target);
    request.headers.emplace_back("X-aws-ec2-metadata-token", token.body);
    try {
      co_return co_await client.send(parts.to, std::move(request), timeout);
    } catch (const http_error& e) {
      throw credentials_error("the instance metadata service (" + url +
                              ") stopped answering: " + e.what());
    }
  };
  const http_response roles = co_await get(roles_path);
  if (roles.status == 404) {
    tried.push_back(
        "instance metadata: the instance has no IAM role (attach an instance "
        "profile)");
    co_return std::nullopt;
  }
  std::string role = roles.body.substr(0, roles.body.find_first_of("\r\n"));
  if (roles.status != 200 || role.empty()) {
    throw credentials_error("the instance metadata service (" + url + ") answered HTTP " +
                            std::to_string(roles.status) + " for the instance's role");
  }
  const http_response keys = co_await get(roles_path + role);
  const std::string who = "the instance metadata service (" + url + ", role " + role + ")";
  if (keys.status != 200) {
    throw credentials_error(who + " answered HTTP " + std::to_string(keys.status));
  }
  const json::object answer = parse_object(keys.body, who);
  if (const std::string code = string_field(answer, "Code"); !code.empty() && code != "Success") {
    throw credentials_error(who + " answered Code " + code);
  }
  co_return credentials_from(answer, "Token", who, "instance metadata");
}

std::string nothing_found(const std::vector<std::string>& tried, const getenv_fn& getenv) {
  std::string message = "no AWS credentials found. Tried, in order:";
  for (std::size_t i = 0; i < tried.size(); ++i) {
    message += "\n  " + std::to_string(i + 1) + ". " + tried[i];
  }
  if (set_or_null(getenv, "AWS_WEB_IDENTITY_TOKEN_FILE") != nullptr) {
    message += "\n  (AWS_WEB_IDENTITY_TOKEN_FILE is set, but funcie does not use web identity)";
  }
  message +=
      "\nSet AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary "
      "keys), or AWS_PROFILE to a profile with keys or a credential_process (`aws configure` "
      "writes keys to ~/.aws/credentials)";
  return message;
}

}  // namespace

// ---- the chain, cached ----

struct credential_provider::state {
  asio::any_io_executor executor;
  getenv_fn getenv;
  credential_options options;
  std::optional<credentials> cached;
  clock_type::time_point resolved_at;

  // One walk of the chain that every get() meanwhile waits for: its timer never expires
  // and is cancelled when the walk ends.
  struct resolution {
    explicit resolution(asio::any_io_executor ex)
        : done(std::move(ex), asio::steady_timer::time_point::max()) {}
    asio::steady_timer done;
    bool finished = false;
    std::optional<credentials> result;
    std::exception_ptr error;
  };
  std::shared_ptr<resolution> in_flight;

  asio::awaitable<credentials> walk_chain() {
    std::vector<std::string> tried;
    if (auto found = from_environment(getenv, tried)) co_return *found;

    profile_files files;
    try {
      files = load_profile_files(getenv);
    } catch (const profile_file_error& e) {
      throw credentials_error(e.what());
    }
    refuse_unsupported(files);
    if (auto found = from_profile_keys(files)) co_return *found;
    if (const std::string* command = files.find("credential_process");
        command && !command->empty()) {
      co_return co_await run_credential_process(executor, *command, files.profile,
                                                options.process_timeout);
    }
    if (files.profile_from_env && !files.in_config && !files.in_credentials) {
      throw credentials_error("AWS_PROFILE is " + files.profile + ", but no such profile is in " +
                              files.paths() + ": check the name (`aws configure list-profiles`)");
    }
    tried.push_back(files.describe() + ": " +
                    (files.in_config || files.in_credentials
                         ? "has no aws_access_key_id/aws_secret_access_key or credential_process"
                         : "not found"));

    if (auto found = co_await from_container(executor, getenv, options.metadata_timeout, tried)) {
      co_return *found;
    }
    if (auto found =
            co_await from_instance_metadata(executor, getenv, options.metadata_timeout, tried)) {
      co_return *found;
    }
    throw credentials_error(nothing_found(tried, getenv));
  }
};

namespace {

bool still_valid(const credentials& c, clock_type::time_point now) {
  return !c.expires || *c.expires > now;
}

bool fresh(const credentials& c, clock_type::time_point now) {
  return !c.expires || *c.expires - now > refresh_margin;
}

asio::awaitable<void> resolve(std::shared_ptr<credential_provider::state> self,
                              std::shared_ptr<credential_provider::state::resolution> job) {
  try {
    credentials found = co_await self->walk_chain();
    self->cached = found;
    self->resolved_at = clock_type::now();
    job->result = std::move(found);
  } catch (const credentials_error& e) {
    // Keep signing with the old ones while they last (a metadata hiccup must not stop
    // requests that would still be accepted).
    if (self->cached && still_valid(*self->cached, clock_type::now())) {
      spdlog::warn("AWS credentials: refreshing failed ({}); using those from {} until {}",
                   e.what(), self->cached->source,
                   self->cached->expires ? format_time(*self->cached->expires) : "further notice");
      self->resolved_at = clock_type::now();
      job->result = self->cached;
    } else {
      job->error = std::current_exception();
    }
  } catch (...) {
    job->error = std::current_exception();
  }
  job->finished = true;
  if (self->in_flight == job) self->in_flight.reset();
  job->done.cancel();
}

}  // namespace

credential_provider::credential_provider(asio::any_io_executor executor, getenv_fn getenv)
    : credential_provider(std::move(executor), std::move(getenv), credential_options{}) {}

credential_provider::credential_provider(asio::any_io_executor executor, getenv_fn getenv,
                                         credential_options options)
    : state_(std::make_shared<state>()) {
  state_->executor = std::move(executor);
  state_->getenv = std::move(getenv);
  state_->options = options;
}

credential_provider::~credential_provider() = default;

asio::awaitable<credentials> credential_provider::get() {
  auto self = state_;
  const auto now = clock_type::now();
  if (self->cached && fresh(*self->cached, now)) co_return *self->cached;
  if (self->cached && still_valid(*self->cached, now) &&
      now - self->resolved_at < self->options.min_refresh_interval) {
    co_return *self->cached;
  }
  auto job = self->in_flight;
  if (!job) {
    job = std::make_shared<state::resolution>(self->executor);
    self->in_flight = job;
    // May run to its end at once (co_spawn dispatches): environment keys need no waiting.
    asio::co_spawn(self->executor, resolve(self, job), asio::detached);
  }
  if (!job->finished) {
    boost::system::error_code ec;
    co_await job->done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  if (!job->finished) throw boost::system::system_error(asio::error::operation_aborted);
  if (job->error) std::rethrow_exception(job->error);
  co_return *job->result;
}

}  // namespace funcie::aws
