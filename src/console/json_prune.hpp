#pragma once

// Parsing a large JSON document for a few of its values. `funcie connect` reads the trigger
// from each event and the status from each response (trigger.cpp); both are up to 6 MB,
// mostly one string (a body) that neither looks at. Building the whole document costs a
// copy of every string into freshly allocated memory; this parser checks the whole text
// exactly as boost::json::parse does (same parser, same options: a text it refuses is
// refused here, and the other way round) but keeps only what a rule asks for.

#include <boost/json.hpp>

#include <cstddef>
#include <optional>
#include <span>
#include <string_view>

namespace funcie::console {

/// What to keep of one JSON value. A value is always kept with its kind (string, object,
/// array, number, bool, null) and numbers, bools and nulls with their value; what a rule
/// leaves out of strings and containers reads as empty.
struct keep_rule {
  /// The member's name, for a rule in a parent's `members`.
  std::string_view key;
  /// A string keeps its characters (else it reads as "").
  bool text = false;
  /// An object keeps these members (each as its rule says) and leaves out the others.
  std::span<const keep_rule> members = {};
  /// An array keeps each element as this rule says; null: no element is kept (the pruned
  /// array reads as empty; pruned_json::root_size still counts a root array's elements).
  const keep_rule* elements = nullptr;
};

struct pruned_json {
  boost::json::value value;
  /// The number of elements (or members) of the root array (or object) in the text.
  std::size_t root_size = 0;
};

/// `bytes` parsed as one JSON value, pruned by `root`; nullopt when boost::json::parse with
/// `options` would refuse it. Throws only what allocation throws.
std::optional<pruned_json> parse_pruned(std::string_view bytes, const keep_rule& root,
                                        boost::json::storage_ptr storage,
                                        const boost::json::parse_options& options);

}  // namespace funcie::console
