// Redis replies (RESP2) and the reader that parses them from bytes: hiredis's RESP reader
// building our reply tree directly. Pure (no I/O), so the fuzzer links it alone: these are
// bytes from a server, and a server may be hostile or broken.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

struct redisReader;

namespace funcie::redis {

/// A reply as RESP2 gives it.
struct reply {
  enum class kind { string, status, error, integer, nil, array };
  kind type = kind::nil;
  std::string str;              ///< string, status, error
  long long integer = 0;        ///< integer
  std::vector<reply> elements;  ///< array

  bool is_nil() const { return type == kind::nil; }
  bool is_error() const { return type == kind::error; }
};

/// The bytes are not RESP; the message says what hiredis found (never the bytes).
class reply_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Parses a stream of RESP bytes into replies, fed in pieces of any size.
class reply_reader {
 public:
  reply_reader();
  ~reply_reader();
  reply_reader(const reply_reader&) = delete;
  reply_reader& operator=(const reply_reader&) = delete;

  /// Appends bytes. Throws std::bad_alloc.
  void feed(const char* data, std::size_t size);
  /// The next whole reply, or nullopt until more bytes come. Throws reply_error; the reader
  /// is unusable after that (the stream is out of step).
  std::optional<reply> next();
  /// Bytes still missing of a bulk string the reader is in the middle of (0 when none), so
  /// that a 6 MB value can be read in one step.
  std::size_t missing_bulk_bytes() const;
  /// Nothing buffered and no reply half-parsed.
  bool idle() const;
  /// Starts afresh (drops the buffer's capacity, which hiredis keeps until the next read).
  void reset();

 private:
  struct deleter {
    void operator()(redisReader* r) const noexcept;
  };
  std::unique_ptr<redisReader, deleter> reader_;
};

}  // namespace funcie::redis
