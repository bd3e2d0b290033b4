#pragma once

// fmt 9 (Debian's libfmt-dev) defines its formatting engine, detail::vformat_to, in the
// header without declaring it `extern`, so every source file that formats anything compiled
// its own copy, with a local copy of the floating-point formatter (format_dragon, about 11 KB)
// that the linker cannot merge: 19 of them in funcie-cloud. Declared here, the one definition
// comes from libfmt.so (the developer's funcie, the tests, a Lambda author's build) or from
// src/cloud/fmt_spdlog.cpp (funcie-cloud). Included in every source file through the
// precompiled headers (src/CMakeLists.txt); a file without it compiles its own copy, as before.
#include <fmt/format.h>

FMT_BEGIN_NAMESPACE
namespace detail {
extern template void vformat_to(buffer<char>&, string_view,
                                basic_format_args<FMT_BUFFER_CONTEXT(char)>, locale_ref);
}  // namespace detail
FMT_END_NAMESPACE
