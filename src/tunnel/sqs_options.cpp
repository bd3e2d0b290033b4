#include "tunnel/sqs_options.hpp"

#include "tunnel/backend.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <stdexcept>

namespace funcie::tunnel {

namespace {

struct option_spec {
  std::string_view name;
  std::int64_t min;
  std::int64_t max;
  std::string_view unit;
};

constexpr std::int64_t hour_ms = 3600 * 1000;

constexpr option_spec specs[] = {
    {"FUNCIE_SQS_CLAIM_MS", 100, 60000, "milliseconds"},
    {"FUNCIE_SQS_ABSENT_MS", 0, hour_ms, "milliseconds"},
    {"FUNCIE_SQS_PRESENCE_MS", 1000, hour_ms, "milliseconds"},
    {"FUNCIE_SQS_PRESENCE_IDLE_MS", 1000, 24 * hour_ms, "milliseconds"},
    {"FUNCIE_SQS_RECEIVE_BATCH", 1, 10, "messages"},
    {"FUNCIE_SQS_MAX_MESSAGE_BYTES", 0, static_cast<std::int64_t>(sqs_max_message_bytes), "bytes"},
};

std::string shown(std::string_view text) {
  std::string out(text.substr(0, 40));
  std::replace_if(
      out.begin(), out.end(), [](char c) { return static_cast<unsigned char>(c) < ' '; }, '?');
  return out + (text.size() > 40 ? "..." : "");
}

}  // namespace

void set_sqs_option(sqs_options& options, std::string_view name, std::string_view text) {
  const auto* spec = std::find_if(std::begin(specs), std::end(specs),
                                  [&](const option_spec& s) { return s.name == name; });
  if (spec == std::end(specs)) {
    throw std::out_of_range(fmt::format("{} is not an SQS setting", name));
  }
  if (text.empty()) return;
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < spec->min ||
      value > spec->max) {
    throw backend_config_error(
        fmt::format("{} must be a whole number of {} from {} to {}, not '{}'", name, spec->unit,
                    spec->min, spec->max, shown(text)));
  }
  using std::chrono::milliseconds;
  if (name == "FUNCIE_SQS_CLAIM_MS") {
    options.claim_window = milliseconds(value);
  } else if (name == "FUNCIE_SQS_ABSENT_MS") {
    options.absent_for = milliseconds(value);
  } else if (name == "FUNCIE_SQS_PRESENCE_MS") {
    options.presence_every = milliseconds(value);
  } else if (name == "FUNCIE_SQS_PRESENCE_IDLE_MS") {
    options.presence_idle_max = milliseconds(value);
  } else if (name == "FUNCIE_SQS_RECEIVE_BATCH") {
    options.receive_batch = static_cast<int>(value);
  } else {
    if (value != 0 && value < static_cast<std::int64_t>(sqs_min_message_bytes)) {
      throw backend_config_error(
          fmt::format("FUNCIE_SQS_MAX_MESSAGE_BYTES must be 0 (ask the queue) or at least {}, "
                      "not '{}'",
                      sqs_min_message_bytes, shown(text)));
    }
    options.max_message_bytes = static_cast<std::size_t>(value);
  }
}

sqs_options read_sqs_options(const std::function<const char*(const char*)>& getenv,
                             sqs_options base) {
  for (const auto& spec : specs) {
    const std::string name(spec.name);
    const char* value = getenv(name.c_str());
    if (value != nullptr) set_sqs_option(base, spec.name, value);
  }
  return base;
}

const std::vector<std::string_view>& sqs_option_names() {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> out;
    for (const auto& spec : specs) out.push_back(spec.name);
    return out;
  }();
  return names;
}

std::string sqs_option_key(std::string_view variable) {
  std::string key(variable.substr(std::string_view("FUNCIE_").size()));
  std::transform(key.begin(), key.end(), key.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return key;
}

std::string describe(const sqs_options& o) {
  return fmt::format(
      "claim window {} ms, absent after {} ms, presence every {} ms (idle up to {} ms), receive "
      "batch {}, message size {}",
      o.claim_window.count(), o.absent_for.count(), o.presence_every.count(),
      o.presence_idle_max.count(), o.receive_batch,
      o.max_message_bytes == 0 ? std::string("asked of the queue")
                               : fmt::format("{} bytes", o.max_message_bytes));
}

}  // namespace funcie::tunnel
