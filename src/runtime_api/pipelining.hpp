// A field of funcie's own Runtime API (docs/emulate.md, "How an invocation waits").
#pragma once

#include <string_view>

namespace funcie::runtime_api::header {

/// funcie's own Runtime API sets it ("1") on /next answers: it reads pipelined requests, so a
/// runtime may send its next GET /next right behind a result's POST, in one write. Lambda's
/// does not send it.
inline constexpr std::string_view pipelining = "Funcie-Pipelining";

}  // namespace funcie::runtime_api::header
