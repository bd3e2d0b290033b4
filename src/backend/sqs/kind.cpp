// The SQS backend's kind (src/tunnel/registry.hpp): sqs://, the queues given apart.
#include "backend/sqs/sqs_backend.hpp"
#include "tunnel/registry.hpp"

namespace funcie::sqs_backend {

namespace {

void check_url(std::string_view url) {
  if (url.size() != 6) {
    throw tunnel::backend_config_error(
        "the SQS backend URL is just sqs://: the queues come from --request-queue and "
        "--response-queue (FUNCIE_REQUEST_QUEUE_URL, FUNCIE_RESPONSE_QUEUE_URL)");
  }
}

}  // namespace

const tunnel::backend_kind& kind() {
  static const tunnel::backend_kind sqs{
      .name = "SQS",
      .schemes = {"sqs"},
      .check_url = check_url,
      .make_forwarder =
          [](boost::asio::any_io_executor executor,
             const tunnel::backend_options& options) -> std::unique_ptr<tunnel::forwarder_backend> {
        return std::make_unique<sqs_forwarder_backend>(std::move(executor), options);
      },
      .make_session =
          [](boost::asio::any_io_executor executor,
             const tunnel::backend_options& options) -> std::unique_ptr<tunnel::consumer_session> {
        return std::make_unique<sqs_consumer_session>(std::move(executor), options);
      },
      .list_consumers = list_consumers,
  };
  return sqs;
}

}  // namespace funcie::sqs_backend
