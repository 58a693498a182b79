// Statistics: one consistent-enough snapshot of every layer's counters, taken
// without stopping the world (each bin and page allocator is read under its own
// lock; cache counters are read racily and may lag by a few operations).
#pragma once
#include <cstddef>
#include <cstdint>

#include "heap.hpp"

namespace pcm::stats {

struct class_snapshot {
  std::size_t size = 0;
  std::uint64_t requests = 0;       // allocations of this class
  std::uint64_t cache_hits = 0;     // ... served by a CPU or thread cache
  std::uint64_t cache_misses = 0;   // ... that had to go to an arena
  std::uint64_t frees = 0;
  std::uint64_t slabs = 0;          // slabs held now
  std::uint64_t slab_bytes = 0;     // bytes of those slabs (active)
  std::uint64_t live_objects = 0;   // in the program's hands
  std::uint64_t cached_objects = 0; // sitting in caches, free
};

struct snapshot {
  cache_mode mode = cache_mode::uninitialised;
  unsigned arenas = 0;
  unsigned cpus = 0;
  class_snapshot classes[cache_bins];   // indexed by class; [0] unused
  std::uint64_t small_live_bytes = 0, small_slab_bytes = 0;
  std::uint64_t large_live_bytes = 0, large_count = 0;
  std::uint64_t huge_live_bytes = 0, huge_count = 0;
  std::uint64_t mapped_bytes = 0;     // chunks + huge + metadata
  std::uint64_t dirty_bytes = 0;      // free pages still backed
  std::uint64_t purged_bytes = 0;     // given back by decay purging, ever
  std::uint64_t metadata_bytes = 0;
  std::uint64_t resident_bytes = 0;   // RSS of the process
};

void take(snapshot& out) noexcept;

}  // namespace pcm::stats
