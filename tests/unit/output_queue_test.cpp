#include "console/output_queue.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

namespace asio = boost::asio;
using funcie::console::output_queue;
using namespace std::chrono_literals;

namespace {

/// stderr is the write end of a pipe for the test's lifetime (the queue writes only to the
/// process's stdout and stderr).
class stderr_into_pipe {
 public:
  stderr_into_pipe() {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    read_end = fds[0];
    saved_ = ::dup(STDERR_FILENO);
    ::dup2(fds[1], STDERR_FILENO);
    ::close(fds[1]);
  }
  ~stderr_into_pipe() {
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    ::close(read_end);
  }
  stderr_into_pipe(const stderr_into_pipe&) = delete;
  stderr_into_pipe& operator=(const stderr_into_pipe&) = delete;
  int read_end = -1;

 private:
  int saved_ = -1;
};

}  // namespace

TEST(OutputQueue, AReaderThatStopsNeverBlocksTheLoopAndNothingIsLost) {
  stderr_into_pipe pipe;
  const int flags_before = ::fcntl(STDERR_FILENO, F_GETFL);
  asio::io_context io;
  std::string expected;
  std::string got;
  {
    output_queue queue(io.get_executor(), 64 * 1024);
    // ~200 KB, more than the pipe (64 KiB) takes while nobody reads it.
    for (int i = 0; i < 20000; ++i) {
      std::string line = fmt::format("line {:05}\n", i);
      expected += line;
      queue.write(STDERR_FILENO, line);
    }
    // The loop goes on: a timer fires while the pipe is full.
    bool ticked = false;
    asio::steady_timer tick(io, 50ms);
    tick.async_wait([&](boost::system::error_code) { ticked = true; });
    io.run_for(300ms);
    EXPECT_TRUE(ticked);
    EXPECT_TRUE(queue.full()) << "the pipe took it all?";
    EXPECT_EQ(::fcntl(STDERR_FILENO, F_GETFL), flags_before)
        << "O_NONBLOCK went on our own descriptor, not on the shared one";

    // The reader comes back: everything arrives, in order.
    std::thread reader([&] {
      char buffer[65536];
      while (got.size() < expected.size()) {
        const ssize_t n = ::read(pipe.read_end, buffer, sizeof buffer);
        if (n <= 0) break;
        got.append(buffer, static_cast<std::size_t>(n));
      }
    });
    io.restart();
    auto room = asio::co_spawn(io, queue.room(), asio::use_future);
    auto drained = asio::co_spawn(io, queue.drained(), asio::use_future);
    while (drained.wait_for(0s) != std::future_status::ready) io.run_one_for(1s);
    room.get();
    EXPECT_FALSE(queue.full());
    reader.join();
  }
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected) << "out of order or changed";
}

TEST(OutputQueue, FlushWritesWhatIsLeftWithoutTheLoop) {
  stderr_into_pipe pipe;
  asio::io_context io;
  std::string got;
  std::thread reader([&] {
    char buffer[65536];
    while (got.size() < 300000) {
      const ssize_t n = ::read(pipe.read_end, buffer, sizeof buffer);
      if (n <= 0) break;
      got.append(buffer, static_cast<std::size_t>(n));
    }
  });
  {
    output_queue queue(io.get_executor());
    queue.write(STDERR_FILENO, std::string(300000, 'z'));
    // The loop never runs: the destructor writes it all.
  }
  reader.join();
  EXPECT_EQ(got, std::string(300000, 'z'));
}

TEST(OutputQueue, ARegularFileIsWrittenInPlaceNotOpenedAgain) {
  // Opened again, a file would get an offset of its own and overwrite what is there.
  const std::string path = testing::TempDir() + "output_queue_file.txt";
  const int file = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(file, 0);
  ASSERT_EQ(::write(file, "before\n", 7), 7);
  const int saved = ::dup(STDERR_FILENO);
  ::dup2(file, STDERR_FILENO);
  ::close(file);
  {
    asio::io_context io;
    output_queue queue(io.get_executor());
    queue.write(STDERR_FILENO, "one\n");
    queue.write(STDERR_FILENO, "two\n");
    auto drained = asio::co_spawn(io, queue.drained(), asio::use_future);
    while (drained.wait_for(0s) != std::future_status::ready) io.run_one_for(1s);
  }
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::ifstream in(path);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(all, "before\none\ntwo\n");
}
