// The heap profiler's sampling (release library; PCMALLOC_CONF=profile:true).
// Each thread counts down the bytes it allocates; the allocation that takes
// the count below zero is sampled, and the next count is drawn from an
// exponential distribution of mean profile_rate, so every byte has the same
// chance (jemalloc's and tcmalloc's scheme). A sampled block is served by
// pcm::allocate_sampled (a page run tagged in its descriptor), so its free
// reaches the core's slow path and the sampled-free hook, and unsampled frees
// pay nothing. While profiling is off, the front ends test one global flag.
// Synchronisation: the countdown is per thread; tables under one lock
// (sampler.cpp), taken once per sample.
#pragma once
#include <cstddef>
#include <cstdint>

#include "heap.hpp"

namespace pcm::profile {

extern bool enabled PCM_HIDDEN;   // set once, at start-up, before other threads exist
extern __thread std::int64_t bytes_until_sample PCM_HIDDEN __attribute__((tls_model("initial-exec")));

// True when an allocation of n bytes is to be sampled (profiling on).
[[gnu::always_inline]] inline bool sample_due(std::size_t n) noexcept {
  bytes_until_sample -= static_cast<std::int64_t>(n);
  return bytes_until_sample < 0;
}

// The sampled allocation itself (malloc, aligned, calloc forms): draws the
// next interval, and when the block is sampled records its stack, size and
// weight. Called directly from the entry point, never tail-called (see
// keep_frame), so that the stack it records starts at the entry's caller.
[[gnu::noinline]] void* allocate(std::size_t size, std::size_t alignment, bool zero) noexcept;
[[gnu::noinline]] void* reallocate(void* p, std::size_t size) noexcept;

// Keeps the entry point's own frame (a call, not a jump, to the sampler).
[[gnu::always_inline]] inline void* keep_frame(void* p) noexcept {
  asm volatile("" : "+r"(p));
  return p;
}

// Writes the profiles with file names starting with `prefix` (see writer.cpp).
// Returns 0, or -1 with errno set.
int dump(const char* prefix) noexcept;

}  // namespace pcm::profile
