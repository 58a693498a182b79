// Helpers of the pmr suite (support.hpp).
#include "support.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sys/wait.h>
#include <unistd.h>

namespace pmr_test {

void* recording_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
  void* p = upstream_->allocate(bytes, alignment);
  allocations_.push_back({bytes, alignment, p});
  live_bytes_ += bytes;
  return p;
}

void recording_resource::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
  live_bytes_ -= bytes;
  ++deallocations_;
  upstream_->deallocate(p, bytes, alignment);
}

namespace {
std::uint64_t word_at(std::uint64_t seed, std::size_t offset) noexcept {
  std::uint64_t x = seed * 0x9e3779b97f4a7c15ull + offset;
  x ^= x >> 29;
  return x * 0xbf58476d1ce4e5b9ull;
}

// Words at every 4 KiB that fit whole, then the bytes after the last of them
// up to 8 before the end, so no two writes overlap.
template <class Visit>
void for_each_stamp(std::size_t n, Visit visit) noexcept {
  std::size_t covered = 0;
  for (std::size_t offset = 0; offset + 8 <= n; offset += 4096) {
    visit(offset, 8);
    covered = offset + 8;
  }
  for (std::size_t offset = std::max(covered, n < 8 ? 0 : n - 8); offset < n; ++offset) visit(offset, 1);
}
}  // namespace

void stamp(void* p, std::size_t n, std::uint64_t seed) noexcept {
  auto* bytes = static_cast<unsigned char*>(p);
  for_each_stamp(n, [&](std::size_t offset, std::size_t width) {
    std::uint64_t w = word_at(seed, offset);
    std::memcpy(bytes + offset, &w, width);
  });
}

bool stamped(const void* p, std::size_t n, std::uint64_t seed) noexcept {
  auto* bytes = static_cast<const unsigned char*>(p);
  bool intact = true;
  for_each_stamp(n, [&](std::size_t offset, std::size_t width) {
    std::uint64_t w = word_at(seed, offset);
    if (std::memcmp(bytes + offset, &w, width) != 0) intact = false;
  });
  return intact;
}

std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * std::size_t(sysconf(_SC_PAGESIZE));
}

child_result run_in_child(const std::function<void()>& body, unsigned alarm_seconds) {
  return test_support::run_in_child(body, alarm_seconds).value_or(child_result{});
}

std::optional<pcm_stats> statistics_via_child(unsigned alarm_seconds) {
  int fds[2];
  if (pipe(fds) != 0) return std::nullopt;
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) return std::nullopt;
  if (pid == 0) {
    std::signal(SIGALRM, SIG_DFL);
    close(fds[0]);
    alarm(alarm_seconds);
    pcm_stats s;
    pcm_stats_get(&s);
    ssize_t written = write(fds[1], &s, sizeof s);
    _exit(written == ssize_t(sizeof s) ? 0 : 1);
  }
  close(fds[1]);
  pcm_stats s;
  std::size_t got = 0;
  for (;;) {
    ssize_t n = read(fds[0], reinterpret_cast<char*>(&s) + got, sizeof s - got);
    if (n > 0) got += std::size_t(n);
    else if (n == 0 || errno != EINTR || got == sizeof s) break;
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  if (got != sizeof s || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
  return s;
}

}  // namespace pmr_test
