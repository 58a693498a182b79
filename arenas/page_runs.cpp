#include "page_runs.hpp"

#include <bit>

#include "page_map.hpp"

namespace pcm {
namespace {

bool bit(const std::uint64_t* map, std::uint32_t i) { return (map[i >> 6] >> (i & 63)) & 1; }

// Set or clear bits [first, first + count).
void assign_bits(std::uint64_t* map, std::uint32_t first, std::uint32_t count, bool value) {
  while (count) {
    std::uint32_t offset = first & 63, n = 64 - offset < count ? 64 - offset : count;
    std::uint64_t mask = (n == 64 ? ~0ull : ((1ull << n) - 1)) << offset;
    if (value) map[first >> 6] |= mask; else map[first >> 6] &= ~mask;
    first += n;
    count -= n;
  }
}

std::uint32_t count_bits(const std::uint64_t* map, std::uint32_t first, std::uint32_t count) {
  std::uint32_t total = 0;
  for (std::uint32_t i = first; i < first + count; ++i) total += bit(map, i);
  return total;
}

// First index >= from whose bit equals `value`, or chunk_pages.
std::uint32_t next_with(const std::uint64_t* map, std::uint32_t from, bool value) {
  while (from < chunk_pages) {
    std::uint64_t word = value ? map[from >> 6] : ~map[from >> 6];
    word &= ~0ull << (from & 63);
    if (word) return (from & ~63u) + unsigned(std::countr_zero(word));
    from = (from & ~63u) + 64;
  }
  return chunk_pages;
}

}  // namespace

// Alignment is of the address, not the index: a caller's region need not be
// aligned beyond a page.
bool page_runs::find(const chunk& c, std::uint32_t pages, std::uint32_t align, std::uint32_t* first) noexcept {
  const std::uint32_t skew = std::uint32_t(c.base >> os::page_shift) & (align - 1);
  std::uint32_t i = 0;
  while (true) {
    i = next_with(c.used, i, false);
    i = ((i + skew + align - 1) & ~(align - 1)) - skew;
    if (i + pages > c.usable_pages) return false;
    std::uint32_t blocker = next_with(c.used, i, true);
    if (blocker >= i + pages) { *first = i; return true; }
    i = blocker + 1;
  }
}

chunk* page_runs::add_chunk() noexcept {
  // Aligned to 2 MiB so that transparent huge pages can back whole chunks.
  void* memory = os::map(chunk_bytes, 2u << 20);
  if (!memory) return nullptr;
  chunk* c = chunk_pool_.acquire();
  if (!c) { os::unmap(memory, chunk_bytes); return nullptr; }
  if (huge_pages) os::hint_huge_pages(memory, chunk_bytes, true);
  c->base = reinterpret_cast<std::uintptr_t>(memory);
  c->next = chunks_;
  chunks_ = c;
  stats_.mapped += chunk_bytes;
  return c;
}

void page_runs::take(chunk& c, std::uint32_t first, std::uint32_t pages, bool* zeroed) noexcept {
  std::uint32_t dirty = count_bits(c.dirty, first, pages);
  *zeroed = dirty == 0;
  assign_bits(c.used, first, pages, true);
  assign_bits(c.dirty, first, pages, false);
  c.free_pages -= pages;
  c.dirty_pages -= dirty;
  if (c.dirty_pages == 0) c.dirty_since_ms = 0;
  stats_.dirty -= std::size_t(dirty) * os::page_size;
  stats_.active += std::size_t(pages) * os::page_size;
}

void page_runs::give(chunk& c, std::uint32_t first, std::uint32_t pages, std::uint64_t now_ms) noexcept {
  assign_bits(c.used, first, pages, false);
  assign_bits(c.dirty, first, pages, true);
  c.free_pages += pages;
  if (c.dirty_pages == 0) c.dirty_since_ms = now_ms;
  c.dirty_pages += pages;
  stats_.dirty += std::size_t(pages) * os::page_size;
  stats_.active -= std::size_t(pages) * os::page_size;
}

bool page_runs::allocate(std::uint32_t pages, std::uint32_t align_pages, page_run* out) noexcept {
  std::uint32_t first = 0;
  chunk* found = nullptr;
  // Prefer chunks with dirty pages: their memory is already backed and warm.
  for (chunk* c = chunks_; c && !found; c = c->next)
    if (c->free_pages >= pages && c->dirty_pages && find(*c, pages, align_pages, &first)) found = c;
  for (chunk* c = chunks_; c && !found; c = c->next)
    if (c->free_pages >= pages && find(*c, pages, align_pages, &first)) found = c;
  if (!found) {
    if (!can_grow) return false;
    found = add_chunk();
    if (!found) return false;
    // Chunks are mapped 2 MiB-aligned: a larger alignment needs the search
    // (the empty chunk stays for later requests if even that fails).
    if (!find(*found, pages, align_pages, &first)) return false;
  }
  out->home = found;
  out->first = first;
  out->pages = pages;
  take(*found, first, pages, &out->zeroed);
  return true;
}

void page_runs::release(const page_run& run, std::uint64_t now_ms) noexcept {
  give(*run.home, run.first, run.pages, now_ms);
}

bool page_runs::grow_in_place(page_run& run, std::uint32_t new_pages) noexcept {
  chunk& c = *run.home;
  std::uint32_t end = run.first + run.pages, extra = new_pages - run.pages;
  if (run.first + new_pages > chunk_pages) return false;
  if (next_with(c.used, end, true) < run.first + new_pages) return false;
  bool zeroed;
  take(c, end, extra, &zeroed);
  run.pages = new_pages;
  return true;
}

void page_runs::shrink_in_place(page_run& run, std::uint32_t new_pages, std::uint64_t now_ms) noexcept {
  give(*run.home, run.first + new_pages, run.pages - new_pages, now_ms);
  run.pages = new_pages;
}

std::size_t page_runs::purge(std::uint64_t now_ms, std::uint64_t decay_ms) noexcept {
  std::size_t purged = 0;
  bool kept_empty = false;
  for (chunk** link = &chunks_; *link;) {
    chunk& c = **link;
    if (c.caller_memory) { link = &c.next; continue; }
    if (c.dirty_pages && (decay_ms == 0 || now_ms - c.dirty_since_ms >= decay_ms)) {
      for (std::uint32_t i = next_with(c.dirty, 0, true); i < chunk_pages; i = next_with(c.dirty, i, true)) {
        std::uint32_t end = next_with(c.dirty, i, false);
        os::purge(reinterpret_cast<void*>(c.base + std::uintptr_t(i) * os::page_size),
                  std::size_t(end - i) * os::page_size);
        assign_bits(c.dirty, i, end - i, false);
        purged += std::size_t(end - i) * os::page_size;
        i = end;
      }
      stats_.dirty -= std::size_t(c.dirty_pages) * os::page_size;
      c.dirty_pages = 0;
      c.dirty_since_ms = 0;
    }
    if (c.free_pages == chunk_pages && c.dirty_pages == 0) {
      if (kept_empty) {   // a second wholly free, clean chunk: give its address space back
        *link = c.next;
        os::unmap(reinterpret_cast<void*>(c.base), chunk_bytes);
        stats_.mapped -= chunk_bytes;
        chunk_pool_.release(&c);
        continue;
      }
      kept_empty = true;
    }
    link = &c.next;
  }
  stats_.purged_total += purged;
  return purged;
}

}  // namespace pcm

namespace pcm {

bool page_runs::add_region(void* memory, std::size_t bytes) noexcept {
  auto start = os::round_to_pages(reinterpret_cast<std::uintptr_t>(memory));
  auto end = os::page_start(reinterpret_cast<std::uintptr_t>(memory) + bytes);
  // The region may be a block pcmalloc handed out (a std::vector's buffer, with
  // the override on). The page map names a large or huge block by its first
  // page only: that page stays out of the region, or the arena's own entries
  // would replace the block's and its free() would no longer find it. A named
  // page further in means the region crosses blocks of ours, or lies in a
  // small slab (every page named): refused.
  const std::uintptr_t asked = start;
  while (start < end && page_map::lookup(reinterpret_cast<void*>(start)).bits) start += os::page_size;
  if (start != asked && start >= end) return false;
  for (std::uintptr_t page = start; page < end; page += os::page_size)
    if (page_map::lookup(reinterpret_cast<void*>(page)).bits) return false;
  for (std::uintptr_t base = start; base < end; base += chunk_bytes) {
    chunk* c = chunk_pool_.acquire();
    if (!c) return false;
    c->base = base;
    c->caller_memory = true;
    c->usable_pages = std::uint32_t((end - base < chunk_bytes ? end - base : chunk_bytes) >> os::page_shift);
    c->free_pages = c->usable_pages;
    // Pages past the region's end are never free.
    assign_bits(c->used, c->usable_pages, chunk_pages - c->usable_pages, true);
    c->next = chunks_;
    chunks_ = c;
    stats_.mapped += std::size_t(c->usable_pages) << os::page_shift;
  }
  return true;
}

void page_runs::free_everything() noexcept {
  std::size_t dirty_total = 0;
  for (chunk* c = chunks_; c; c = c->next) {
    std::uint64_t was_used[chunk_pages / 64];
    for (unsigned w = 0; w < chunk_pages / 64; ++w) { was_used[w] = c->used[w]; c->used[w] = 0; }
    assign_bits(c->used, c->usable_pages, chunk_pages - c->usable_pages, true);   // the region's tail
    std::uint32_t dirty = 0;
    for (unsigned w = 0; w < chunk_pages / 64; ++w) {
      c->dirty[w] = (c->dirty[w] | was_used[w]) & ~c->used[w];   // what was in use is dirty now
      dirty += unsigned(std::popcount(c->dirty[w]));
    }
    if (dirty && !c->dirty_pages) c->dirty_since_ms = os::now_ms();
    c->dirty_pages = dirty;
    c->free_pages = c->usable_pages;
    dirty_total += std::size_t(dirty) << os::page_shift;
  }
  stats_.dirty = dirty_total;
  stats_.active = 0;
}

void page_runs::release_all() noexcept {
  while (chunk* c = chunks_) {
    chunks_ = c->next;
    if (!c->caller_memory) os::unmap(reinterpret_cast<void*>(c->base), chunk_bytes);
    chunk_pool_.release(c);
  }
  stats_ = page_run_stats{};
}

}  // namespace pcm
