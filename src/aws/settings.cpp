#include "aws/settings.hpp"

#include "aws/http_client.hpp"
#include "aws/profile_files.hpp"

#include <cctype>
#include <optional>

namespace funcie::aws {
namespace {

const char* set_or_null(const getenv_fn& getenv, const char* name) {
  const char* value = getenv(name);
  return (value != nullptr && *value != '\0') ? value : nullptr;
}

const std::string* config_setting(const profile_files& files, const std::string& key) {
  auto it = files.config.find(key);
  return it == files.config.end() ? nullptr : &it->second;
}

bool is_region_name(std::string_view text) {
  if (text.empty() || text.size() > 64) return false;
  for (char c : text) {
    if (!std::islower(static_cast<unsigned char>(c)) &&
        !std::isdigit(static_cast<unsigned char>(c)) && c != '-') {
      return false;
    }
  }
  return true;
}

// A label such as "eu-west-1": two letters, words, a number.
bool looks_like_region(std::string_view label) {
  const auto last_dash = label.rfind('-');
  if (label.size() < 4 || label[2] != '-' || last_dash == std::string_view::npos ||
      last_dash + 1 == label.size() || !is_region_name(label)) {
    return false;
  }
  for (char c : label.substr(last_dash + 1)) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// The region in an AWS service URL: https://sqs.eu-west-1.amazonaws.com/…, the legacy
// https://eu-west-1.queue.amazonaws.com/…, a VPC endpoint's
// https://vpce-….sqs.eu-west-1.vpce.amazonaws.com/…; nullopt for any other host.
std::optional<std::string> region_of_url(std::string_view url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return std::nullopt;
  std::string_view host = url.substr(scheme_end + 3);
  host = host.substr(0, host.find_first_of("/:?#"));
  if (!host.ends_with(".amazonaws.com") && !host.ends_with(".amazonaws.com.cn")) {
    return std::nullopt;
  }
  std::size_t start = 0;
  while (start < host.size()) {
    auto end = host.find('.', start);
    if (end == std::string_view::npos) end = host.size();
    const std::string_view label = host.substr(start, end - start);
    if (looks_like_region(label)) return std::string(label);
    start = end + 1;
  }
  return std::nullopt;
}

std::string resolve_region(const getenv_fn& getenv, const profile_files& files,
                           std::string_view hint_url) {
  for (const char* name : {"AWS_REGION", "AWS_DEFAULT_REGION"}) {
    if (const char* value = set_or_null(getenv, name)) {
      if (!is_region_name(value)) {
        throw settings_error(std::string(name) + " is not a region name such as eu-west-1");
      }
      return value;
    }
  }
  if (const std::string* value = config_setting(files, "region"); value && !value->empty()) {
    if (!is_region_name(*value)) {
      throw settings_error("the region of profile " + files.profile + " in " + files.config_path +
                           " is not a region name such as eu-west-1");
    }
    return *value;
  }
  if (auto region = region_of_url(hint_url)) return *region;
  throw settings_error(
      "no AWS region: set AWS_REGION (for example AWS_REGION=eu-west-1), or `region` in " +
      files.describe() + ", or use a queue URL of the form https://sqs.REGION.amazonaws.com/…");
}

std::string endpoint_variable(std::string_view service) {
  std::string name = "AWS_ENDPOINT_URL_";
  for (char c : service) {
    name += (c == ' ' || c == '-') ? '_' : static_cast<char>(std::toupper(c));
  }
  return name;
}

// The configured endpoint URL and where it came from (for messages), or nullopt.
std::optional<std::pair<std::string, std::string>> configured_endpoint(const getenv_fn& getenv,
                                                                       const profile_files& files,
                                                                       std::string_view service) {
  const std::string service_variable = endpoint_variable(service);
  for (const std::string& name : {service_variable, std::string("AWS_ENDPOINT_URL")}) {
    if (const char* value = set_or_null(getenv, name.c_str())) {
      return std::pair{std::string(value), name};
    }
  }
  if (const std::string* services = config_setting(files, "services")) {
    auto section = files.config_sections.find("services " + *services);
    if (section != files.config_sections.end()) {
      auto entry = section->second.find(std::string(service));
      if (entry != section->second.end()) {
        std::string url = sub_property(entry->second, "endpoint_url");
        if (!url.empty()) {
          return std::pair{url, "[services " + *services + "] " + std::string(service) +
                                    " endpoint_url in " + files.config_path};
        }
      }
    }
  }
  if (const std::string* url = config_setting(files, "endpoint_url"); url && !url->empty()) {
    return std::pair{*url, "endpoint_url of profile " + files.profile + " in " + files.config_path};
  }
  return std::nullopt;
}

bool ignore_configured_endpoints(const getenv_fn& getenv, const profile_files& files) {
  if (const char* value = set_or_null(getenv, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")) {
    return is_true(value);
  }
  const std::string* value = config_setting(files, "ignore_configured_endpoint_urls");
  return value != nullptr && is_true(value->c_str());
}

std::string checked_endpoint(std::string url, const std::string& from) {
  try {
    parse_endpoint(url);
  } catch (const endpoint_error& e) {
    throw settings_error("the endpoint URL in " + from + " is not usable: " + e.what());
  }
  while (url.ends_with('/')) url.pop_back();
  return url;
}

}  // namespace

service_settings resolve_service(const getenv_fn& getenv, std::string_view service,
                                 std::string_view hint_url) {
  profile_files files;
  try {
    files = load_profile_files(getenv);
  } catch (const profile_file_error& e) {
    throw settings_error(e.what());
  }
  service_settings out;
  out.profile = files.profile;
  out.region = resolve_region(getenv, files, hint_url);
  if (!ignore_configured_endpoints(getenv, files)) {
    if (auto configured = configured_endpoint(getenv, files, service)) {
      out.endpoint = checked_endpoint(configured->first, configured->second);
      return out;
    }
  }
  const std::string_view suffix =
      out.region.starts_with("cn-") ? ".amazonaws.com.cn" : ".amazonaws.com";
  out.endpoint = "https://" + std::string(service) + "." + out.region + std::string(suffix);
  return out;
}

}  // namespace funcie::aws
