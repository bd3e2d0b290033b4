#pragma once

// guess_trigger and response_status worked out from the whole parsed document, as they were
// before they learnt to keep only what they read (json_prune.hpp). For the tests and the
// fuzzer, which check that both ways give the same answer; funcie itself does not call these.
// They throw what allocation throws.

#include "console/trigger.hpp"

#include <string_view>

namespace funcie::console::reference {

trigger guess_trigger(std::string_view event);
int response_status(std::string_view body);

}  // namespace funcie::console::reference
