// The core's entry points: what every front end (malloc shim, C API, pmr
// resources) calls. The fast paths are inline here; all else is in heap.cpp.
//
//   allocate(size):   size <= 32 KiB -> class (table or bit math) -> pop this
//                     CPU's (or thread's) bin -> erase the free mark
//                     (free_object.hpp) -> done.
//   deallocate(p):    page map (two loads) -> class and object-start check ->
//                     refuse a marked (already free) object, mark it -> push
//                     onto this CPU's (or thread's) bin -> done.
// Budgets (tests/core/fastpath_size_test.py, x86-64): the longest hit path of
// malloc() is 43 instructions with gcc 12 (47 with clang 14), of free() 77
// (74), with no call and no atomic; of these, the free mark is 1 of malloc's
// and 5 of free's, sampling's switch (src/heap_policy.hpp: a flag, and a jump
// to src/sampling.cpp while the heap profiler or guarded sampling is on) 2 of
// malloc's.
// Anything else (empty or full bin, large, huge, foreign pointers, first use)
// tail-calls a noinline slow path.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cache.hpp"
#include "free_object.hpp"
#include "page_map.hpp"
#include "rseq.hpp"
#include "size_class.hpp"

namespace pcm {

struct slab;
struct arena_core;

enum class cache_mode : std::uint8_t { uninitialised, per_cpu, per_thread };

namespace detail {
// Hidden: addressed PC-relative from the fast paths, never through the GOT.
#define PCM_HIDDEN __attribute__((visibility("hidden")))
extern cache_mode mode PCM_HIDDEN;
extern std::ptrdiff_t rseq_offset PCM_HIDDEN;
extern cache_set cpu_caches[rseq::max_cpus] PCM_HIDDEN;
extern __thread cache_set* thread_cache PCM_HIDDEN __attribute__((tls_model("initial-exec")));

[[gnu::noinline]] void* allocate_slow(std::size_t size) noexcept;
slab* checked_block(const char* operation, const void* p, page_entry e) noexcept;
// Per-CPU slow paths over any array of cache sets (the global ones or an
// explicit arena's): refill this CPU's bin from `source` and return one
// object; or make room in this CPU's bin and push p.
void* cpu_refill(cache_set* sets, char* area, arena_core& source, unsigned cls) noexcept;
void cpu_give_back(cache_set* sets, char* area, unsigned cls, void* p) noexcept;
// Drained objects of small class `cls`: onto a transfer stack, the rest home.
void stash_or_free(unsigned cls, void* const* objects, unsigned n) noexcept;
// A cache set's bins with the configured capacities over `slots`
// (slots_per_cache_set() pointers).
void set_up_bins(cache_set& set, void** slots) noexcept;
std::size_t slots_per_cache_set() noexcept;
// explicit_arena.cpp: a small object of an explicit arena freed through free().
void explicit_free_small(arena_core& owner, unsigned cls, void* p) noexcept;
[[gnu::noinline]] void deallocate_slow(void* p, page_entry e) noexcept;
[[gnu::noinline]] void deallocate_sized_slow(void* p, std::size_t size, bool exact, page_entry e) noexcept;
[[noreturn, gnu::cold]] void wrong_size(const void* p, std::size_t size, std::size_t block) noexcept;
// The blocks under the entry points (what hardened.cpp builds on): a block of
// at least `size` bytes at `alignment` (nullptr, errno ENOMEM, on failure); and
// the free of a block's start, checked as free() checks it.
void* allocate_block(std::size_t size, std::size_t alignment) noexcept;
void free_block(void* p, page_entry e) noexcept;
void end_sample(void* p, slab* s) noexcept;
// This thread's own cache set (per-thread mode), made on first use; nullptr
// while the thread exits.
cache_set* own_cache_set() noexcept;
// Sampled blocks (the heap profiler) are page runs whose descriptor holds a
// sample number; freeing one calls this hook (set once, before any sample).
extern void (*sampled_free_hook)(void* p, std::uint32_t sample) PCM_HIDDEN;
// Guarded samples (src/guard): one region of slots entered in the page map
// under page_entry::guarded_class, so that their frees miss the fast path like
// any block that is not small. The core hands every pointer into the region
// to these hooks (set once, before the first guarded block exists). Each
// reports and stops on a pointer that is not a live guarded block's start,
// except owns and block_start, which answer.
struct guarded_hooks {
  // size 0 and !exact: not given; exact: sized delete of a plain operator new or new[].
  void (*free)(void* p, std::size_t size, bool exact, const char* operation);
  std::size_t (*usable_size)(const void* p, const char* operation);
  bool (*owns)(const void* p);
  void* (*block_start)(const void* p);
};
extern const guarded_hooks* guarded PCM_HIDDEN;
[[gnu::always_inline]] inline bool is_guarded(page_entry e) noexcept {
  return e.size_class() == page_entry::guarded_class;
}

[[gnu::always_inline]] inline void* cache_pop(unsigned cls) noexcept {
  if (mode == cache_mode::per_cpu) [[likely]]
    return rseq::pop(rseq::area(rseq_offset), &cpu_caches[0].bins[cls]);
  return bin_pop(thread_cache->bins[cls]);
}
[[gnu::always_inline]] inline bool cache_push(unsigned cls, void* p) noexcept {
  if (mode == cache_mode::per_cpu) [[likely]]
    return rseq::push(rseq::area(rseq_offset), &cpu_caches[0].bins[cls], p);
  return bin_push(thread_cache->bins[cls], p);
}

// True when p is the first byte of an object of small class `cls`: the offset
// from the slab start must be a multiple of the class size (checked with a
// multiply by the reciprocal; exact whenever the offset is a multiple) and
// below the slab's last object.
[[gnu::always_inline]] inline std::uintptr_t slab_start_of(std::uintptr_t a, page_entry e) noexcept {
  return os::page_start(a) - (std::uintptr_t(e.page_offset()) << os::page_shift);
}
[[gnu::always_inline]] inline bool is_object_start(const void* p, page_entry e, unsigned cls) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  std::uint64_t offset = a - slab_start_of(a, e);
  const size_class_info& info = size_classes[cls];
  std::uint64_t index = (offset * info.reciprocal) >> 32;
  // A multiple of the size past the last object is the slab's unused tail.
  return index * info.size == offset && index < info.objects;
}
}  // namespace detail

[[gnu::always_inline]] inline void* allocate(std::size_t size) noexcept {
  if (size <= small_max) [[likely]] {
    void* p = detail::cache_pop(size_to_class(size));
    if (p) [[likely]] return free_marks::hand_out(p);
  }
  return detail::allocate_slow(size);
}

// A small object's mark is checked and written before the push: a double free
// never reaches a cache (free_object.hpp).
[[gnu::always_inline]] inline void deallocate(void* p) noexcept {
  page_entry e = page_map::lookup(p);
  unsigned cls = e.size_class();
  if (is_small_class(cls) && detail::is_object_start(p, e, cls)) [[likely]] {
    free_marks::take_back(p, "free");
    if (detail::cache_push(cls, p)) [[likely]] return;
  }
  detail::deallocate_slow(p, e);
}

// `size` must fit the block; when `exact` (operator delete of a plain operator
// new) it must also be one that allocate() puts in this block's class (small)
// or more than half of the block (large and huge). A mismatch is reported and
// aborts. The small-object path is deallocate's with one more compare.
[[gnu::always_inline]] inline void deallocate_sized(void* p, std::size_t size, bool exact) noexcept {
  page_entry e = page_map::lookup(p);
  unsigned cls = e.size_class();
  if (is_small_class(cls) && detail::is_object_start(p, e, cls)) [[likely]] {
    free_marks::take_back(p, "free");   // a double free is named as such before any size check
    if (size > size_classes[cls].size || (exact && size_to_class(size) != cls)) [[unlikely]]
      detail::wrong_size(p, size, size_classes[cls].size);
    if (detail::cache_push(cls, p)) [[likely]] return;
    return detail::deallocate_slow(p, e);
  }
  detail::deallocate_sized_slow(p, size, exact, e);
}

// The rest of the family (heap.cpp). All return nullptr with errno ENOMEM (or
// EINVAL for a bad alignment) on failure; none throws.
void* allocate_zeroed(std::size_t count, std::size_t size) noexcept;
void* allocate_aligned(std::size_t alignment, std::size_t size) noexcept;
void* reallocate(void* p, std::size_t size) noexcept;
std::size_t usable_size(const void* p) noexcept;   // 0 for nullptr
namespace detail {
// usable_size, a pointer that is not a live block's start reported as `operation`'s
// (a realloc that checks its pointer before it takes a sampled block).
std::size_t usable_size_for(const void* p, const char* operation) noexcept;
}  // namespace detail
bool owns(const void* p) noexcept;                  // p is the start of a live-looking block of ours
// The start of the block of ours that contains p (small blocks: any byte; large
// and huge blocks: their first page), or nullptr.
void* block_start(const void* p) noexcept;
// A block of its own pages (a large run, or a huge mapping) tagged `sample`
// (nonzero): its free never takes the fast path, so the profiler sees it
// without any lookup on the frees of other blocks. nullptr when out of memory.
void* allocate_sampled(std::size_t size, std::size_t alignment, bool zero, std::uint32_t sample) noexcept;
// Tags a block of the caller's that is already a page run or huge mapping
// (a large realloc's result, resized in place); false for any other block.
bool tag_sampled(void* p, std::uint32_t sample) noexcept;

cache_mode current_cache_mode() noexcept;
const char* cache_mode_name() noexcept;
void ensure_initialised() noexcept;
unsigned current_cpu() noexcept;      // from the rseq area when registered, else getcpu()
unsigned arena_count() noexcept;      // arenas in the global heap's table
void flush_thread_cache() noexcept;   // give this thread's (or CPU's) cached objects back
void purge_all() noexcept;            // flush caches and return every dirty page now
// fork(): the layers above the core (explicit arenas, the debug heap) hand their
// handlers to the core's one pthread_atfork registration: their prepare runs
// before the core takes its locks, their parent/child after it releases them,
// and from the end of the prepare to the parent/child the forking thread holds
// every lock of all of them (holding_every_lock, lock.hpp). At most 8.
void add_fork_hooks(void (*prepare)(), void (*parent)(), void (*child)()) noexcept;

// For statistics: visit every live cache (CPU caches, then thread caches).
void for_each_cache(void (*visit)(const cache_set&, void*), void* context) noexcept;
// Add the frees that bypassed the caches to `frees` (the caches' pushes) and
// give the misses (see the counters in heap.cpp).
void adjust_cache_counts(unsigned cls, std::uint64_t& misses, std::uint64_t& frees) noexcept;

// Reports an invalid pointer passed to `operation` and aborts.
[[noreturn]] void invalid_pointer(const char* operation, const void* p, const char* why) noexcept;

}  // namespace pcm
