#include "aws/sqs_json.hpp"

#include "console/trigger.hpp"

#include "crypto/crypto.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <exception>
#include <optional>

namespace funcie::aws::sqs_json {

namespace json = boost::json;

namespace {

constexpr std::size_t max_error_message_bytes = 300;
constexpr std::size_t max_error_code_bytes = 100;

// --- requests ---------------------------------------------------------------------------

std::string body_of(const json::object& o) {
  return json::serialize(o);
}

json::string text(std::string_view s) {
  return json::string(s);
}

// --- responses --------------------------------------------------------------------------

bool is_blank(std::string_view body) {
  return body.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

// The body as a JSON object; an empty (or blank) body is an empty object.
json::object parse_object(std::string_view body, std::string_view operation) {
  if (is_blank(body)) return {};
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) {
    throw parse_error("the " + std::string(operation) +
                      " response is not valid JSON: " + ec.message());
  }
  if (!v.is_object()) {
    throw parse_error("the " + std::string(operation) + " response is not a JSON object");
  }
  return std::move(v.as_object());
}

const json::value* field(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v == nullptr || v->is_null() ? nullptr : v;
}

std::string string_field(const json::object& o, std::string_view key, std::string_view where,
                         bool required) {
  const auto* v = field(o, key);
  if (v == nullptr) {
    if (required) throw parse_error("the " + std::string(where) + " has no " + std::string(key));
    return {};
  }
  if (!v->is_string()) {
    throw parse_error(std::string(key) + " in the " + std::string(where) + " is not a string");
  }
  return std::string(v->get_string());
}

// An attribute value as text: SQS sends strings; some servers send numbers or booleans.
std::optional<std::string> attribute_text(const json::value& v) {
  if (v.is_string()) return std::string(v.get_string());
  if (v.is_number() || v.is_bool()) return json::serialize(v);
  return std::nullopt;
}

std::map<std::string, std::string> attributes(const json::object& o, std::string_view where) {
  std::map<std::string, std::string> out;
  const auto* v = field(o, "Attributes");
  if (v == nullptr) return out;
  if (!v->is_object())
    throw parse_error("Attributes in the " + std::string(where) + " is not an object");
  for (const auto& [key, value] : v->get_object()) {
    if (value.is_null()) continue;
    auto s = attribute_text(value);
    if (!s) {
      throw parse_error("an attribute in the " + std::string(where) + " is not a string");
    }
    out.emplace(std::string(key), std::move(*s));
  }
  return out;
}

// A non-negative decimal attribute such as SentTimestamp; absent is 0.
std::int64_t count_attribute(const std::map<std::string, std::string>& attrs,
                             const std::string& name) {
  const auto it = attrs.find(name);
  if (it == attrs.end()) return 0;
  const auto& s = it->second;
  std::int64_t n = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || n < 0) {
    throw parse_error("the message attribute " + name + " is not a non-negative integer");
  }
  return n;
}

std::string md5_hex(std::string_view bytes) {
  const auto digest = crypto::md5(bytes);
  return crypto::to_hex(digest.data(), digest.size());
}

bool same_digest(std::string_view expected, std::string_view md5_hex_lower) {
  return std::equal(expected.begin(), expected.end(), md5_hex_lower.begin(), md5_hex_lower.end(),
                    [](char a, char b) {
                      if (a >= 'A' && a <= 'F') a = static_cast<char>(a - 'A' + 'a');
                      return a == b;
                    });
}

// --- errors -----------------------------------------------------------------------------

using kind = error_info::kind;

struct known_code {
  std::string_view code;
  kind type;
};

// Error codes of SQS (both the JSON protocol's __type names and the query protocol's codes that
// x-amzn-query-error carries, without their "AWS.SimpleQueueService." prefix) and the common
// errors every AWS service may answer.
constexpr known_code known_codes[] = {
    {"QueueDoesNotExist", kind::queue_missing},
    {"NonExistentQueue", kind::queue_missing},
    {"AccessDenied", kind::access_denied},
    {"AccessDeniedException", kind::access_denied},
    {"InvalidClientTokenId", kind::access_denied},
    {"SignatureDoesNotMatch", kind::access_denied},
    {"InvalidSignatureException", kind::access_denied},
    {"IncompleteSignature", kind::access_denied},
    {"UnrecognizedClient", kind::access_denied},
    {"UnrecognizedClientException", kind::access_denied},
    {"ExpiredToken", kind::access_denied},
    {"ExpiredTokenException", kind::access_denied},
    {"MissingAuthenticationToken", kind::access_denied},
    {"MissingAuthenticationTokenException", kind::access_denied},
    {"InvalidSecurity", kind::access_denied},
    {"RequestExpired", kind::access_denied},
    {"OptInRequired", kind::access_denied},
    {"KmsAccessDenied", kind::access_denied},
    {"KMS.AccessDeniedException", kind::access_denied},
    {"ThrottlingException", kind::throttled},
    {"Throttling", kind::throttled},
    {"ThrottledException", kind::throttled},
    {"RequestThrottled", kind::throttled},
    {"RequestThrottledException", kind::throttled},
    {"TooManyRequestsException", kind::throttled},
    {"RequestLimitExceeded", kind::throttled},
    {"SlowDown", kind::throttled},
    {"KmsThrottled", kind::throttled},
    {"KMS.ThrottlingException", kind::throttled},
    {"InternalError", kind::server},
    {"InternalFailure", kind::server},
    {"InternalServerError", kind::server},
    {"ServiceUnavailable", kind::server},
    {"ServiceUnavailableException", kind::server},
    {"RequestTimeout", kind::server},
    {"RequestTimeoutException", kind::server},
    {"InvalidParameterValue", kind::invalid},
    {"InvalidParameterCombination", kind::invalid},
    {"InvalidQueryParameter", kind::invalid},
    {"MalformedQueryString", kind::invalid},
    {"MissingParameter", kind::invalid},
    {"MissingAction", kind::invalid},
    {"InvalidAction", kind::invalid},
    {"UnknownOperationException", kind::invalid},
    {"SerializationException", kind::invalid},
    {"ValidationError", kind::invalid},
    {"ValidationException", kind::invalid},
    {"InvalidAddress", kind::invalid},
    {"InvalidAttributeName", kind::invalid},
    {"InvalidAttributeValue", kind::invalid},
    {"InvalidMessageContents", kind::invalid},
    {"InvalidIdFormat", kind::invalid},
    {"ReceiptHandleIsInvalid", kind::invalid},
    {"MessageNotInflight", kind::invalid},
    {"UnsupportedOperation", kind::invalid},
    {"QueueDeletedRecently", kind::invalid},
    {"PurgeQueueInProgress", kind::invalid},
    {"BatchEntryIdsNotDistinct", kind::invalid},
    {"BatchRequestTooLong", kind::invalid},
    {"EmptyBatchRequest", kind::invalid},
    {"InvalidBatchEntryId", kind::invalid},
    {"TooManyEntriesInBatchRequest", kind::invalid},
    {"RequestEntityTooLarge", kind::invalid},
    // The queue holds too many in-flight messages: waiting, not retrying at once, helps.
    {"OverLimit", kind::invalid},
    {"KmsDisabled", kind::invalid},
    {"KmsInvalidKeyUsage", kind::invalid},
    {"KmsInvalidState", kind::invalid},
    {"KmsNotFound", kind::invalid},
    {"KmsOptInRequired", kind::invalid},
    {"KMS.DisabledException", kind::invalid},
    {"KMS.InvalidKeyUsageException", kind::invalid},
    {"KMS.KMSInvalidStateException", kind::invalid},
    {"KMS.NotFoundException", kind::invalid},
    {"KMS.OptInRequired", kind::invalid},
};

std::optional<kind> kind_of_code(std::string_view code) {
  constexpr std::string_view query_prefix = "AWS.SimpleQueueService.";
  if (code.starts_with(query_prefix)) code.remove_prefix(query_prefix.size());
  for (const auto& k : known_codes) {
    if (k.code == code) return k.type;
  }
  return std::nullopt;
}

// "com.amazonaws.sqs#QueueDoesNotExist" -> "QueueDoesNotExist". Some services append
// ":http://internal..." to the name; that goes too.
std::string_view code_of_type(std::string_view type) {
  if (const auto hash = type.rfind('#'); hash != std::string_view::npos) {
    type.remove_prefix(hash + 1);
  }
  if (const auto colon = type.find(':'); colon != std::string_view::npos) {
    type = type.substr(0, colon);
  }
  return type;
}

// "AWS.SimpleQueueService.NonExistentQueue;Sender" -> "AWS.SimpleQueueService.NonExistentQueue".
std::string_view code_of_query_error(std::string_view header) {
  header = header.substr(0, header.find(';'));
  while (!header.empty() && (header.front() == ' ' || header.front() == '\t')) {
    header.remove_prefix(1);
  }
  while (!header.empty() && (header.back() == ' ' || header.back() == '\t')) {
    header.remove_suffix(1);
  }
  return header;
}

// Printable (no control bytes), one line, at most `max` bytes, never cut inside a character.
std::string clean(std::string_view text, std::size_t max) {
  std::string s = console::printable(text.substr(0, 4 * max), console::keep::nothing);
  if (s.size() > max) {
    std::size_t cut = max;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
    s.resize(cut);
  }
  return s;
}

// The text between <Tag> and </Tag>: the query protocol's XML errors, which some SQS
// servers still answer with.
std::string_view xml_element(std::string_view body, std::string_view tag) {
  const std::string open = "<" + std::string(tag) + ">";
  const std::string close = "</" + std::string(tag) + ">";
  const auto start = body.find(open);
  if (start == std::string_view::npos) return {};
  const auto from = start + open.size();
  const auto end = body.find(close, from);
  if (end == std::string_view::npos) return {};
  return body.substr(from, end - from);
}

struct body_error {
  std::string type;
  std::string message;
};

body_error read_error_body(std::string_view body) {
  body_error out;
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (!ec && v.is_object()) {
    const auto& o = v.get_object();
    auto str = [&o](std::string_view key) -> std::string {
      const auto* f = o.if_contains(key);
      return f != nullptr && f->is_string() ? std::string(f->get_string()) : std::string();
    };
    out.type = str("__type");
    if (out.type.empty()) out.type = str("code");
    out.message = str("message");
    if (out.message.empty()) out.message = str("Message");
    return out;
  }
  if (ec) {
    out.type = std::string(xml_element(body, "Code"));
    out.message = std::string(xml_element(body, "Message"));
  }
  return out;
}

}  // namespace

std::string target(std::string_view operation) {
  return "AmazonSQS." + std::string(operation);
}

std::string send_message(std::string_view queue_url, std::string_view body) {
  return body_of({{"QueueUrl", text(queue_url)}, {"MessageBody", text(body)}});
}

std::string receive_message(std::string_view queue_url, int max_messages, int wait_seconds,
                            int visibility_timeout) {
  const json::array names{"SentTimestamp", "ApproximateReceiveCount"};
  json::object o{
      {"QueueUrl", text(queue_url)},
      {"MaxNumberOfMessages", max_messages},
      {"WaitTimeSeconds", wait_seconds},
  };
  if (visibility_timeout >= 0) o["VisibilityTimeout"] = visibility_timeout;
  o["MessageSystemAttributeNames"] = names;
  // The older name of the same list, for servers that know only it.
  o["AttributeNames"] = names;
  return body_of(o);
}

std::string delete_message(std::string_view queue_url, std::string_view receipt_handle) {
  return body_of({{"QueueUrl", text(queue_url)}, {"ReceiptHandle", text(receipt_handle)}});
}

std::string change_message_visibility(std::string_view queue_url, std::string_view receipt_handle,
                                      int seconds) {
  return body_of({{"QueueUrl", text(queue_url)},
                  {"ReceiptHandle", text(receipt_handle)},
                  {"VisibilityTimeout", seconds}});
}

std::string get_queue_url(std::string_view queue_name, std::string_view owner_account) {
  json::object o{{"QueueName", text(queue_name)}};
  if (!owner_account.empty()) o["QueueOwnerAWSAccountId"] = text(owner_account);
  return body_of(o);
}

std::string get_queue_attributes(std::string_view queue_url,
                                 const std::vector<std::string>& names) {
  json::array list;
  for (const auto& n : names) list.emplace_back(text(n));
  return body_of({{"QueueUrl", text(queue_url)}, {"AttributeNames", std::move(list)}});
}

std::string send_message_batch(std::string_view queue_url, const std::vector<std::string>& bodies) {
  json::array entries;
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    entries.emplace_back(json::object{{"Id", std::to_string(i)}, {"MessageBody", text(bodies[i])}});
  }
  return body_of({{"QueueUrl", text(queue_url)}, {"Entries", std::move(entries)}});
}

std::string delete_message_batch(std::string_view queue_url,
                                 const std::vector<std::string>& receipt_handles) {
  json::array entries;
  for (std::size_t i = 0; i < receipt_handles.size(); ++i) {
    entries.emplace_back(
        json::object{{"Id", std::to_string(i)}, {"ReceiptHandle", text(receipt_handles[i])}});
  }
  return body_of({{"QueueUrl", text(queue_url)}, {"Entries", std::move(entries)}});
}

std::string change_message_visibility_batch(std::string_view queue_url,
                                            const std::vector<std::string>& receipt_handles,
                                            const std::vector<int>& seconds) {
  json::array entries;
  for (std::size_t i = 0; i < receipt_handles.size(); ++i) {
    entries.emplace_back(json::object{{"Id", std::to_string(i)},
                                      {"ReceiptHandle", text(receipt_handles[i])},
                                      {"VisibilityTimeout", seconds.at(i)}});
  }
  return body_of({{"QueueUrl", text(queue_url)}, {"Entries", std::move(entries)}});
}

std::string tag_queue(std::string_view queue_url, const std::map<std::string, std::string>& tags) {
  json::object list;
  for (const auto& [key, value] : tags) list[key] = text(value);
  return body_of({{"QueueUrl", text(queue_url)}, {"Tags", std::move(list)}});
}

std::string untag_queue(std::string_view queue_url, const std::vector<std::string>& keys) {
  json::array list;
  for (const auto& key : keys) list.emplace_back(text(key));
  return body_of({{"QueueUrl", text(queue_url)}, {"TagKeys", std::move(list)}});
}

std::string list_queue_tags(std::string_view queue_url) {
  return body_of({{"QueueUrl", text(queue_url)}});
}

std::string parse_send_message(std::string_view body) {
  const auto o = parse_object(body, "SendMessage");
  return string_field(o, "MessageId", "SendMessage response", true);
}

std::string parse_send_message(std::string_view body, std::string_view sent_body) {
  const auto o = parse_object(body, "SendMessage");
  auto id = string_field(o, "MessageId", "SendMessage response", true);
  const auto digest = string_field(o, "MD5OfMessageBody", "SendMessage response", false);
  if (!digest.empty() && !same_digest(digest, md5_hex(sent_body))) {
    throw parse_error(
        "the MD5 of the message SQS stored differs from the one sent: corrupted in "
        "transit");
  }
  return id;
}

std::vector<received_message> parse_receive_message(std::string_view body) {
  const auto o = parse_object(body, "ReceiveMessage");
  std::vector<received_message> out;
  const auto* list = field(o, "Messages");
  if (list == nullptr) return out;
  if (!list->is_array()) throw parse_error("Messages in the ReceiveMessage response is not a list");
  constexpr std::string_view where = "received message";
  for (const auto& item : list->get_array()) {
    if (!item.is_object()) {
      throw parse_error("a message in the ReceiveMessage response is not an object");
    }
    const auto& m = item.get_object();
    received_message r;
    r.message_id = string_field(m, "MessageId", where, true);
    r.receipt_handle = string_field(m, "ReceiptHandle", where, true);
    if (r.receipt_handle.empty())
      throw parse_error("a received message has an empty ReceiptHandle");
    r.body = string_field(m, "Body", where, false);
    const auto digest = string_field(m, "MD5OfBody", where, false);
    if (!digest.empty() && !same_digest(digest, md5_hex(r.body))) {
      throw parse_error(
          "a received message's body does not match its MD5OfBody: corrupted in "
          "transit");
    }
    const auto attrs = attributes(m, where);
    r.sent_timestamp_ms = count_attribute(attrs, "SentTimestamp");
    r.receive_count = count_attribute(attrs, "ApproximateReceiveCount");
    out.push_back(std::move(r));
  }
  return out;
}

std::string parse_get_queue_url(std::string_view body) {
  const auto o = parse_object(body, "GetQueueUrl");
  auto url = string_field(o, "QueueUrl", "GetQueueUrl response", true);
  if (url.empty()) throw parse_error("the GetQueueUrl response has an empty QueueUrl");
  return url;
}

std::map<std::string, std::string> parse_get_queue_attributes(std::string_view body) {
  return attributes(parse_object(body, "GetQueueAttributes"), "GetQueueAttributes response");
}

std::map<std::string, std::string> parse_list_queue_tags(std::string_view body) {
  const auto o = parse_object(body, "ListQueueTags");
  std::map<std::string, std::string> out;
  const auto* tags = field(o, "Tags");
  if (tags == nullptr) return out;
  if (!tags->is_object()) throw parse_error("Tags in the ListQueueTags response is not an object");
  for (const auto& [key, value] : tags->get_object()) {
    if (!value.is_string())
      throw parse_error("a tag in the ListQueueTags response is not a string");
    out.emplace(std::string(key), std::string(value.get_string()));
  }
  return out;
}

bool batch_result::all_ok() const {
  return std::all_of(failed.begin(), failed.end(), [](const auto& f) { return f.empty(); });
}

namespace {

// The index an entry's Id names; a parse_error when the request had no such entry.
std::size_t entry_index(const json::object& entry, std::size_t entries, std::string_view where) {
  const auto id = string_field(entry, "Id", where, true);
  std::size_t index = 0;
  const auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), index);
  if (id.empty() || ec != std::errc() || end != id.data() + id.size() || index >= entries) {
    throw parse_error("an entry of the " + std::string(where) + " names an Id the request had not");
  }
  return index;
}

// Successful and Failed of a batch answer; `check(index, entry)` looks at each success.
template <class Check>
batch_result parse_batch(std::string_view body, std::string_view operation, std::size_t entries,
                         Check&& check) {
  const auto o = parse_object(body, operation);
  // Appended rather than `std::string(operation) + " response"`, which GCC 12 misreads as
  // an out-of-bounds copy (-Warray-bounds) when compiled with the shared precompiled header.
  std::string where(operation);
  where += " response";
  batch_result out;
  out.failed.assign(entries, "not in the answer");
  auto list = [&](std::string_view key) -> const json::array* {
    const auto* v = field(o, key);
    if (v == nullptr) return nullptr;
    if (!v->is_array()) {
      throw parse_error(std::string(key) + " in the " + where + " is not a list");
    }
    return &v->get_array();
  };
  if (const auto* ok = list("Successful")) {
    for (const auto& item : *ok) {
      if (!item.is_object()) throw parse_error("an entry of the " + where + " is not an object");
      const auto index = entry_index(item.get_object(), entries, where);
      check(index, item.get_object());
      out.failed[index].clear();
    }
  }
  if (const auto* failed = list("Failed")) {
    for (const auto& item : *failed) {
      if (!item.is_object()) throw parse_error("an entry of the " + where + " is not an object");
      const auto& entry = item.get_object();
      const auto index = entry_index(entry, entries, where);
      const auto code = string_field(entry, "Code", where, false);
      const auto message = string_field(entry, "Message", where, false);
      out.failed[index] = clean(
          (code.empty() ? "failed" : code) + (message.empty() ? std::string() : ": " + message),
          max_error_message_bytes);
    }
  }
  return out;
}

}  // namespace

batch_result parse_send_message_batch(std::string_view body,
                                      const std::vector<std::string>& sent_bodies) {
  return parse_batch(body, "SendMessageBatch", sent_bodies.size(),
                     [&](std::size_t index, const json::object& entry) {
                       const auto digest =
                           string_field(entry, "MD5OfMessageBody", "SendMessageBatch entry", false);
                       if (!digest.empty() && !same_digest(digest, md5_hex(sent_bodies[index]))) {
                         throw parse_error(
                             "the MD5 of a message SQS stored differs from the one sent: "
                             "corrupted in transit");
                       }
                     });
}

batch_result parse_delete_message_batch(std::string_view body, std::size_t entries) {
  return parse_batch(body, "DeleteMessageBatch", entries, [](std::size_t, const json::object&) {});
}

batch_result parse_change_message_visibility_batch(std::string_view body, std::size_t entries) {
  return parse_batch(body, "ChangeMessageVisibilityBatch", entries,
                     [](std::size_t, const json::object&) {});
}

error_info parse_error_response(unsigned status, std::string_view body,
                                std::string_view query_error_header) {
  error_info info;
  try {
    const auto from_body = read_error_body(body);
    const auto type_code = code_of_type(from_body.type);
    const auto query_code = code_of_query_error(query_error_header);
    std::optional<kind> k;
    if (!query_code.empty()) k = kind_of_code(query_code);
    if (!k && !type_code.empty()) k = kind_of_code(type_code);
    if (!k) {
      if (status == 429) {
        k = kind::throttled;
      } else if (status >= 500 && status <= 599) {
        k = kind::server;
      } else if (status == 403) {
        k = kind::access_denied;
      }
    }
    info.type = k.value_or(kind::other);
    info.code = clean(query_code.empty() ? type_code : query_code, max_error_code_bytes);
    info.message = clean(from_body.message, max_error_message_bytes);
  } catch (const std::exception&) {
    // Only allocation can fail above; what was worked out so far is the answer.
  }
  return info;
}

}  // namespace funcie::aws::sqs_json
