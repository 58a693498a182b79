// Page runs: an arena's pages, carved from 4 MiB chunks mapped from the OS.
// A run is a set of consecutive pages of one chunk, found first-fit in the
// chunk's bitmap (freed neighbours coalesce for free: a bit is a page).
// Freed pages stay "dirty" (backed) until decay purging gives them back;
// clean free pages read as zero, which calloc uses to skip its memset.
// Synchronisation: none inside; the owning arena's page lock guards it all.
#pragma once
#include <cstddef>
#include <cstdint>

#include "base.hpp"
#include "platform/platform.hpp"

namespace pcm {

inline constexpr std::size_t chunk_bytes = 4u << 20;
inline constexpr std::uint32_t chunk_pages = chunk_bytes / os::page_size;

struct chunk {
  std::uintptr_t base = 0;
  std::uint64_t used[chunk_pages / 64] = {};
  std::uint64_t dirty[chunk_pages / 64] = {};   // free but still backed by memory
  std::uint32_t free_pages = chunk_pages;
  std::uint32_t dirty_pages = 0;
  std::uint64_t dirty_since_ms = 0;             // when the oldest dirty page was freed
  std::uint32_t usable_pages = chunk_pages;     // fewer for the last piece of a caller's region
  bool caller_memory = false;                   // never purged nor unmapped
  chunk* next = nullptr;
};

struct page_run {
  chunk* home = nullptr;
  std::uint32_t first = 0;
  std::uint32_t pages = 0;
  bool zeroed = false;     // every page clean: the run reads as zero
  void* address() const noexcept { return reinterpret_cast<void*>(home->base + std::uintptr_t(first) * os::page_size); }
};

struct page_run_stats {
  std::size_t mapped = 0;        // bytes of chunks held
  std::size_t active = 0;        // bytes in runs handed out
  std::size_t dirty = 0;         // bytes free but backed
  std::size_t purged_total = 0;  // bytes given back by purging, ever
};

class page_runs {
 public:
  // pages <= chunk_pages; align_pages a power of two. False when the OS refuses.
  bool allocate(std::uint32_t pages, std::uint32_t align_pages, page_run* out) noexcept;
  void release(const page_run& run, std::uint64_t now_ms) noexcept;
  // Grow a run in place into free pages that follow it.
  bool grow_in_place(page_run& run, std::uint32_t new_pages) noexcept;
  void shrink_in_place(page_run& run, std::uint32_t new_pages, std::uint64_t now_ms) noexcept;
  // Give back dirty pages freed at least decay_ms ago (all of them when decay_ms
  // is 0), and unmap chunks that are wholly free beyond one kept in reserve.
  std::size_t purge(std::uint64_t now_ms, std::uint64_t decay_ms) noexcept;
  const page_run_stats& stats() const noexcept { return stats_; }
  bool huge_pages = false;

  // Memory supplied by the caller instead of the OS: carved into chunks of at
  // most 4 MiB; never purged, never unmapped. With can_grow false, allocation
  // fails rather than mapping more. Returns false if descriptors ran out.
  bool add_region(void* memory, std::size_t bytes) noexcept;
  bool can_grow = true;
  // Every run free again at once (explicit arena reset); visit() sees each chunk first.
  template <class Visit>
  void for_each_chunk(Visit visit) const noexcept { for (chunk* c = chunks_; c; c = c->next) visit(*c); }
  void free_everything() noexcept;
  // Give all memory back: unmap owned chunks, drop every descriptor.
  void release_all() noexcept;

 private:
  chunk* add_chunk() noexcept;
  static bool find(const chunk& c, std::uint32_t pages, std::uint32_t align_pages, std::uint32_t* first) noexcept;
  void take(chunk& c, std::uint32_t first, std::uint32_t pages, bool* zeroed) noexcept;
  void give(chunk& c, std::uint32_t first, std::uint32_t pages, std::uint64_t now_ms) noexcept;
  chunk* chunks_ = nullptr;
  page_run_stats stats_;
  base::pool<chunk> chunk_pool_;
};

}  // namespace pcm
