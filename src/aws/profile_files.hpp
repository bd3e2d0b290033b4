// The AWS shared config and credentials files as the AWS CLI and SDKs read them: which
// files (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/config and
// ~/.aws/credentials), which profile (AWS_PROFILE, else "default"), and its settings.
// Shared by the region/endpoint settings and the credential chain.
#pragma once

#include "aws/credentials.hpp"

#include <map>
#include <stdexcept>
#include <string>
#include <string_view>

namespace funcie::aws {

/// A file exists but cannot be read, or is not INI; the message names the file and line.
class profile_file_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One section's settings, name -> value. A value with sub-properties, such as
/// "sqs =\n  endpoint_url = http://…", holds its indented lines, one per line (see
/// sub_property).
using ini_section = std::map<std::string, std::string>;

struct profile_files {
  std::string profile;            ///< AWS_PROFILE, else "default"
  bool profile_from_env = false;  ///< AWS_PROFILE named it
  std::string config_path;        ///< Empty when neither AWS_CONFIG_FILE nor HOME is set
  std::string credentials_path;   ///< Empty when neither AWS_SHARED_CREDENTIALS_FILE nor HOME is
  /// The profile in the config file: "[profile NAME]" ("[default]" too for the default).
  ini_section config;
  bool in_config = false;
  /// The profile in the credentials file: "[NAME]".
  ini_section credentials;
  bool in_credentials = false;
  /// Every section of the config file by its name as written between the brackets, spaces
  /// normalized: "profile dev", "services local".
  std::map<std::string, ini_section> config_sections;

  /// The profile's setting, the credentials file's before the config file's; nullptr when
  /// neither has it.
  const std::string* find(const std::string& key) const;
  /// "/home/u/.aws/credentials and /home/u/.aws/config", for messages.
  std::string paths() const;
  /// "profile dev (~/.aws/config)"-like words for messages: the profile and where it was
  /// looked for.
  std::string describe() const;
};

/// Reads both files; a missing file is an empty one. Throws profile_file_error.
profile_files load_profile_files(const getenv_fn& getenv);

/// The sub-property `name` of a value with sub-properties ("endpoint_url" of the "sqs"
/// entry of a services section); empty when absent.
std::string sub_property(std::string_view value, std::string_view name);

/// True for "true" in any case, as the AWS CLI reads boolean settings.
bool is_true(const char* value);

}  // namespace funcie::aws
