// Helpers shared by the api suite (support.hpp).
#include "support.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "size_class.hpp"

extern char** environ;

namespace api_test {
namespace {

std::uint64_t word_at(std::uint64_t seed, std::size_t index) noexcept {
  return (seed ^ (std::uint64_t(index) * 0x9E3779B97F4A7C15ull)) + std::uint64_t(index);
}

// Byte i of the pattern, read as the word it belongs to would store it: the
// pattern for n bytes is a prefix of the pattern for any longer block (realloc).
unsigned char tail_byte(std::uint64_t seed, std::size_t i) noexcept {
  std::uint64_t word = word_at(seed, i / 8);
  unsigned char bytes[8];
  std::memcpy(bytes, &word, 8);
  return bytes[i % 8];
}

}  // namespace

void fill(void* p, std::size_t n, std::uint64_t seed) noexcept {
  auto* bytes = static_cast<unsigned char*>(p);
  std::size_t words = n / 8;
  for (std::size_t i = 0; i < words; ++i) {
    std::uint64_t v = word_at(seed, i);
    std::memcpy(bytes + 8 * i, &v, 8);
  }
  for (std::size_t i = words * 8; i < n; ++i) bytes[i] = tail_byte(seed, i);
}

std::size_t first_mismatch(const void* p, std::size_t n, std::uint64_t seed) noexcept {
  const auto* bytes = static_cast<const unsigned char*>(p);
  std::size_t words = n / 8;
  for (std::size_t i = 0; i < words; ++i) {
    std::uint64_t v;
    std::memcpy(&v, bytes + 8 * i, 8);
    if (v != word_at(seed, i)) {
      std::uint64_t want = word_at(seed, i);
      for (std::size_t b = 0; b < 8; ++b)
        if (std::memcmp(bytes + 8 * i + b, reinterpret_cast<const unsigned char*>(&want) + b, 1)) return 8 * i + b;
    }
  }
  for (std::size_t i = words * 8; i < n; ++i)
    if (bytes[i] != tail_byte(seed, i)) return i;
  return n;
}

bool all_bytes(const void* p, std::size_t n, unsigned char value) noexcept {
  const auto* bytes = static_cast<const unsigned char*>(p);
  std::uint64_t pattern = 0x0101010101010101ull * value;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t v;
    std::memcpy(&v, bytes + i, 8);
    if (v != pattern) return false;
  }
  for (; i < n; ++i)
    if (bytes[i] != value) return false;
  return true;
}

bool all_zero(const void* p, std::size_t n) noexcept { return all_bytes(p, n, 0); }

void touch_pages(void* p, std::size_t n) noexcept {
  auto* bytes = static_cast<volatile unsigned char*>(p);
  for (std::size_t i = 0; i < n; i += 4096) bytes[i] = 1;
  if (n) bytes[n - 1] = 1;
}

void check_block(void* p, std::size_t n, std::size_t alignment) {
  REQUIRE(p != nullptr);
  CHECK(pcm_owns(p) == 1);
  CHECK(is_aligned(p, alignment));
  CHECK(pcm_usable_size(p) >= n);
  CHECK(malloc_usable_size(p) == pcm_usable_size(p));
  auto seed = reinterpret_cast<std::uintptr_t>(p) ^ n;
  fill(p, n, seed);
  CHECK(intact(p, n, seed));
}

slab_tail::~slab_tail() {
  for (void* p : holders) free(p);
}

void find_slab_tail(slab_tail& out) {
  // A class whose slab ends in waste, and where only the slot past the last
  // object sits exactly `waste` bytes before a page boundary: then a block p
  // with p + size + waste on a page boundary is the slab's last object.
  unsigned chosen = 0;
  std::size_t waste = 0;
  for (unsigned cls = pcm::first_class; cls < pcm::first_class + pcm::small_class_count && !chosen; ++cls) {
    const auto& c = pcm::size_classes[cls];
    std::size_t bytes = std::size_t(c.slab_pages) * 4096, w = bytes - std::size_t(c.objects) * c.size;
    if (w < 16) continue;
    bool unique = true;
    for (std::size_t k = 1; k < c.objects; ++k) unique &= (k * c.size + w) % 4096 != 0;
    if (unique) { chosen = cls; waste = w; }
  }
  REQUIRE(chosen != 0);
  const auto& c = pcm::size_classes[chosen];
  out.object_size = c.size;
  for (std::size_t i = 0; i < 4 * std::size_t(c.objects) && !out.tail; ++i) {
    auto* p = static_cast<char*>(malloc(c.size));
    REQUIRE(p);
    out.holders.push_back(p);
    if ((reinterpret_cast<std::uintptr_t>(p) + c.size + waste) % 4096 == 0) out.tail = p + c.size;
  }
  REQUIRE(out.tail != nullptr);
}

std::size_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  REQUIRE(f != nullptr);
  unsigned long size = 0, resident = 0;
  int fields = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  REQUIRE(fields == 2);
  return std::size_t(resident) * std::size_t(sysconf(_SC_PAGESIZE));
}

child_result run_in_child(const std::function<void()>& body, unsigned alarm_seconds) {
  std::optional<child_result> result = test_support::run_in_child(body, alarm_seconds);
  REQUIRE(result.has_value());
  return *std::move(result);
}

spawn_result spawn_self(const char* mode, const std::vector<std::string>& extra_env) {
  std::vector<std::string> environment;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "PCMALLOC_CONF=", 14) && std::strncmp(*e, "GLIBC_TUNABLES=", 15)) environment.emplace_back(*e);
  environment.insert(environment.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> envp;
  for (auto& e : environment) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string program = "/proc/self/exe", argument = mode;
  char* argv[] = {program.data(), argument.data(), nullptr};

  int out[2], err[2];
  REQUIRE(pipe2(out, O_CLOEXEC) == 0);
  REQUIRE(pipe2(err, O_CLOEXEC) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, program.c_str(), &actions, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  close(err[1]);
  REQUIRE(rc == 0);
  spawn_result result;
  result.out = test_support::read_all(out[0]);   // the helper writes a few bytes: no risk of filling the other pipe
  result.err = test_support::read_all(err[0]);
  close(out[0]);
  close(err[0]);
  while (waitpid(pid, &result.wait_status, 0) < 0 && errno == EINTR) {}
  return result;
}

}  // namespace api_test
