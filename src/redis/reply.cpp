// hiredis's RESP reader, building funcie's reply tree (see reply.hpp).
#include "redis/reply.hpp"

#include <hiredis/read.h>

#include <algorithm>
#include <new>
#include <string>
#include <utility>

namespace funcie::redis {

namespace {

/// Elements reserved up front for an array (the count comes from the peer).
constexpr int max_reserved_elements = 1024;

// hiredis builds our reply tree directly (no redisReply to convert and free): a top-level
// object is allocated, a nested one lives in its parent's `elements`. hiredis only holds the
// pointer of an element while that element is being filled, before any later sibling is
// appended, so the vector may grow. Nothing here may throw into C: failures return nullptr,
// which the reader reports as an error.
void* attach(const redisReadTask* task, reply&& value) noexcept {
  try {
    if (task->parent != nullptr) {
      auto* parent = static_cast<reply*>(task->parent->obj);
      parent->elements.push_back(std::move(value));
      return &parent->elements.back();
    }
    return new reply(std::move(value));
  } catch (...) {
    return nullptr;
  }
}

void* create_string(const redisReadTask* task, char* str, std::size_t len) noexcept {
  try {
    reply r;
    r.type = task->type == REDIS_REPLY_ERROR    ? reply::kind::error
             : task->type == REDIS_REPLY_STATUS ? reply::kind::status
                                                : reply::kind::string;
    r.str.assign(str, len);
    return attach(task, std::move(r));
  } catch (...) {
    return nullptr;
  }
}

void* create_array(const redisReadTask* task, int elements) noexcept {
  try {
    reply r;
    r.type = reply::kind::array;
    r.elements.reserve(static_cast<std::size_t>(std::clamp(elements, 0, max_reserved_elements)));
    return attach(task, std::move(r));
  } catch (...) {
    return nullptr;
  }
}

void* create_integer(const redisReadTask* task, long long value) noexcept {
  reply r;
  r.type = reply::kind::integer;
  r.integer = value;
  return attach(task, std::move(r));
}

void* create_nil(const redisReadTask* task) noexcept {
  return attach(task, reply{});
}

void free_object(void* object) noexcept {
  delete static_cast<reply*>(object);  // hiredis frees top-level objects only
}

redisReplyObjectFunctions reply_functions = {create_string, create_array, create_integer,
                                             create_nil, free_object};

redisReader* make_reader() {
  redisReader* r = redisReaderCreateWithFunctions(&reply_functions);
  if (r == nullptr) throw std::bad_alloc();
  return r;
}

/// Bytes still missing of a bulk string the reader is in the middle of (0 when none): read
/// them at once rather than in read_chunk steps, so a 6 MB value is buffered by one growth.
std::size_t bulk_bytes_missing(const redisReader& r) {
  if (r.buf == nullptr || r.pos >= r.len) return 0;
  // hiredis consumes the type byte before it finds the bulk incomplete: the reader then
  // stands on the length digits of a string task. A '$' at pos is a bulk not started yet.
  std::size_t type_bytes = 0;
  if (r.buf[r.pos] == '$') {
    type_bytes = 1;
  } else if (r.ridx < 0 || r.rstack[r.ridx].type != REDIS_REPLY_STRING) {
    return 0;
  }
  const char* p = r.buf + r.pos;
  std::size_t available = r.len - r.pos;
  std::size_t i = type_bytes;
  unsigned long long length = 0;
  for (; i < available && i < 20 && p[i] >= '0' && p[i] <= '9'; ++i) {
    length = length * 10 + static_cast<unsigned long long>(p[i] - '0');
  }
  if (i == type_bytes || i + 1 >= available || p[i] != '\r' || p[i + 1] != '\n') return 0;
  unsigned long long total = i + 2 + length + 2;
  return total > available ? static_cast<std::size_t>(total - available) : 0;
}

}  // namespace

void reply_reader::deleter::operator()(redisReader* r) const noexcept {
  redisReaderFree(r);
}

reply_reader::reply_reader() : reader_(make_reader()) {}

reply_reader::~reply_reader() = default;

void reply_reader::feed(const char* data, std::size_t size) {
  if (redisReaderFeed(reader_.get(), data, size) != REDIS_OK) throw std::bad_alloc();
}

std::optional<reply> reply_reader::next() {
  void* raw = nullptr;
  if (redisReaderGetReply(reader_.get(), &raw) != REDIS_OK) {
    throw reply_error(std::string("the server sent bytes that are not RESP (") + reader_->errstr +
                      ")");
  }
  if (raw == nullptr) return std::nullopt;
  std::unique_ptr<reply> owned(static_cast<reply*>(raw));
  return std::move(*owned);
}

std::size_t reply_reader::missing_bulk_bytes() const {
  return bulk_bytes_missing(*reader_);
}

bool reply_reader::idle() const {
  return reader_->len == 0 && reader_->ridx == -1;
}

void reply_reader::reset() {
  reader_.reset(make_reader());
}

}  // namespace funcie::redis
