// Sampling in the release library: the one switch the allocating fast paths
// test, and the two per-thread countdowns under it. The heap profiler
// (src/profile, bytes between samples) and guarded sampling (src/guard,
// allocations between guarded blocks) each own a countdown; while sampling is
// on, every allocation charges both, and the one test `due` sends the
// allocation to the slow path here when either has run out, where the kind of
// sample is decided. A countdown whose sampler is off is set so that it never
// runs out (`never`). Off (the default of both), the fast path pays one load
// and one well-predicted branch.
// Synchronisation: `enabled` is written once, at start-up, before other
// threads exist; the countdowns are per thread.
#pragma once
#include <cstddef>
#include <cstdint>

#include "heap.hpp"

namespace pcm::sampling {

extern bool enabled PCM_HIDDEN;
extern __thread std::int64_t bytes_until_profile PCM_HIDDEN __attribute__((tls_model("initial-exec")));
extern __thread std::int64_t allocations_until_guard PCM_HIDDEN __attribute__((tls_model("initial-exec")));
inline constexpr std::int64_t never = std::int64_t(1) << 62;

// True when an allocation of n bytes is to be sampled one way or the other.
[[gnu::always_inline]] inline bool due(std::size_t n) noexcept {
  bytes_until_profile -= static_cast<std::int64_t>(n);
  allocations_until_guard -= 1;
  return (bytes_until_profile | allocations_until_guard) < 0;
}

// The sampled allocation (malloc, aligned, calloc forms) and realloc: a
// profiled block, a guarded block, or (neither after all) a plain one. Called
// directly from the entry point, never tail-called (see keep_frame): the
// profiler's stack starts a fixed number of frames up.
[[gnu::noinline]] void* allocate(std::size_t size, std::size_t alignment, bool zero) noexcept;
[[gnu::noinline]] void* reallocate(void* p, std::size_t size) noexcept;

// Keeps the caller's own frame (a call, not a jump, to the sampler).
[[gnu::always_inline]] inline void* keep_frame(void* p) noexcept {
  asm volatile("" : "+r"(p));
  return p;
}

// Start-up (each sampler's constructor, before main): that sampler is on.
void turn_on_profile() noexcept;
void turn_on_guard() noexcept;

}  // namespace pcm::sampling
