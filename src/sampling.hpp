// Sampling in the release library: the one switch the allocating fast paths
// test, and the two per-thread countdowns under it. The heap profiler
// (src/profile, bytes between samples) and guarded sampling (src/guard,
// allocations between guarded blocks) each own a countdown; while sampling is
// on, every allocation charges both, and the one test `due` sends the
// allocation to the slow path here when either has run out, where the kind of
// sample is decided. A countdown whose sampler is off is set so that it never
// runs out (`never`). Off, the fast path pays one load and one well-predicted
// branch; on, a jump to this file's entry points and the countdowns.
// Synchronisation: `enabled` is written once, at start-up, before other
// threads exist; the countdowns are per thread.
#pragma once
#include <cstddef>
#include <cstdint>

#include "heap.hpp"

namespace pcm::sampling {

extern bool enabled PCM_HIDDEN;
// Both countdowns in one thread-local struct: one address to find (a GOT load
// in a shared library) for both.
struct countdowns {
  std::int64_t bytes_until_profile;
  std::int64_t allocations_until_guard;
};
extern __thread countdowns countdown PCM_HIDDEN __attribute__((tls_model("initial-exec")));
inline constexpr std::int64_t never = std::int64_t(1) << 62;

// True when an allocation of n bytes is to be sampled one way or the other.
// (The profiler's allocation is not charged to the guard's countdown.)
[[gnu::always_inline]] inline bool due(std::size_t n) noexcept {
  // Charged at most `never`: the countdown stays within [-never, never], so a
  // request near SIZE_MAX (which fails anyway) cannot overflow it. One compare
  // and a conditional move, off malloc's own hit path.
  std::int64_t charge = n > std::size_t(never) ? never : static_cast<std::int64_t>(n);
  if ((countdown.bytes_until_profile -= charge) < 0) return true;
  return --countdown.allocations_until_guard < 0;
}

// The allocating entry points while sampling is on: the front ends tail-jump
// here on the one flag, so that malloc's own hit path carries no countdown
// (tests/core/fastpath_size_test.py). Each charges the countdowns (`due`)
// and, when one ran out, makes a profiled block, a guarded block, or (neither
// after all) a plain one; else the core's allocation, inlined. Samplers take
// their stacks from the program's frames (debug::capture_program), so how many
// of these frames lie between does not matter.
[[gnu::noinline]] void* allocate(std::size_t size) noexcept;
[[gnu::noinline]] void* allocate_aligned(std::size_t alignment, std::size_t size) noexcept;
[[gnu::noinline]] void* allocate_zeroed(std::size_t count, std::size_t size) noexcept;
[[gnu::noinline]] void* reallocate(void* p, std::size_t size) noexcept;

// Start-up (each sampler's constructor, before main): that sampler is on.
void turn_on_profile() noexcept;
void turn_on_guard() noexcept;

}  // namespace pcm::sampling
