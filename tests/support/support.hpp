// Helpers that more than one test suite uses (tests/api, tests/pmr): a forked
// child whose stderr and wait status are collected, reading a pipe to its end,
// a pointer as text, alignment, sizes. No doctest here: each suite decides how
// a child that could not be started fails its test (support.hpp of each suite).
// No state; safe from any thread.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace test_support {

inline constexpr std::size_t KiB = 1024, MiB = 1024 * KiB;

inline bool is_aligned(const void* p, std::size_t alignment) noexcept {
  return reinterpret_cast<std::uintptr_t>(p) % alignment == 0;
}

// The debug flavour (the same tests with libpcmalloc-debug.so preloaded): the
// debug heap keeps the malloc contract but not the release core's layout and
// memory policy (class-sized blocks, realloc in place, freed memory reused or
// purged at once, one-line misuse reports), so the tests of those return at
// once under it (RELEASE_LIBRARY_ONLY expands to doctest's MESSAGE where used)
// or skip those checks.
bool debug_library();
#define RELEASE_LIBRARY_ONLY(why)                                   \
  do {                                                              \
    if (::test_support::debug_library()) {                              \
      MESSAGE("release library only (debug flavour): " why);        \
      return;                                                       \
    }                                                               \
  } while (0)

std::string pointer_text(const void* p);   // as printf's %p writes it

// All that `fd` yields until end of file or an error; reads a signal
// interrupted are retried.
std::string read_all(int fd);

struct child_result {
  bool exited = false;      // normal exit (then `status` is the exit code)
  int status = -1;
  bool signalled = false;   // killed by `signal`
  int signal = 0;
  std::string error_text;   // everything the child wrote on stderr
};
// Fork; the child restores default signal handling (doctest installs its own),
// writes no core file, sends stderr into a pipe, arms alarm(alarm_seconds) so a
// deadlock kills it, runs `body` and _exit(0)s. The parent collects stderr and
// the wait status. nullopt when no child was started (pipe or fork failed).
std::optional<child_result> run_in_child(const std::function<void()>& body, unsigned alarm_seconds);

}  // namespace test_support
