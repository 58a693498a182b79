// pcm::arena — an explicit arena (jemalloc's arenas.create / arena.<i>.reset /
// destroy): memory you can drop all at once.
//
//   pcm::arena a;                       // grows from the OS as needed
//   pcm::arena b(buffer, sizeof buffer); // lives inside your memory, never asks the OS
//   void* p = a.allocate(100);          // any thread
//   a.deallocate(p);                    // or free(p): pcmalloc routes it back to `a`
//   a.reset();                          // everything `a` handed out is free again
//
// Thread safety: allocate/deallocate from any threads at once (per-CPU caches
// when rseq runs). reset() and destruction require that no other thread uses
// the arena meanwhile. After reset() or destruction every block the arena
// handed out is gone: containers that used it must not touch their elements
// or free them afterwards (abandon them, or destroy them before the reset).
#pragma once
#include <cstddef>
#include <cstdint>

#include "pcmalloc.h"

namespace pcm {

struct arena_statistics {
  std::uint64_t slabs = 0;            // small-object slabs held
  std::uint64_t slab_bytes = 0;
  std::uint64_t large_bytes = 0;      // page runs and huge blocks in use
  std::uint64_t huge_blocks = 0;
  std::uint64_t small_objects = 0;    // handed out and not yet returned to a slab (includes cached)
  std::uint64_t cached_objects = 0;   // free, in the arena's per-CPU caches
  std::uint64_t mapped_bytes = 0;     // chunk memory held (or the caller's region)
  std::uint64_t dirty_bytes = 0;      // free pages not yet purged
  std::uint64_t resets = 0;
};

class PCM_API arena {
 public:
  arena();                                    // throws std::bad_alloc if it cannot be created
  arena(void* memory, std::size_t bytes);     // at least one page of the region must be usable
  ~arena();
  arena(const arena&) = delete;
  arena& operator=(const arena&) = delete;
  arena(arena&& other) noexcept : core_(other.core_), resets_(other.resets_) { other.core_ = nullptr; }
  arena& operator=(arena&& other) noexcept;

  // nullptr (errno ENOMEM / EINVAL) on failure. alignment: a power of two.
  void* allocate(std::size_t size, std::size_t alignment = alignof(std::max_align_t)) noexcept;
  void deallocate(void* p) noexcept;          // p must come from this arena (checked: abort otherwise)
  void reset() noexcept;
  bool owns(const void* p) const noexcept;
  arena_statistics statistics() const noexcept;

 private:
  void* core_;
  std::uint64_t resets_ = 0;
};

}  // namespace pcm
