// Identifiers in the formats AWS uses, from a per-thread random generator.
#pragma once

#include <string>

namespace funcie::util {

/// A random UUID (version 4), lower-case: the shape of a Lambda request id.
std::string new_request_id();

/// An X-Ray trace header for a new trace: "Root=1-<8 hex time>-<24 hex>;Parent=<16 hex>;Sampled=0".
std::string new_trace_id();

/// `n` random lower-case hex digits.
std::string random_hex(std::size_t n);

}  // namespace funcie::util
