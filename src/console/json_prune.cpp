#include "console/json_prune.hpp"

#include <boost/json/basic_parser_impl.hpp>

#include <string>
#include <utility>
#include <vector>

namespace funcie::console {
namespace {

namespace json = boost::json;

/// Keys longer than this match no rule (the rules' keys are short names).
constexpr std::size_t max_rule_key = 64;

/// A basic_parser handler that builds the pruned value on a value_stack, as boost::json's
/// own parser builds the whole one. Values a rule leaves out are read by the parser (which
/// checks them) and never stored.
class pruning_handler {
 public:
  // The limits of boost::json's own handler, so that the same texts are refused.
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();

  pruning_handler(const keep_rule* root, json::storage_ptr storage) : root_(root) {
    stack_.reset(std::move(storage));
  }

  pruned_json release() { return {stack_.release(), root_size_}; }

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }

  bool on_object_begin(json::error_code&) { return open(false); }
  bool on_object_end(std::size_t n, json::error_code&) { return close(n); }
  bool on_array_begin(json::error_code&) { return open(true); }
  bool on_array_end(std::size_t n, json::error_code&) { return close(n); }

  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    if (skipping_ == 0) add_to_key(s);
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code&) {
    if (skipping_ > 0) return true;
    add_to_key(s);
    // Within no left-out value, the innermost open container is a kept object.
    next_ = nullptr;
    if (!key_too_long_) {
      for (const keep_rule& member : frames_.back().rule->members) {
        if (member.key == key_) {
          next_ = &member;
          break;
        }
      }
    }
    if (next_ != nullptr) stack_.push_key(key_);
    key_.clear();
    key_too_long_ = false;
    return true;
  }

  bool on_string_part(json::string_view s, std::size_t, json::error_code&) {
    if (const keep_rule* rule = rule_of_value(); rule != nullptr && rule->text) {
      stack_.push_chars(s);
    }
    return true;
  }
  bool on_string(json::string_view s, std::size_t, json::error_code&) {
    if (const keep_rule* rule = rule_of_value()) {
      stack_.push_string(rule->text ? s : json::string_view());
      kept_one();
    }
    return true;
  }

  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(std::int64_t i, json::string_view, json::error_code&) {
    if (rule_of_value() != nullptr) {
      stack_.push_int64(i);
      kept_one();
    }
    return true;
  }
  bool on_uint64(std::uint64_t u, json::string_view, json::error_code&) {
    if (rule_of_value() != nullptr) {
      stack_.push_uint64(u);
      kept_one();
    }
    return true;
  }
  bool on_double(double d, json::string_view, json::error_code&) {
    if (rule_of_value() != nullptr) {
      stack_.push_double(d);
      kept_one();
    }
    return true;
  }
  bool on_bool(bool b, json::error_code&) {
    if (rule_of_value() != nullptr) {
      stack_.push_bool(b);
      kept_one();
    }
    return true;
  }
  bool on_null(json::error_code&) {
    if (rule_of_value() != nullptr) {
      stack_.push_null();
      kept_one();
    }
    return true;
  }

  // Comments are not allowed by the options used; the parser never calls these.
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

 private:
  struct frame {
    const keep_rule* rule;
    bool array;
    std::size_t kept;  // values (or key and value pairs) on the stack for this container
  };

  /// The rule of the value that starts or ends now; null when it is left out.
  const keep_rule* rule_of_value() const {
    if (skipping_ > 0) return nullptr;
    if (frames_.empty()) return root_;
    const frame& top = frames_.back();
    return top.array ? top.rule->elements : next_;
  }

  bool open(bool array) {
    if (skipping_ > 0) {
      ++skipping_;
    } else if (const keep_rule* rule = rule_of_value()) {
      frames_.push_back({rule, array, 0});
    } else {
      skipping_ = 1;
    }
    return true;
  }

  bool close(std::size_t n) {
    if (skipping_ > 0) {
      --skipping_;
      return true;
    }
    const frame done = frames_.back();
    frames_.pop_back();
    if (done.array) {
      stack_.push_array(done.kept);
    } else {
      stack_.push_object(done.kept);
    }
    if (frames_.empty()) root_size_ = n;
    kept_one();
    return true;
  }

  void kept_one() {
    if (!frames_.empty()) ++frames_.back().kept;
  }

  void add_to_key(json::string_view s) {
    if (key_too_long_ || key_.size() + s.size() > max_rule_key) {
      key_too_long_ = true;
      key_.clear();
      return;
    }
    key_.append(s.data(), s.size());
  }

  const keep_rule* root_;
  json::value_stack stack_;
  std::vector<frame> frames_;
  std::size_t skipping_ = 0;         // containers open inside a left-out value
  const keep_rule* next_ = nullptr;  // the rule of the value after the last key
  std::string key_;
  bool key_too_long_ = false;
  std::size_t root_size_ = 0;
};

}  // namespace

std::optional<pruned_json> parse_pruned(std::string_view bytes, const keep_rule& root,
                                        json::storage_ptr storage,
                                        const json::parse_options& options) {
  json::basic_parser<pruning_handler> parser(options, &root, std::move(storage));
  json::error_code ec;
  // As json::parse: the whole text at once, nothing after the value but blanks.
  const std::size_t used = parser.write_some(false, bytes.data(), bytes.size(), ec);
  if (ec || used < bytes.size() || !parser.done()) return std::nullopt;
  return parser.handler().release();
}

}  // namespace funcie::console
