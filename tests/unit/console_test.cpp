#include "console/console.hpp"
#include "../support/env.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

using namespace funcie::console;
using funcie::test::scoped_env;
using namespace std::chrono_literals;

namespace {

/// A FILE* that keeps what is written to it in memory.
class capture {
 public:
  capture() : file_(::open_memstream(&data_, &size_)) {}
  ~capture() {
    std::fclose(file_);
    std::free(data_);
  }
  capture(const capture&) = delete;
  capture& operator=(const capture&) = delete;

  std::FILE* file() const { return file_; }
  std::string text() {
    std::fflush(file_);
    return {data_, size_};
  }

 private:
  char* data_ = nullptr;
  std::size_t size_ = 0;
  std::FILE* file_;
};

std::string fixed_clock() {
  return "12:04:31.207";
}

invocation_line api_call() {
  invocation_line line;
  line.function = "orders";
  line.request_id = "3f2a9c1e-5b7d-4c1e-9f00-1234567890ab";
  line.what = {"API Gateway v2", "GET /orders/7"};
  line.took = 38ms;
  line.status = 200;
  return line;
}

invocation_line sqs_error() {
  invocation_line line;
  line.function = "orders";
  line.request_id = "8b01d77a-0000-4000-8000-000000000000";
  line.what = {"SQS", "3 records"};
  line.took = 4ms;
  line.result = outcome::error;
  line.error_type = "TypeError";
  line.error_message = "x is undefined\n    at Runtime.handler (/var/task/index.js:3:9)";
  return line;
}

/// "line 00042 ..." : 14 characters.
std::string fmt_line(int i) {
  char text[32];
  std::snprintf(text, sizeof text, "line %05d abc", i);
  return text;
}

/// What is left after removing the SGR codes the console writes itself.
std::string without_our_colours(std::string text) {
  for (const std::string code :
       {"\x1b[0m", "\x1b[2m", "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[2;33m"}) {
    for (auto at = text.find(code); at != std::string::npos; at = text.find(code)) {
      text.erase(at, code.size());
    }
  }
  return text;
}

}  // namespace

TEST(Console, InvocationLinesWithoutColour) {
  capture out;
  console c(out.file(), false, fixed_clock);
  c.invocation(api_call());
  c.invocation(sqs_error());
  invocation_line held = sqs_error();
  held.took = 120ms;
  held.result = outcome::held;
  held.note = "r or save to run again, 41.2 s left";
  c.invocation(held);
  EXPECT_EQ(out.text(),
            "12:04:31.207 orders 3f2a9c1e API Gateway v2 GET /orders/7     38ms ok 200\n"
            "12:04:31.207 orders 8b01d77a SQS 3 records                     4ms error "
            "TypeError: x is undefined\n"
            "12:04:31.207 orders 8b01d77a SQS 3 records                   120ms held TypeError: "
            "x is undefined\n"
            "               r or save to run again, 41.2 s left\n");
}

TEST(Console, InvocationLineWithColour) {
  capture out;
  console c(out.file(), true, fixed_clock);
  c.invocation(api_call());
  invocation_line failed = api_call();
  failed.result = outcome::error;
  failed.status = 502;
  failed.error_type = "Error";
  c.invocation(failed);
  invocation_line held = sqs_error();
  held.result = outcome::held;
  c.invocation(held);
  invocation_line late = sqs_error();
  late.result = outcome::timeout;
  late.error_type = "Sandbox.Timedout";
  late.error_message = "Task timed out after 3.00 seconds";
  late.took = 3000ms;
  late.status = 404;
  c.invocation(late);
  EXPECT_EQ(out.text(),
            "\x1b[2m12:04:31.207\x1b[0m orders 3f2a9c1e API Gateway v2 GET /orders/7     38ms "
            "\x1b[32mok\x1b[0m 200\n"
            "\x1b[2m12:04:31.207\x1b[0m orders 3f2a9c1e API Gateway v2 GET /orders/7     38ms "
            "\x1b[31merror\x1b[0m \x1b[31m502\x1b[0m Error\n"
            "\x1b[2m12:04:31.207\x1b[0m orders 8b01d77a SQS 3 records                     4ms "
            "\x1b[33mheld\x1b[0m TypeError: x is undefined\n"
            "\x1b[2m12:04:31.207\x1b[0m orders 8b01d77a SQS 3 records                   3.00s "
            "\x1b[31mtimeout\x1b[0m \x1b[33m404\x1b[0m Sandbox.Timedout: Task timed out after "
            "3.00 seconds\n");
}

TEST(Console, OneFunctionServedLeavesTheColumnOut) {
  capture out;
  console c(out.file(), false, fixed_clock);
  invocation_line line = api_call();
  line.function.clear();
  line.what = {"direct", ""};
  line.status = 0;
  c.invocation(line);
  line.request_id.clear();
  c.invocation(line);
  EXPECT_EQ(out.text(),
            "12:04:31.207 3f2a9c1e direct                           38ms ok\n"
            "12:04:31.207          direct                           38ms ok\n");
}

TEST(Console, FunctionNamesLineUp) {
  capture out;
  console c(out.file(), false, fixed_clock);
  c.align_functions(8);
  invocation_line line = api_call();
  line.what = {"S3", ""};
  line.status = 0;
  c.invocation(line);
  line.function = "payments";
  c.invocation(line);
  line.function = "a-rather-long-function-name-indeed";
  c.invocation(line);
  line.function = "orders";
  c.invocation(line);
  EXPECT_EQ(out.text(),
            "12:04:31.207 orders   3f2a9c1e S3                               38ms ok\n"
            "12:04:31.207 payments 3f2a9c1e S3                               38ms ok\n"
            "12:04:31.207 a-rather-long-f… 3f2a9c1e S3                               38ms ok\n"
            "12:04:31.207 orders           3f2a9c1e S3                               38ms ok\n");
}

TEST(Console, LongTriggersAndDurations) {
  capture out;
  console c(out.file(), false, fixed_clock);
  invocation_line line = api_call();
  line.function.clear();
  line.status = 0;
  line.what = {"API Gateway v1", "GET /" + std::string(80, 'p')};
  c.invocation(line);
  line.what = {"SQS", "1 record"};
  for (const auto took : {0ms, 999ms, 1234ms, 12345ms, 123456ms, 3'700'000ms, -5ms}) {
    line.took = took;
    c.invocation(line);
  }
  // The path loses its middle, the source stays whole.
  EXPECT_EQ(out.text(),
            "12:04:31.207 3f2a9c1e API Gateway v1 GET /ppppp…pppppppppp   38ms ok\n"
            "12:04:31.207 3f2a9c1e SQS 1 record                      0ms ok\n"
            "12:04:31.207 3f2a9c1e SQS 1 record                    999ms ok\n"
            "12:04:31.207 3f2a9c1e SQS 1 record                    1.23s ok\n"
            "12:04:31.207 3f2a9c1e SQS 1 record                    12.3s ok\n"
            "12:04:31.207 3f2a9c1e SQS 1 record                    2m03s ok\n"
            "12:04:31.207 3f2a9c1e SQS 1 record                    1h01m ok\n"
            "12:04:31.207 3f2a9c1e SQS 1 record                      0ms ok\n");
}

TEST(Console, HostileTextCannotReachTheTerminal) {
  for (const bool colour : {false, true}) {
    capture out;
    console c(out.file(), colour, [] { return std::string("12:00:00.000\x1b[2J"); });
    invocation_line line;
    line.function = "f\x1b[2J";
    line.request_id = "\x1b]0;pwned\x07";
    line.what = {"direct\x1b[31m",
                 "\x1b"
                 "c\r\n\xc2\x9b"
                 "1m"};
    line.result = outcome::error;
    line.error_type = "\x1b[5mBlink";
    line.error_message = "\x07\x1b[?1049h";
    line.note = "\x1b[8m";
    c.invocation(line);
    c.handler_output("app\x1b[1m#1", "\x1b]52;c;ZXZpbA==\x07\x1b[31mred\x1b[0m \x1b[K\x1b", true);
    c.info("f\x1b", "\x1b[H\x1b[2J");
    c.warn("f", "\x1b[6n");
    c.payload_block("\x1b[1mevent", "{\n  \"a\": \"\x1b[2J\"\n}\x1b");
    const std::string text = without_our_colours(out.text());
    EXPECT_EQ(text.find('\x1b'), std::string::npos) << text;
    EXPECT_EQ(text.find('\x07'), std::string::npos) << text;
    EXPECT_EQ(text.find('\r'), std::string::npos) << text;
    EXPECT_EQ(text.find("\xc2\x9b"), std::string::npos) << text;
  }
}

TEST(Console, HostileTextIsShownEscaped) {
  capture out;
  console c(out.file(), false, fixed_clock);
  invocation_line line;
  line.function = "f";
  line.request_id = "\x1b[2Jabcdef";
  line.what = {"direct", "\x1b[2J"};
  line.result = outcome::error;
  line.error_type = "E\x1b";
  line.error_message = "bad\tthing";
  c.invocation(line);
  EXPECT_EQ(out.text(),
            "12:04:31.207 f \\x1b[2Ja direct \\x1b[2J                    0ms error "
            "E\\x1b: bad\\tthing\n");
}

TEST(Console, HandlerOutputIsPrefixed) {
  capture out;
  console c(out.file(), false, fixed_clock);
  c.handler_output("app#1", "hello\n", false);
  c.handler_output("[app#2]", "oops\r\n", true);
  c.handler_output("app#1", "two\nlines", false);
  c.handler_output("app#1", "", false);
  c.handler_output("app#1", "\tindented\x1b[32m green\x1b[0m", false);
  c.handler_output("", "no prefix", false);
  EXPECT_EQ(out.text(),
            "[app#1] hello\n"
            "[app#2] oops\n"
            "[app#1] two\n"
            "[app#1] lines\n"
            "[app#1]\n"
            "[app#1] \tindented green\n"
            "no prefix\n");
}

TEST(Console, HandlerOutputWithColour) {
  capture out;
  console c(out.file(), true, fixed_clock);
  c.handler_output("app#1", "hello", false);
  c.handler_output("app#1", "oops", true);
  EXPECT_EQ(out.text(),
            "\x1b[2m[app#1]\x1b[0m hello\n"
            "\x1b[2;33m[app#1]\x1b[0m oops\n");
}

TEST(Console, Notices) {
  capture out;
  console c(out.file(), false, fixed_clock);
  c.info("orders", "reloaded: src/index.js changed");
  c.warn("orders", "3f2a9c1e has 2.0 s left before the cloud times it out");
  c.info("", "connected to app shop (pid 4242)");
  c.warn("", "two\nlines");
  EXPECT_EQ(out.text(),
            "12:04:31.207 orders • reloaded: src/index.js changed\n"
            "12:04:31.207 orders ▲ 3f2a9c1e has 2.0 s left before the cloud times it out\n"
            "12:04:31.207 • connected to app shop (pid 4242)\n"
            "12:04:31.207 ▲ two\\nlines\n");
}

TEST(Console, NoticesWithColour) {
  capture out;
  console c(out.file(), true, fixed_clock);
  c.info("orders", "reloaded");
  c.warn("orders", "late");
  EXPECT_EQ(out.text(),
            "\x1b[2m12:04:31.207\x1b[0m orders • reloaded\n"
            "\x1b[2m12:04:31.207\x1b[0m orders \x1b[33m▲ late\x1b[0m\n");
}

TEST(Console, PayloadBlocks) {
  capture out;
  console c(out.file(), false, fixed_clock);
  c.payload_block("event", pretty_payload(R"({"orderId":7,"items":[]})"));
  c.payload_block("response", "");
  EXPECT_EQ(out.text(),
            "             event\n"
            "               {\n"
            "                 \"orderId\": 7,\n"
            "                 \"items\": []\n"
            "               }\n"
            "             response\n"
            "               (empty)\n");
}

TEST(Console, PayloadBlockWithColour) {
  capture out;
  console c(out.file(), true, fixed_clock);
  c.payload_block("event", "42");
  EXPECT_EQ(out.text(),
            "             \x1b[2mevent\x1b[0m\n"
            "               42\n");
}

TEST(Console, EachLineOrBlockIsOneWrite) {
  std::vector<std::string> writes;
  cookie_io_functions_t io{};
  io.write = [](void* cookie, const char* data, std::size_t size) -> ssize_t {
    static_cast<std::vector<std::string>*>(cookie)->emplace_back(data, size);
    return static_cast<ssize_t>(size);
  };
  std::FILE* file = ::fopencookie(&writes, "w", io);
  ASSERT_NE(file, nullptr);
  {
    console c(file, true, fixed_clock);
    c.invocation(api_call());
    c.handler_output("app#1", "a\nb\n", false);
    c.info("orders", "reloaded");
    c.payload_block("event", "{\n  \"a\": 1\n}");
  }
  std::fclose(file);
  ASSERT_EQ(writes.size(), 4u);
  EXPECT_EQ(writes[1], "\x1b[2m[app#1]\x1b[0m a\n\x1b[2m[app#1]\x1b[0m b\n");
  for (const std::string& w : writes) EXPECT_TRUE(w.ends_with('\n')) << w;
}

TEST(Console, NullStreamWritesNothing) {
  console c(nullptr, false, fixed_clock);
  c.invocation(api_call());
  c.info("f", "x");
  SUCCEED();
}

TEST(Console, LocalTimeOfDay) {
  EXPECT_TRUE(std::regex_match(local_time_of_day(), std::regex(R"(\d\d:\d\d:\d\d\.\d\d\d)")))
      << local_time_of_day();
}

TEST(WantsColour, NotForAFileOrPipe) {
  scoped_env force("FORCE_COLOR", nullptr);
  scoped_env no("NO_COLOR", nullptr);
  capture out;
  EXPECT_FALSE(wants_colour(out.file()));
  EXPECT_FALSE(wants_colour(nullptr));
}

TEST(WantsColour, ForceColour) {
  scoped_env no("NO_COLOR", "1");
  capture out;
  {
    scoped_env force("FORCE_COLOR", "1");
    EXPECT_TRUE(wants_colour(out.file()));
  }
  {
    scoped_env force("FORCE_COLOR", "0");
    EXPECT_FALSE(wants_colour(out.file()));
  }
  {
    scoped_env force("FORCE_COLOR", "");
    EXPECT_FALSE(wants_colour(out.file()));
  }
}

TEST(WantsColour, ATerminal) {
  scoped_env force("FORCE_COLOR", nullptr);
  const int master = ::posix_openpt(O_RDWR | O_NOCTTY);
  if (master < 0 || ::grantpt(master) != 0 || ::unlockpt(master) != 0) {
    if (master >= 0) ::close(master);
    GTEST_SKIP() << "no pseudo-terminal here";
  }
  std::FILE* terminal = std::fopen(::ptsname(master), "w");
  ASSERT_NE(terminal, nullptr);
  {
    scoped_env no("NO_COLOR", nullptr);
    scoped_env term("TERM", "xterm-256color");
    EXPECT_TRUE(wants_colour(terminal));
  }
  {
    scoped_env no("NO_COLOR", "");
    scoped_env term("TERM", "xterm-256color");
    EXPECT_TRUE(wants_colour(terminal));
  }
  {
    scoped_env no("NO_COLOR", "1");
    scoped_env term("TERM", "xterm-256color");
    EXPECT_FALSE(wants_colour(terminal));
  }
  {
    scoped_env no("NO_COLOR", nullptr);
    scoped_env term("TERM", "dumb");
    EXPECT_FALSE(wants_colour(terminal));
  }
  std::fclose(terminal);
  ::close(master);
}

namespace {

/// A pseudo-terminal: the console writes to the slave, the test reads the master.
struct pty {
  int master = -1;
  int slave = -1;
  pty() {
    master = ::posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || ::grantpt(master) != 0 || ::unlockpt(master) != 0) return;
    slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY);
    // Raw: what is written arrives as it is, no "\n" -> "\r\n".
    termios raw{};
    if (slave >= 0 && ::tcgetattr(slave, &raw) == 0) {
      ::cfmakeraw(&raw);
      ::tcsetattr(slave, TCSANOW, &raw);
    }
  }
  ~pty() {
    if (slave >= 0) ::close(slave);
    if (master >= 0) ::close(master);
  }
  bool ok() const { return master >= 0 && slave >= 0; }
};

/// Every line of funcie connect's own (without our colours) fits in max_columns.
void expect_narrow(const std::string& text) {
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = without_our_colours(text.substr(start, end - start));
    EXPECT_LE(display_width(line), max_columns) << line;
    start = end + 1;
  }
}

}  // namespace

TEST(Console, OnATerminalEveryLineFitsIn100Columns) {
  for (const bool colour : {false, true}) {
    capture out;
    console c(out.file(), colour, fixed_clock, true);  // live: laid out for 100 columns
    invocation_line line = sqs_error();
    line.function = "a-very-long-function-name-that-goes-on";
    line.what = {"API Gateway v1", "POST /" + std::string(120, 'p') + "/orders"};
    line.took = 123456ms;
    line.result = outcome::held;
    line.status = 503;
    line.error_type = std::string(80, 'T');
    line.error_message = std::string(300, 'm') + " end";
    line.trace = {"    at " + std::string(200, 'f') + " (/var/task/index.js:3:9)", "    at b"};
    line.note = "save a watched file, press r or kill -USR1 41822 to run it again; " +
                std::string(150, 'n') + " 12.3 s left";
    c.invocation(line);
    c.invocation(api_call());
    c.warn("orders",
           "3f2a9c1e still running, 4.9 s before the cloud stops waiting for it: a handler "
           "paused in a debugger will be answered Funcie.Timeout (raise the function's timeout "
           "while debugging)");
    c.info("", std::string(400, 'i'));
    c.field("secret",
            "none: the broker can read events and forge answers (--secret-file; "
            "docs/security.md) and more words to make this wrap around once or twice");
    expect_narrow(out.text());
  }
}

TEST(Console, ErrorsShowTheirTraceUnderTheLine) {
  capture out;
  console c(out.file(), false, fixed_clock);
  invocation_line line = sqs_error();
  line.trace = {"    at Runtime.handler (file:///home/ada/orders/index.mjs:7:9)",
                "    at Runtime.handleOnceNonStreaming (file:///…/Runtime.js:74:25)"};
  line.note = "press r to run it again";
  c.invocation(line);
  EXPECT_EQ(out.text(),
            "12:04:31.207 orders 8b01d77a SQS 3 records                     4ms error "
            "TypeError: x is undefined\n"
            "                   at Runtime.handler (file:///home/ada/orders/index.mjs:7:9)\n"
            "                   at Runtime.handleOnceNonStreaming (file:///…/Runtime.js:74:25)\n"
            "               press r to run it again\n");
}

TEST(Console, StartBlockFields) {
  capture out;
  console c(out.file(), false, fixed_clock);
  c.field("watch", "src, index.mjs");
  c.field("secret", "none", true);
  EXPECT_EQ(out.text(),
            "  watch    src, index.mjs\n"
            "  secret   none\n");
}

TEST(Console, StatusLineOnlyOnALiveConsole) {
  {
    capture out;
    console c(out.file(), false, fixed_clock);
    c.status("held 8b01d77a 12 s left");
    c.info("", "x");
    EXPECT_EQ(out.text(), "12:04:31.207 • x\n");
  }
  capture out;
  {
    console c(out.file(), false, fixed_clock, true);
    c.status("held 8b01d77a 12 s left");
    c.info("", "x");
    c.status("held 8b01d77a 11 s left");
    c.status("");
  }
  EXPECT_EQ(out.text(),
            "held 8b01d77a 12 s left"
            "\r\x1b[2K12:04:31.207 • x\nheld 8b01d77a 12 s left"
            "\r\x1b[2Kheld 8b01d77a 11 s left"
            "\r\x1b[2K");
}

TEST(Console, NothingIsDroppedOnANonBlockingTerminal) {
  pty t;
  if (!t.ok()) GTEST_SKIP() << "no pseudo-terminal here";
  // As if something had set O_NONBLOCK on the terminal: writes fail short with EAGAIN.
  ::fcntl(t.slave, F_SETFL, ::fcntl(t.slave, F_GETFL) | O_NONBLOCK);
  std::FILE* file = ::fdopen(::dup(t.slave), "w");
  ASSERT_NE(file, nullptr);
  std::string read;
  std::thread reader([&] {
    char buffer[4096];
    while (read.size() < 20'000 * 15) {
      const ssize_t n = ::read(t.master, buffer, sizeof buffer);
      if (n <= 0) break;
      read.append(buffer, static_cast<std::size_t>(n));
      if (read.size() % 7 == 0) ::usleep(1000);  // a slow terminal now and then
    }
  });
  {
    console c(file, false, fixed_clock);
    for (int i = 0; i < 20'000; ++i) {
      c.handler_output("", fmt_line(i), false);
    }
  }
  reader.join();
  std::fclose(file);
  std::string expected;
  for (int i = 0; i < 20'000; ++i) expected += fmt_line(i) + "\n";
  EXPECT_EQ(read.size(), expected.size());
  EXPECT_TRUE(read == expected) << "lines lost or out of order";
}

TEST(Console, AHungUpTerminalIsReportedOnce) {
  pty t;
  if (!t.ok()) GTEST_SKIP() << "no pseudo-terminal here";
  std::FILE* file = ::fdopen(::dup(t.slave), "w");
  ASSERT_NE(file, nullptr);
  ::close(t.master);  // the terminal window closed
  t.master = -1;
  int gone = 0;
  {
    console c(file, false, fixed_clock);
    c.on_output_gone([&] { ++gone; });
    c.info("", "one");
    c.info("", "two");
  }
  std::fclose(file);
  EXPECT_EQ(gone, 1);
}

TEST(Console, ReportAsLambdaPrintsIt) {
  capture out;
  console c(out.file(), false, fixed_clock, true);
  report_line cold;
  cold.request_id = "8b01d77a-0000-4000-8000-000000000000";
  cold.duration = 38'120us;
  cold.memory_mb = 256;
  cold.max_memory_used_mb = 41;
  cold.init = 180'300us;
  c.report(cold);
  report_line warm;
  warm.request_id = "c41e0a2f";
  warm.duration = 200us;  // billed at 1 ms granularity, never less than 1 ms
  c.report(warm);
  EXPECT_EQ(out.text(),
            "               REPORT 8b01d77a  Duration: 38.12 ms  Billed Duration: 39 ms  Memory "
            "Size: 256 MB\n"
            "               Max Memory Used: 41 MB  Init Duration: 180.30 ms\n"
            "               REPORT c41e0a2f  Duration: 0.20 ms  Billed Duration: 1 ms  Memory "
            "Size: 128 MB\n");
}

TEST(Console, PipedEachEventIsOneLine) {
  capture out;
  console c(out.file(), false, fixed_clock);
  const std::string long_text = "a notice " + std::string(150, 'n') + " that goes on and on";
  c.warn("", long_text);
  invocation_line line = sqs_error();
  line.error_message = "x is undefined and " + std::string(120, 'm');
  c.invocation(line);
  report_line r;
  r.request_id = "8b01d77a";
  r.duration = 1000us;
  r.max_memory_used_mb = 41;
  r.init = 2000us;
  c.report(r);
  const std::string text = out.text();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3) << text;
  EXPECT_NE(text.find(long_text), std::string::npos);
  EXPECT_NE(text.find("TypeError: x is undefined and " + std::string(80, 'm')), std::string::npos);
}
