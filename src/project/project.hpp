// funcie.toml: a project's functions for `funcie connect` with no command. docs/local.md
// describes the file; load_project checks every key and value and names the file, line and
// key of the first problem.
#pragma once

#include "util/user_error.hpp"

#include "tunnel/backend.hpp"

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace funcie::project {

/// The file cannot be read, is not TOML, or has an unknown key or a bad value. what() is
/// "FILE:LINE:COLUMN: what is wrong; what to do" (no line when there is none).
class project_error : public util::user_error {
 public:
  using util::user_error::user_error;
};

/// One function to serve: from the command line, or one [functions.NAME] table with the
/// top-level keys as defaults.
struct function_spec {
  std::string name;                  ///< The table's NAME; the app for the command line.
  std::string app;                   ///< The tunnel (default: name).
  std::string backend;               ///< Broker URL.
  std::vector<std::string> command;  ///< CMD [ARGS...]; a TOML string runs as sh -c 'exec ...'.
  std::string directory;             ///< Working directory of CMD (absolute); empty: current.
  std::vector<std::string> watch;    ///< Paths to watch (absolute, must exist).
  std::map<std::string, std::string> environment;  ///< The handler's own variables.
  unsigned concurrency = 10;                       ///< 1..1000
  bool hold = false;
  bool forward_credentials = false;
  std::chrono::milliseconds heartbeat{3000};  ///< 300..300000 ms
  std::string ca_file;                        ///< rediss:// CA bundle (absolute), may be empty.
  bool tls_verify = true;
  std::string request_queue;   ///< sqs://: the request queue's URL; empty: the environment's.
  std::string response_queue;  ///< sqs://: the response queue's URL; empty: the environment's.
  std::string secret_file;     ///< The shared secret's file (absolute); empty: FUNCIE_SECRET.
  bool encrypt = true;         ///< false: tunnel messages signed, not encrypted.
  /// The invocations this session wants (docs/routing.md), each checked; empty: what no
  /// routed session wants.
  std::vector<std::string> routes;
  tunnel::sqs_options sqs;  ///< sqs://: the FUNCIE_SQS_* tunables (sqs_claim_ms, ...).
  /// The FUNCIE_SQS_* variables whose value the file or a flag gave: the rest come from the
  /// environment (cli::resolve_targets).
  std::set<std::string> sqs_given;
};

struct project {
  std::string path;                      ///< The file it came from (absolute).
  std::vector<function_spec> functions;  ///< In the file's order; at least one.
};

/// The backend options `spec` asks for, without a keyring: the one place a spec's fields
/// become a backend's options.
tunnel::backend_options unsealed_backend_options(const function_spec& spec);

/// The backend options `spec` asks for, with the keyring of its shared secret (read from
/// spec.secret_file, else FUNCIE_SECRET and FUNCIE_SECRET_PREVIOUS). Throws
/// tunnel::secret_error.
tunnel::backend_options backend_options_of(const function_spec& spec);

/// funcie.toml in `start` or its nearest parent that has one; nullopt when none has.
std::optional<std::string> find_project(const std::string& start);

/// Reads and checks `path`. Relative paths in the file are relative to the file's directory
/// (`dir`, `ca_file`) or to the function's `dir` (`watch`); all must exist.
project load_project(const std::string& path);

/// The same, from text (for tests and the fuzzer); `path` names it in errors and anchors
/// relative paths.
project parse_project(const std::string& text, const std::string& path);

}  // namespace funcie::project
