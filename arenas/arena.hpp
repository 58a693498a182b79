// Arenas, jemalloc-style: each has one bin per small size class (a current slab
// plus a list of partial slabs) and a page-run allocator for slabs and large
// blocks. Huge blocks are mapped directly. Threads are assigned arenas round
// robin; memory always goes back to the arena that owns its slab, whichever
// thread or CPU frees it.
// Synchronisation: one mutex per bin and one page lock per arena; the order is
// bin -> page lock. No global lock on allocation or free paths.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "lock.hpp"
#include "page_runs.hpp"
#include "size_class.hpp"
#include "slab.hpp"

namespace pcm {

struct bin_stats {
  std::uint64_t refills = 0;       // batches handed to caches (cache misses)
  std::uint64_t objects_out = 0;   // objects handed to caches or callers
  std::uint64_t objects_back = 0;  // objects returned
  std::uint64_t slabs = 0;         // slabs currently held
};

// A bin's transfer stack holds whole objects that caches drained, for the next
// refill of any cache (tcmalloc's transfer cache): both ends move by memcpy,
// with no walk over slabs. Objects in it may belong to any arena's slabs; they
// go home (free_to_slabs) when the stack is full, idle at a decay tick, or
// purged. Capacity 0 (explicit arenas) turns it off.
struct alignas(64) bin {
  mutex lock;
  slab* current = nullptr;   // where allocation happens
  slab_list partial;         // other slabs with free objects
  slab* spare = nullptr;     // one empty slab kept to damp create/destroy churn
  void** transfer = nullptr;
  std::uint32_t transfer_count = 0;
  std::uint32_t transfer_capacity = 0;
  bool transfer_used = false;   // since the last decay tick
  bin_stats stats;
};

struct arena_stats {
  std::uint64_t large_allocations = 0;
  std::uint64_t large_frees = 0;
  std::size_t large_active = 0;
};

struct cache_set;

struct arena_core {
  unsigned index = 0;
  bool is_explicit = false;        // created by the user (pcm::arena), not in the table
  cache_set* cpu_sets = nullptr;   // explicit arenas: their own per-CPU caches (or none)
  bin bins[first_class + small_class_count];
  alignas(64) mutex page_lock;
  page_runs pages;
  arena_stats stats;
  slab_list huge_blocks;           // explicit arenas: huge blocks to unmap on reset
  arena_core* next_explicit = nullptr;   // explicit arenas: the live list (arenas::add_explicit)
  arena_core* prev_explicit = nullptr;

  // Take up to `count` objects of class `cls` for a cache; returns how many.
  unsigned refill(unsigned cls, void** out, unsigned count) noexcept;
  // Keep up to `count` objects of class `cls` drained from a cache on the
  // transfer stack; returns how many it took (the caller frees the rest).
  unsigned stash(unsigned cls, void* const* objects, unsigned count) noexcept;
  // Send the transfer stack's objects home; with `only_idle`, only where the
  // stack was not used since the last call. Never waits for a busy bin.
  void flush_transfers(bool only_idle) noexcept;
  // Large blocks: page runs of whole pages, aligned to `alignment` (<= chunk).
  void* allocate_large(std::size_t size, std::size_t alignment, bool zero) noexcept;
  void free_large(slab* run) noexcept;
  bool resize_large_in_place(slab* run, std::size_t new_size) noexcept;
  std::size_t purge(std::uint64_t now_ms, std::uint64_t decay_ms) noexcept;
  // Forget every slab and run at once; their pages become free (dirty).
  // REQUIRES: no other thread uses this arena meanwhile.
  void reset() noexcept;

 private:
  slab* new_slab(unsigned cls) noexcept;
};

// Return objects (any classes, any arenas) to the slabs that own them.
void free_to_slabs(void* const* objects, unsigned count) noexcept;

// Huge blocks: their own mapping each; freed ones are kept for reuse for up to
// decay_ms (a few, bounded; see arena.cpp).
// `owner`: an explicit arena that must free the block on reset (or nullptr).
// `zero`: the block must read as zeros (calloc).
void* allocate_huge(std::size_t size, std::size_t alignment, arena_core* owner = nullptr,
                    bool zero = false) noexcept;
void free_huge(slab* block) noexcept;
// A huge block's usable size: its request to the page. Its mapping (bytes)
// is in 2 MiB steps, but a caller's usable size stays within a page of what
// it asked for.
inline std::size_t huge_usable_size(const slab* block) noexcept {
  std::size_t usable = os::round_to_pages(block->requested);
  return usable ? usable : os::page_size;
}
void* reallocate_huge(slab* block, std::size_t new_size) noexcept;

struct huge_stats {
  std::atomic<std::uint64_t> allocations{0}, frees{0};
  std::atomic<std::size_t> active{0};
};
extern huge_stats huge_totals;
// Unmap kept huge ranges freed at least decay_ms ago (all: every one); returns
// the bytes unmapped.
std::size_t release_cached_huge(std::uint64_t decay_ms, bool all) noexcept;
std::size_t cached_huge_bytes() noexcept;

// The arena table, built at initialisation.
namespace arenas {
void init(unsigned count) noexcept;
unsigned count() noexcept;
arena_core& get(unsigned index) noexcept;
arena_core& for_this_thread() noexcept;
// Purge dirty pages in every arena (the table's and the explicit ones) whose
// decay has elapsed. Cheap to call often: at most one sweep per tick, and busy
// arenas are skipped rather than waited for. force (pcm_purge): every page now.
void decay_tick(bool force) noexcept;
// Explicit arenas join the decay sweeps and the fork locks while listed; an
// arena leaves the list before it is destroyed.
void add_explicit(arena_core* a) noexcept;
void remove_explicit(arena_core* a) noexcept;
void lock_for_fork() noexcept;
void unlock_after_fork(bool child) noexcept;
}  // namespace arenas

}  // namespace pcm
