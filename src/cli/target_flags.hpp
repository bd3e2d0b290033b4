// The flags that say which tunnel a command talks to (broker, app, queues, TLS, secret, project
// file), shared by every command that takes one: connect, status, doctor. One precedence for
// each value: the flag, then funcie.toml (the function's own key, then the file's top level),
// then the FUNCIE_* variable; one error message per bad value. docs/targets.md is the design.
#pragma once

#include "project/project.hpp"
#include "tunnel/backend.hpp"

#include <CLI/CLI.hpp>

#include <array>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace funcie::cli {

/// Reads an environment variable; nullptr when unset (std::getenv's contract). Passed in, so
/// that the precedence is tested without touching the process's environment.
using getenv_fn = std::function<const char*(const char*)>;

/// The target flags as given. A new flag that names part of a target (a route, an SQS
/// setting) is one member here, one line in add_target_flags and one in apply_target_flags
/// (and its variable in resolve_targets; its backend option in
/// project::unsealed_backend_options).
struct target_flags {
  std::string backend;            ///< --backend
  std::string app;                ///< --app
  std::string request_queue;      ///< --request-queue
  std::string response_queue;     ///< --response-queue
  std::string ca_file;            ///< --ca-file
  bool tls_insecure = false;      ///< --tls-insecure
  std::string secret_file;        ///< --secret-file
  bool no_encrypt = false;        ///< --no-encrypt
  std::string config;             ///< --config, -c
  std::vector<std::string> only;  ///< --only (repeatable)
  /// --sqs-claim-ms ... --sqs-max-message-bytes, in tunnel::sqs_option_names()'s order; as
  /// given (checked by resolve_targets).
  std::array<std::string, 6> sqs;

  /// Set by add_target_flags: which of the options were given (a flag's default is not).
  CLI::App* parsed_by = nullptr;
  bool given(const char* flag) const;
};

/// Help texts a command words its own way (empty: the shared text).
struct target_help {
  std::string app;
  std::string secret_file;
  std::string config;
  std::string only;
};

/// Adds --backend, --request-queue, --response-queue, --app, --ca-file, --tls-insecure,
/// --secret-file, --no-encrypt, --config/-c and --only to `sub`.
void add_target_flags(CLI::App* sub, target_flags& flags, const target_help& help = {});

/// The project file the flags ask for, for a command that works on one app or on a project
/// (status, doctor): --config; else, with --only or without --app, funcie.toml in `cwd` or the
/// nearest parent that has one; else none (one app, from --app or FUNCIE_APP). Throws
/// usage_error for --only with no project file, and for --app beside --config or --only.
std::optional<std::string> project_for(const target_flags& flags, const std::string& cwd);

/// One target per function of the project at `project_path` (in the file's order, those of
/// --only alone), or, without a project, the one app of the flags. Each value by the one
/// precedence: the flag, then the project's, then the FUNCIE_* variable (FUNCIE_BACKEND,
/// FUNCIE_APP for one app, FUNCIE_REQUEST_QUEUE_URL, FUNCIE_RESPONSE_QUEUE_URL; the secret's
/// variables are read later, by backend_options_for; the FUNCIE_SQS_* tunables by the same
/// precedence, --sqs-claim-ms, then sqs_claim_ms, then FUNCIE_SQS_CLAIM_MS, and so on). A
/// flag's path is made absolute. A bad SQS tunable throws usage_error naming its flag or
/// variable.
/// Nothing is checked beyond --only's names: see check_target. Throws project::project_error
/// for a bad file, usage_error for an unknown --only name.
std::vector<project::function_spec> resolve_targets(const target_flags& flags,
                                                    const std::optional<std::string>& project_path,
                                                    const getenv_fn& getenv);

/// Applies the flags that were given to `spec` (and nothing else): what resolve_targets does
/// to each project function before the FUNCIE_* variables fill in.
void apply_target_flags(const target_flags& flags, project::function_spec& spec);

/// The backend options of `spec` (project::unsealed_backend_options), without a keyring: for
/// a caller that loads and reports it itself, as funcie doctor does.
tunnel::backend_options backend_options_for(const project::function_spec& spec);

/// The backend options of `spec`, with the keyring of its secret (spec.secret_file, else
/// FUNCIE_SECRET and FUNCIE_SECRET_PREVIOUS through `getenv`). Throws tunnel::secret_error.
tunnel::backend_options backend_options_for(const project::function_spec& spec,
                                            const getenv_fn& getenv);

/// The checks a target gets before any I/O, each with its one message: a broker and an app
/// given, a valid app name, a readable CA file, a usable secret, a well-formed backend URL and
/// options (for sqs://, its queues). Throws usage_error (or tunnel::backend_config_error, also
/// a user_error); returns the backend options on success.
tunnel::backend_options check_target(const project::function_spec& spec, const getenv_fn& getenv);

/// std::getenv, for the commands.
const char* process_getenv(const char* name);

}  // namespace funcie::cli
