// The pieces of run_handler that funcie::start and `funcie wrap` share: the runtime loop
// with a hook asked before the handler (the forwarder), and the conversions between the
// handler API and Runtime API results.
#pragma once

#include "funcie/runtime/runtime.hpp"
#include "runtime/client.hpp"
#include "runtime_api/protocol.hpp"
#include "runtime_api/server.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <functional>
#include <optional>
#include <string>

namespace funcie::runtime {

/// Asked for each invocation before the handler runs: a result to post instead, or nullopt
/// to run the handler. Must not throw.
using invocation_hook = std::function<boost::asio::awaitable<std::optional<runtime_api::result>>(
    const runtime_api::invocation&)>;

/// Makes the hook on the loop's executor, once, before the first /next.
using hook_factory = std::function<invocation_hook(boost::asio::any_io_executor)>;

/// run_handler with a hook: the same loop, exits, messages and return value. `make_hook`
/// may be empty. Exceptions from `make_hook` propagate.
int run_loop(const handler_function& handler, const run_options& options,
             const hook_factory& make_hook);

/// The handler's view of an invocation (moves the payload).
invocation_request to_request(runtime_api::invocation invocation);

/// Calls the handler; whatever it throws becomes a failure typed by the exception.
invocation_response call_handler(const handler_function& handler,
                                 const invocation_request& request);

/// What to post for a handler's response: its payload, or the function error (also for a
/// payload larger than the Runtime API accepts).
runtime_api::result to_result(invocation_response response);

/// Sets _X_AMZN_TRACE_ID for the handler (unset when empty), without leaking.
void set_trace_env(const std::string& trace_id);

/// Posts `result` for `request_id`: a success as .../response, an error body as posted;
/// nothing for a result already `relayed`.
/// A result the Runtime API refuses with a 4xx is logged and dropped; anything else
/// throws client_error.
boost::asio::awaitable<void> post_result(client& api, const std::string& request_id,
                                         runtime_api::result result);

}  // namespace funcie::runtime
