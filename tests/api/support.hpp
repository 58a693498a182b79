// Helpers shared by the api suite: patterned fills, values hidden from the
// optimiser (so deliberate misuse stays a real call), child processes for
// misuse, fork and configuration tests. No state; safe from any thread.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <malloc.h>
#include <stdlib.h>
#include <string>
#include <vector>

#include <pcmalloc/pcmalloc.h>

#include "support/support.hpp"

// Exported by libpcmalloc.so; glibc 2.36's headers do not declare them.
extern "C" void free_sized(void* p, size_t size) noexcept;
extern "C" void free_aligned_sized(void* p, size_t alignment, size_t size) noexcept;
extern "C" void cfree(void* p) noexcept;
// glibc's own allocator, reachable beside ours: the source of foreign heap pointers.
extern "C" void* __libc_malloc(size_t size) noexcept;
extern "C" void __libc_free(void* p) noexcept;

namespace api_test {

// Shared with tests/pmr (tests/support/support.hpp).
using test_support::debug_library, test_support::KiB, test_support::MiB, test_support::is_aligned, test_support::pointer_text,
    test_support::child_result;

// The value passes through an empty asm: no constant folding of malloc(SIZE_MAX),
// no -Wfree-nonheap-object on free(&local), no elided malloc/free pairs.
template <class T>
[[gnu::always_inline]] inline T opaque(T value) {
  asm volatile("" : "+r"(value));
  return value;
}

// A reproducible pattern that depends on the seed and each byte's offset.
void fill(void* p, std::size_t n, std::uint64_t seed) noexcept;
// Offset of the first byte that differs from fill(p, n, seed), or n when intact.
std::size_t first_mismatch(const void* p, std::size_t n, std::uint64_t seed) noexcept;
inline bool intact(const void* p, std::size_t n, std::uint64_t seed) noexcept { return first_mismatch(p, n, seed) == n; }
bool all_zero(const void* p, std::size_t n) noexcept;
bool all_bytes(const void* p, std::size_t n, unsigned char value) noexcept;
// Write one byte per page and the last byte: commits every page cheaply.
void touch_pages(void* p, std::size_t n) noexcept;

// Doctest checks every successful allocation must pass: non-null, ours, aligned,
// usable size >= n, all n bytes writable and readable back.
void check_block(void* p, std::size_t n, std::size_t alignment = 16);

// A pointer into a small slab's tail waste, at the place the object after the
// slab's last one would start: inside our memory and at a multiple of the class
// size from the slab start, yet not a block. `holders` keep the slab alive.
struct slab_tail {
  char* tail = nullptr;
  std::size_t object_size = 0;
  std::vector<void*> holders;
  ~slab_tail();
};
void find_slab_tail(slab_tail& out);

std::size_t resident_bytes();        // RSS from /proc/self/statm

// test_support::run_in_child (fork, collect stderr and the wait status) with a
// 30 s alarm by default; a child that cannot be started fails the test case (REQUIRE).
child_result run_in_child(const std::function<void()>& body, unsigned alarm_seconds = 30);

struct spawn_result {
  int wait_status = -1;
  std::string out, err;
};
// Re-run this test binary as `/proc/self/exe <mode>` (see main.cpp) with this
// process's environment minus PCMALLOC_CONF and GLIBC_TUNABLES, plus `extra_env`.
spawn_result spawn_self(const char* mode, const std::vector<std::string>& extra_env);

// The --child=huge-limit mode (huge_reuse_test.cpp).
int huge_limit_child();
// The --child=purge-order mode (reuse_test.cpp).
int purge_order_child();
// The --child=explicit-arena-two-cpus mode (threads_test.cpp; hidden_cpus.sh).
int explicit_arena_two_cpus_child();

}  // namespace api_test
