// Region and endpoint resolution as AWS SDKs do it, plus the profile's settings.
#pragma once

#include "aws/credentials.hpp"

#include <stdexcept>
#include <string>
#include <string_view>

namespace funcie::aws {

/// A setting is missing or malformed; the message says which and how to set it.
class settings_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct service_settings {
  std::string region;    ///< "eu-west-1"
  std::string endpoint;  ///< "https://sqs.eu-west-1.amazonaws.com" or "http://127.0.0.1:4566"
  std::string profile;   ///< The profile in use ("default" when AWS_PROFILE is unset)
};

/// Region: AWS_REGION, AWS_DEFAULT_REGION, the profile's `region` in the config file, else
/// the region in `hint_url` when it is an AWS service URL (https://sqs.REGION.amazonaws.com/…).
/// Endpoint, unless AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true: AWS_ENDPOINT_URL_<SERVICE>
/// (SQS: AWS_ENDPOINT_URL_SQS), AWS_ENDPOINT_URL, the profile's `services` section entry
/// `<service> = \n  endpoint_url = …`, the profile's `endpoint_url`; else
/// https://<service>.<region>.amazonaws.com (amazonaws.com.cn in cn-* regions).
/// `service` is lowercase ("sqs"). Throws settings_error (no region, bad endpoint URL).
service_settings resolve_service(const getenv_fn& getenv, std::string_view service,
                                 std::string_view hint_url = {});

}  // namespace funcie::aws
