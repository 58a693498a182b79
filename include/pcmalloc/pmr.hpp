// std::pmr memory resources on pcmalloc.
//
//   arena_resource   thread-safe; the global heap (default) or a pcm::arena,
//                    through their per-CPU caches.
//   local_resource   ONE thread at a time, no atomics, no locks: per-class free
//                    lists (8 bytes apart up to 128 B, then pcmalloc's classes)
//                    over blocks carved in sequence (the first block is
//                    `first_block` bytes, then doubling to 64 KiB), so nodes
//                    built in sequence sit next to each other and a container's
//                    erased nodes are reused by the same container. Requests
//                    above 1 KiB go upstream. The fastest choice for a
//                    container owned by one thread.
//   scoped_resource  request-scoped: bump allocation, deallocate does nothing,
//                    release() frees everything at once but keeps its blocks
//                    (warm pages) for the next request — monotonic_buffer_resource
//                    that recycles.
//   global_resource(), make_default(): pcmalloc as std::pmr's default resource.
#pragma once
#include <cstddef>
#include <atomic>
#include <cstdint>
#include <memory_resource>

#include "allocator.hpp"
#include "arena.hpp"
#include "pcmalloc.h"
#include "single_user.hpp"

namespace pcm::pmr {

class PCM_API arena_resource final : public std::pmr::memory_resource {
 public:
  arena_resource() noexcept : arena_(nullptr) {}
  explicit arena_resource(pcm::arena& a) noexcept : arena_(&a) {}
  pcm::arena* arena() const noexcept { return arena_; }

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override;
  pcm::arena* arena_;
};

// The global heap as a memory_resource (one object for the whole process).
PCM_API std::pmr::memory_resource* global_resource() noexcept;
// Make global_resource() std::pmr's default; returns the previous default.
PCM_API std::pmr::memory_resource* make_default() noexcept;

struct local_statistics {
  std::size_t bytes_held = 0;      // blocks and large requests taken from upstream
  std::size_t bytes_live = 0;      // handed out and not returned (class-rounded)
  std::size_t allocations = 0;
  std::size_t reused = 0;          // allocations served from a free list
  std::size_t upstream_allocations = 0;   // large requests passed through
};

class PCM_API local_resource final : public std::pmr::memory_resource {
 public:
  static constexpr std::size_t largest_block = 64 * 1024;
  static constexpr std::size_t largest_local = 1024;
  // Below fine_limit, requests aligned to 8 or less get classes 8 bytes apart
  // (pcmalloc's are 16 apart): small hash nodes are carved at their own size.
  static constexpr std::size_t fine_limit = 128;

  explicit local_resource(std::pmr::memory_resource* upstream = global_resource(), std::size_t first_block = 1024) noexcept
      : upstream_(upstream), next_block_(first_block < 256 ? 256 : first_block > largest_block ? largest_block : first_block) {}
  ~local_resource() override { release(); }
  local_resource(const local_resource&) = delete;
  local_resource& operator=(const local_resource&) = delete;

  // Return every block upstream. Every pointer handed out becomes invalid.
  void release() noexcept;
  // Forget every object but keep the blocks (a cleared container's memory).
  void recycle() noexcept;
  const local_statistics& statistics() const noexcept { return stats_; }
  std::pmr::memory_resource* upstream() const noexcept { return upstream_; }

  // Debug library: while parked (its container went back to a pool), any
  // allocation or deallocation through it is reported as use after return;
  // two threads inside it at once are reported as cross-thread use.
  void debug_park(unsigned returned_at) noexcept;
  void debug_unpark() noexcept;

 private:
  static constexpr unsigned class_count = 20;   // pcmalloc's classes up to 1 KiB
  static constexpr unsigned fine_class(std::size_t bytes) noexcept { return bytes ? unsigned((bytes - 1) / 8) : 0; }
  static constexpr std::size_t fine_size(unsigned cls) noexcept { return 8 * (std::size_t(cls) + 1); }
  struct free_node { free_node* next; };
  struct block { block* next; std::size_t bytes; };
  struct large { large* next; large* prev; std::size_t bytes, alignment; };

  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }
  void* carve(std::size_t size, std::size_t alignment);

  std::pmr::memory_resource* upstream_;
  std::size_t next_block_;
  free_node* free_[class_count + 1] = {};
  free_node* fine_[fine_limit / 8] = {};
  char* cursor_ = nullptr;
  char* limit_ = nullptr;
  block* blocks_ = nullptr;
  large* large_ = nullptr;          // upstream blocks, freed on release()
  local_statistics stats_;
  single_user_check user_check_;   // debug library only
  friend struct exclusive_use;
};

class PCM_API scoped_resource final : public std::pmr::memory_resource {
 public:
  explicit scoped_resource(std::size_t first_block = 4096, std::pmr::memory_resource* upstream = global_resource()) noexcept
      : upstream_(upstream), next_block_(first_block < 256 ? 256 : first_block) {}
  ~scoped_resource() override;
  scoped_resource(const scoped_resource&) = delete;
  scoped_resource& operator=(const scoped_resource&) = delete;

  // Everything handed out is free at once; blocks are kept for the next round
  // (up to retain_bytes of them; the rest go upstream).
  void release() noexcept;
  std::size_t retain_bytes = 1 << 20;
  std::size_t bytes_held() const noexcept { return held_; }

 private:
  struct block { block* next; std::size_t bytes; };
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void*, std::size_t, std::size_t) override {}
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }
  void* grow(std::size_t bytes, std::size_t alignment);

  std::pmr::memory_resource* upstream_;
  std::size_t next_block_;
  block* used_ = nullptr;      // blocks of this round, newest first
  block* spare_ = nullptr;     // blocks kept from earlier rounds
  char* cursor_ = nullptr;
  char* limit_ = nullptr;
  std::size_t held_ = 0;
};

}  // namespace pcm::pmr
