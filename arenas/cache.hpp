// Front caches of free objects, one bin per small size class: per CPU (sharing
// glibc's rseq registration) or, as the fallback, per thread.
// A bin is a bounded stack of object pointers; it refills from and drains to the
// layer below in batches. The stack operations here are the plain (per-thread)
// ones; the per-CPU versions are restartable sequences in rseq.hpp.
// Synchronisation: a thread's bins are touched only by that thread; a CPU's bins
// only inside rseq critical sections on that CPU.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "size_class.hpp"

namespace pcm {

struct cache_bin {
  std::uint32_t count;      // objects in slots[0, count)
  std::uint32_t capacity;   // 0 until the cache is set up: every push "overflows"
  void** slots;
  std::uint64_t hits;       // allocations served from this bin
  std::uint64_t frees;      // frees absorbed by this bin
};
static_assert(offsetof(cache_bin, count) == 0 && offsetof(cache_bin, capacity) == 4 &&
              offsetof(cache_bin, slots) == 8 && offsetof(cache_bin, hits) == 16 &&
              offsetof(cache_bin, frees) == 24, "rseq.hpp's assembly relies on this layout");

inline constexpr unsigned cache_bins = first_class + small_class_count;
inline constexpr unsigned cache_set_shift = 11;   // rseq.hpp indexes CPUs by shifting

// Hardened mode (hardened.hpp): a thread's freed small blocks wait here, oldest
// first out, before their cache sees them again.
inline constexpr unsigned delay_slots = 64;
struct delay_ring {
  void* blocks[delay_slots];
  std::uint32_t next;    // where the next block goes (the oldest when full)
  std::uint32_t count;
};

struct cache_set {
  cache_bin bins[cache_bins];
  cache_set* next_thread;   // registry of thread caches (per-thread mode)
  delay_ring delayed;       // hardened mode only
  char padding[(1u << cache_set_shift) - cache_bins * sizeof(cache_bin) - sizeof(void*) - sizeof(delay_ring)];
};
static_assert(sizeof(cache_set) == 1u << cache_set_shift);

// Objects to cache per class: bounded in bytes, and never fewer than 4.
inline std::uint32_t cache_capacity(unsigned cls, std::uint32_t class_bytes, std::uint32_t max_objects) {
  std::uint32_t by_bytes = class_bytes / size_classes[cls].size;
  std::uint32_t n = by_bytes < max_objects ? by_bytes : max_objects;
  return n < 4 ? 4 : n;
}
inline unsigned batch_for(const cache_bin& bin) {
  unsigned half = bin.capacity / 2;
  return half == 0 ? 1 : (half > 64 ? 64 : half);
}

// Per-thread stack operations: the whole fast path of per-thread mode.
[[gnu::always_inline]] inline void* bin_pop(cache_bin& bin) noexcept {
  if (bin.count == 0) [[unlikely]] return nullptr;
  ++bin.hits;
  return bin.slots[--bin.count];
}
[[gnu::always_inline]] inline bool bin_push(cache_bin& bin, void* object) noexcept {
  if (bin.count >= bin.capacity) [[unlikely]] return false;
  ++bin.frees;
  bin.slots[bin.count++] = object;
  return true;
}

// Slow paths, templated on the layer below so tests can drive a bin with a fake.
// Source: unsigned refill(unsigned cls, void** out, unsigned n); void drain(void* const*, unsigned).
template <class Source>
void* bin_refill(cache_bin& bin, unsigned cls, Source& source) noexcept {
  void* batch[64];
  unsigned n = source.refill(cls, batch, batch_for(bin));
  if (n == 0) return nullptr;
  for (unsigned i = 1; i < n; ++i) bin.slots[bin.count++] = batch[i];   // capacity >= 2 * batch
  return batch[0];
}

template <class Source>
void bin_drain_and_push(cache_bin& bin, void* object, Source& source) noexcept {
  unsigned n = batch_for(bin);
  if (n > bin.count) n = bin.count;
  // Drain the oldest objects (bottom of the stack): the newest are the warmest.
  // (The per-CPU caches drain from the top instead, heap.cpp cpu_give_back: a
  // restartable sequence can take the top in one commit, not the bottom.)
  source.drain(bin.slots, n);
  if (bin.count > n) std::memmove(bin.slots, bin.slots + n, (bin.count - n) * sizeof(void*));   // slots may be null
  bin.count -= n;
  if (!bin_push(bin, object)) source.drain(&object, 1);
}

template <class Source>
void bin_flush(cache_bin& bin, Source& source) noexcept {
  if (bin.count) source.drain(bin.slots, bin.count);
  bin.count = 0;
}

}  // namespace pcm
