// The heap profiler's sampling (release library; PCMALLOC_CONF=profile:true).
// Each thread counts down the bytes it allocates (sampling::countdown);
// the allocation that takes the count below zero is sampled, and the next count is drawn from an
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

// The sampled allocation itself (malloc, aligned, calloc forms): draws the
// next interval, and when the block is sampled records its stack, size and
// weight. Called from sampling's slow path (src/sampling.cpp); the stack it
// records is the program's, from its call into the library.
[[gnu::noinline]] void* allocate(std::size_t size, std::size_t alignment, bool zero) noexcept;
[[gnu::noinline]] void* reallocate(void* p, std::size_t size) noexcept;

// Writes the profiles with file names starting with `prefix` (see writer.cpp).
// Returns 0, or -1 with errno set.
int dump(const char* prefix) noexcept;

}  // namespace pcm::profile
