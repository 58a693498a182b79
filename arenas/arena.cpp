#include "arena.hpp"

#include <cstring>

#include "free_object.hpp"
#include "options.hpp"
#include "page_map.hpp"
#include "report.hpp"

namespace pcm {
namespace {

base::pool<slab> slab_descriptors;
arena_core* arena_table = nullptr;
unsigned arena_count = 0;
std::atomic<unsigned> next_arena{0};
__thread unsigned thread_arena __attribute__((tls_model("initial-exec"))) = 0;  // index + 1
std::atomic<std::uint64_t> next_decay_tick{0};
// Live explicit arenas. Taken before any arena's own lock (decay sweeps, fork).
mutex explicit_lock;
arena_core* explicit_list = nullptr;

constexpr std::uint32_t pages_for(std::size_t bytes) {
  return std::uint32_t(os::round_to_pages(bytes) >> os::page_shift);
}

// Hand out up to `count` objects from one slab: recycled ones first, then the
// never-touched tail (bump), which keeps fresh pages untouched until needed.
unsigned take_from_slab(slab& s, void** out, unsigned count) {
  unsigned n = 0;
  while (n < count && s.free_list) {
    void* object = s.free_list;
    s.free_list = free_object::unlink(object, s.start, s.size_class);
    out[n++] = object;
  }
  const std::uint32_t size = size_classes[s.size_class].size;
  while (n < count && s.bump < s.capacity) {
    void* object = reinterpret_cast<void*>(s.start + std::uintptr_t(s.bump++) * size);
    if (config.hardened) std::memset(object, 0, size);   // hardened.hpp: a free block reads as zero
    free_marks::mark(object);
    out[n++] = object;
  }
  s.used += n;
  return n;
}

void release_slab_pages(arena_core& a, slab* s) {
  page_map::clear(reinterpret_cast<void*>(s->start), s->pages);
  {
    lock_guard guard(a.page_lock);
    a.pages.release(page_run{s->home, s->first_page, s->pages, false}, os::now_ms());
  }
  slab_descriptors.release(s);
}

}  // namespace

huge_stats huge_totals;

slab* arena_core::new_slab(unsigned cls) noexcept {
  const size_class_info& info = size_classes[cls];
  page_run run;
  {
    lock_guard guard(page_lock);
    if (!pages.allocate(info.slab_pages, 1, &run)) return nullptr;
  }
  slab* s = slab_descriptors.acquire();
  const unsigned entry_class = is_explicit ? cls | page_entry::explicit_flag : cls;
  if (!s || !page_map::set(run.address(), run.pages, page_entry::make(s, entry_class, 0), false)) {
    if (s) {   // the pages entered before a leaf failed must not name a freed descriptor
      page_map::clear(run.address(), run.pages);
      slab_descriptors.release(s);
    }
    lock_guard guard(page_lock);
    pages.release(run, os::now_ms());
    return nullptr;
  }
  s->start = reinterpret_cast<std::uintptr_t>(run.address());
  s->bytes = std::size_t(run.pages) << os::page_shift;
  s->capacity = info.objects;
  s->size_class = std::uint16_t(cls);
  s->owner = this;
  s->home = run.home;
  s->first_page = run.first;
  s->pages = run.pages;
  ++bins[cls].stats.slabs;
  return s;
}

unsigned arena_core::refill(unsigned cls, void** out, unsigned count) noexcept {
  bin& b = bins[cls];
  lock_guard guard(b.lock);
  unsigned n = 0;
  if (b.transfer_count) {
    n = count < b.transfer_count ? count : b.transfer_count;
    b.transfer_count -= n;
    std::memcpy(out, b.transfer + b.transfer_count, n * sizeof(void*));
    b.transfer_used = true;
  }
  // Objects from the transfer stack never went back to their slabs (stash()
  // counts nothing): only those taken from slabs leave them now.
  const unsigned from_transfer = n;
  while (n < count) {
    if (!b.current || b.current->full()) {
      if (!b.partial.empty()) {
        b.current = b.partial.front();
        b.partial.remove(b.current);
        b.current->in_partial_list = false;
      } else if (b.spare) {
        b.current = b.spare;
        b.spare = nullptr;
      } else {
        b.current = new_slab(cls);
        if (!b.current) break;
      }
    }
    n += take_from_slab(*b.current, out + n, count - n);
  }
  b.stats.refills += 1;
  b.stats.objects_out += n - from_transfer;
  return n;
}

unsigned arena_core::stash(unsigned cls, void* const* objects, unsigned count) noexcept {
  bin& b = bins[cls];
  if (b.transfer_capacity == 0) return 0;
  lock_guard guard(b.lock);
  unsigned room = b.transfer_capacity - b.transfer_count;
  unsigned n = count < room ? count : room;
  std::memcpy(b.transfer + b.transfer_count, objects, n * sizeof(void*));
  b.transfer_count += n;
  b.transfer_used = true;
  return n;
}

void arena_core::flush_transfers(bool only_idle) noexcept {
  for (unsigned cls = first_class; cls < first_class + small_class_count; ++cls) {
    bin& b = bins[cls];
    if (b.transfer_capacity == 0) continue;
    while (true) {
      // Copy out under the lock, free outside it: free_to_slabs takes other
      // arenas' bin locks, and two bin locks are never held at once.
      void* batch[64];
      unsigned n;
      if (!b.lock.try_lock()) break;
      if (only_idle && b.transfer_used) { b.transfer_used = false; b.lock.unlock(); break; }
      n = b.transfer_count < 64 ? b.transfer_count : 64;
      b.transfer_count -= n;
      std::memcpy(batch, b.transfer + b.transfer_count, n * sizeof(void*));
      b.lock.unlock();
      if (n == 0) break;
      free_to_slabs(batch, n);
    }
  }
}

// Put one object back on its slab; move the slab between the bin's lists as
// it stops being full or becomes empty. REQUIRES: b.lock held.
void return_to_slab(arena_core& a, bin& b, slab* owner, void* object) {
  // Written while it sat in a cache or transfer stack: caught here.
  if (!free_marks::is_marked(object)) [[unlikely]] free_marks::written_after_free("free", object);
  free_object::link(object, owner->free_list);
  owner->free_list = object;
  --owner->used;
  ++b.stats.objects_back;
  if (owner == b.current) return;
  if (owner->empty()) {
    if (owner->in_partial_list) b.partial.remove(owner);
    owner->in_partial_list = false;
    if (!b.spare) {
      // Keep one empty slab whole, as if new, to damp create/destroy churn.
      owner->free_list = nullptr;
      owner->bump = 0;
      b.spare = owner;
      return;
    }
    --b.stats.slabs;
    release_slab_pages(a, owner);
  } else if (!owner->in_partial_list) {
    b.partial.push_front(owner);
    owner->in_partial_list = true;
  }
}

void free_to_slabs(void* const* objects, unsigned count) noexcept {
  if (count == 0) return;
  unsigned i = 0;
  slab* owner = page_map::lookup(objects[0]).owner();
  while (i < count) {
    arena_core& a = *owner->owner;
    const unsigned cls = owner->size_class;
    bin& b = a.bins[cls];
    lock_guard guard(b.lock);
    // Objects of one bin usually come in runs: take them under one lock.
    while (true) {
      return_to_slab(a, b, owner, objects[i]);
      if (++i == count) break;
      owner = page_map::lookup(objects[i]).owner();
      if (owner->owner != &a || owner->size_class != cls) break;
    }
  }
}

void* arena_core::allocate_large(std::size_t size, std::size_t alignment, bool zero) noexcept {
  // A zero-byte request (aligned beyond a page) still takes a page: a run of
  // none would share its address, and its page-map entry, with a live block.
  std::uint32_t npages = size ? pages_for(size) : 1;
  std::uint32_t align_pages = alignment > os::page_size ? std::uint32_t(alignment >> os::page_shift) : 1;
  page_run run;
  slab* s = slab_descriptors.acquire();
  if (!s) return nullptr;
  {
    lock_guard guard(page_lock);
    if (!pages.allocate(npages, align_pages, &run)) { slab_descriptors.release(s); return nullptr; }
    stats.large_allocations++;
    stats.large_active += std::size_t(npages) << os::page_shift;
  }
  s->start = reinterpret_cast<std::uintptr_t>(run.address());
  s->bytes = std::size_t(npages) << os::page_shift;
  s->capacity = 1;
  s->used = 1;
  s->size_class = std::uint16_t(size_to_class(size <= small_max ? small_max + 1 : size));
  s->owner = this;
  s->home = run.home;
  s->first_page = run.first;
  s->pages = npages;
  s->requested = size;
  if (!page_map::set_one(run.address(), page_entry::make(s, s->size_class, 0))) {
    free_large(s);
    return nullptr;
  }
  if (zero && !run.zeroed) std::memset(run.address(), 0, s->bytes);
  return run.address();
}

void arena_core::free_large(slab* s) noexcept {
  page_map::clear(reinterpret_cast<void*>(s->start), 1);
  {
    lock_guard guard(page_lock);
    pages.release(page_run{s->home, s->first_page, s->pages, false}, os::now_ms());
    stats.large_frees++;
    stats.large_active -= s->bytes;
    if (config.decay_ms == 0) pages.purge(0, 0);
  }
  slab_descriptors.release(s);
}

bool arena_core::resize_large_in_place(slab* s, std::size_t new_size) noexcept {
  std::uint32_t npages = pages_for(new_size);
  if (npages == s->pages) return true;
  lock_guard guard(page_lock);
  page_run run{s->home, s->first_page, s->pages, false};
  if (npages > s->pages) {
    if (!pages.grow_in_place(run, npages)) return false;
  } else {
    pages.shrink_in_place(run, npages, os::now_ms());
  }
  stats.large_active += std::size_t(npages) << os::page_shift;
  stats.large_active -= s->bytes;
  s->pages = npages;
  s->bytes = std::size_t(npages) << os::page_shift;
  s->requested = new_size;
  return true;
}

void arena_core::reset() noexcept {
  // Under page_lock: a decay sweep may purge this arena's pages meanwhile.
  page_lock.lock();
  pages.for_each_chunk([](const chunk& c) {
    for (std::uint32_t i = 0; i < c.usable_pages; ++i) {
      if (!((c.used[i >> 6] >> (i & 63)) & 1)) continue;
      void* page = reinterpret_cast<void*>(c.base + (std::uintptr_t(i) << os::page_shift));
      page_entry e = page_map::lookup(page);
      if (!e.bits) continue;   // inside a large run: only its first page is entered
      // A slab's or run's first page has offset 0: release its descriptor once.
      if (e.page_offset() == 0) slab_descriptors.release(e.owner());
      page_map::clear(page, 1);
    }
  });
  pages.free_everything();
  page_lock.unlock();
  while (slab* block = huge_blocks.front()) free_huge(block);   // takes page_lock itself
  for (bin& b : bins) {
    b.transfer_count = 0;
    b.current = nullptr;
    b.partial.reset();
    b.spare = nullptr;
    b.stats = bin_stats{};
  }
  stats = arena_stats{};
}

std::size_t arena_core::purge(std::uint64_t now_ms, std::uint64_t decay_ms) noexcept {
  return pages.purge(now_ms, decay_ms);
}

// --- Freed huge mappings, kept for reuse ------------------------------------
// A freed huge block keeps its mapping, pages resident, for up to decay_ms
// (the same delay as arena pages), so the next huge request or realloc growth
// reuses pages already faulted in instead of faulting every 4 KiB of a fresh
// mapping again (a fault costs 10-20x a 4 KiB copy on a VM). An entry is
// always a range of one kernel mapping: ranges are split (a block takes a
// head, the tail stays here) but never joined, and nothing is moved over
// them, so every block stays one mapping that mremap accepts.
// Bounded: at most huge_cache_slots entries and huge_cache_max_bytes (16 MiB:
// large_blocks kept 100 MB peak RSS with it, against glibc's 114 MB; 32 MiB
// took 123 MB for no gain in time); the oldest go first. decay_tick unmaps entries older than decay_ms, pcm_purge
// all of them, and a mapping refused by the OS or limit_bytes empties the
// cache and is tried once more. decay_ms 0 keeps nothing.
// Synchronisation: huge_cache_lock guards the table; no OS call under it.
namespace {

struct cached_range {
  std::uintptr_t start;
  std::size_t bytes;
  std::uint64_t freed_ms;
};
constexpr unsigned huge_cache_slots = 16;
constexpr std::size_t huge_cache_max_bytes = std::size_t(16) << 20;
// A tail this long (or longer) beyond a request goes back to the cache; a
// shorter one stays with the block (at most this much resident slack).
constexpr std::size_t huge_split_bytes = large_max;
// Huge blocks are whole 2 MiB steps on 2 MiB boundaries and asked for
// transparent huge pages (MADV_HUGEPAGE; the kernel's default "madvise" mode
// gives them only when asked): one fault per 2 MiB instead of 512, which is
// most of the cost of a fresh block. Kept ranges then split on 2 MiB
// boundaries too. At most one partly used 2 MiB page per block.
constexpr std::size_t huge_page_bytes = std::size_t(2) << 20;

std::size_t huge_round(std::size_t bytes) {
  if (bytes < huge_page_bytes) return bytes;
  std::size_t rounded = (bytes + huge_page_bytes - 1) & ~(huge_page_bytes - 1);
  return rounded < bytes ? bytes : rounded;
}

mutex huge_cache_lock;
cached_range huge_cache[huge_cache_slots];
unsigned huge_cache_count = 0;
std::size_t huge_cache_bytes = 0;

void cache_remove(unsigned i) {
  huge_cache_bytes -= huge_cache[i].bytes;
  huge_cache[i] = huge_cache[--huge_cache_count];
}

// REQUIRES: huge_cache_lock held. Room for `bytes` more; evicted ranges go to
// `out` (at most huge_cache_slots) for the caller to unmap after unlocking.
unsigned cache_make_room(std::size_t bytes, cached_range* out) {
  unsigned evicted = 0;
  while (huge_cache_count && (huge_cache_count == huge_cache_slots || huge_cache_bytes + bytes > huge_cache_max_bytes)) {
    unsigned oldest = 0;
    for (unsigned i = 1; i < huge_cache_count; ++i)
      if (huge_cache[i].freed_ms < huge_cache[oldest].freed_ms) oldest = i;
    out[evicted++] = huge_cache[oldest];
    cache_remove(oldest);
  }
  return evicted;
}

void unmap_ranges(const cached_range* ranges, unsigned count) {
  for (unsigned i = 0; i < count; ++i) os::unmap(reinterpret_cast<void*>(ranges[i].start), ranges[i].bytes);
}

// Keep [start, start + bytes) for reuse, or unmap it.
void cache_put(std::uintptr_t start, std::size_t bytes, std::uint64_t freed_ms) {
  // Hardened mode gives the speed back for safety: a freed huge block is
  // unmapped, so a use after free faults at the access (hardened.hpp).
  if (config.decay_ms == 0 || bytes > huge_cache_max_bytes || config.hardened) {
    os::unmap(reinterpret_cast<void*>(start), bytes);
    return;
  }
  cached_range evicted[huge_cache_slots];
  unsigned count;
  {
    lock_guard guard(huge_cache_lock);
    count = cache_make_room(bytes, evicted);
    huge_cache[huge_cache_count++] = cached_range{start, bytes, freed_ms};
    huge_cache_bytes += bytes;
  }
  unmap_ranges(evicted, count);
}

// The smallest cached range of at least `bytes` starting at a multiple of
// `alignment`; with `or_smaller`, else the largest smaller one (to be grown by
// mremap, which keeps its pages). {0} when none.
cached_range cache_take(std::size_t bytes, std::size_t alignment, bool or_smaller) {
  lock_guard guard(huge_cache_lock);
  int fit = -1, below = -1;
  for (unsigned i = 0; i < huge_cache_count; ++i) {
    const cached_range& r = huge_cache[i];
    if (r.start & (alignment - 1)) continue;
    if (r.bytes >= bytes) {
      if (fit < 0 || r.bytes < huge_cache[fit].bytes) fit = int(i);
    } else if (below < 0 || r.bytes > huge_cache[below].bytes) {
      below = int(i);
    }
  }
  int chosen = fit >= 0 ? fit : or_smaller ? below : -1;
  if (chosen < 0) return cached_range{0, 0, 0};
  cached_range r = huge_cache[chosen];
  cache_remove(unsigned(chosen));
  return r;
}

// Gives a range's tail beyond `keep` bytes back to the cache when it is long
// enough to serve another block; returns the bytes the block keeps.
std::size_t split_tail(std::uintptr_t start, std::size_t bytes, std::size_t keep, std::uint64_t freed_ms) {
  if (bytes - keep < huge_split_bytes) return bytes;
  cache_put(start + keep, bytes - keep, freed_ms);
  return keep;
}

// Maps `bytes` for a huge block; when refused, unmaps every cached range and
// tries once more.
void* map_fresh(std::size_t bytes, std::size_t alignment) {
  if (bytes >= huge_page_bytes && alignment < huge_page_bytes) alignment = huge_page_bytes;
  void* p = os::map(bytes, alignment);
  if (!p && release_cached_huge(0, true)) p = os::map(bytes, alignment);
  if (p && bytes >= huge_page_bytes) os::hint_huge_pages(p, bytes, true);
  return p;
}

}  // namespace

std::size_t release_cached_huge(std::uint64_t decay_ms, bool all) noexcept {
  cached_range expired[huge_cache_slots];
  unsigned count = 0;
  std::size_t bytes = 0;
  const std::uint64_t now = os::now_ms();
  {
    lock_guard guard(huge_cache_lock);
    for (unsigned i = 0; i < huge_cache_count;) {
      if (all || now - huge_cache[i].freed_ms >= decay_ms) {
        bytes += huge_cache[i].bytes;
        expired[count++] = huge_cache[i];
        cache_remove(i);
      } else {
        ++i;
      }
    }
  }
  unmap_ranges(expired, count);
  return bytes;
}

std::size_t cached_huge_bytes() noexcept {
  lock_guard guard(huge_cache_lock);
  return huge_cache_bytes;
}

void* allocate_huge(std::size_t size, std::size_t alignment, arena_core* owner, bool zero) noexcept {
  std::size_t bytes = os::round_to_pages(size);
  if (bytes < size) return nullptr;
  if (bytes == 0) bytes = os::page_size;   // a mapping of zero bytes would be no block at all
  bytes = huge_round(bytes);
  slab* s = slab_descriptors.acquire();
  if (!s) return nullptr;
  const std::size_t align = alignment > os::page_size ? alignment : os::page_size;
  // Growing a smaller range may move it, which would lose a larger alignment.
  cached_range reused = cache_take(bytes, align, align == os::page_size);
  void* memory = nullptr;
  std::size_t mapped = bytes;
  if (reused.start) {
    void* old = reinterpret_cast<void*>(reused.start);
    if (reused.bytes >= bytes) {
      memory = old;
      mapped = split_tail(reused.start, reused.bytes, bytes, reused.freed_ms);
    } else if (!(memory = os::remap(old, reused.bytes, bytes))) {
      os::unmap(old, reused.bytes);
    }
    // Old pages hold old data; pages mremap added are fresh (zero).
    if (memory && zero) std::memset(memory, 0, reused.bytes < size ? reused.bytes : size);
  }
  if (!memory) {
    memory = map_fresh(bytes, align);
    mapped = bytes;
  }
  if (!memory) { slab_descriptors.release(s); return nullptr; }
  s->start = reinterpret_cast<std::uintptr_t>(memory);
  s->bytes = mapped;
  s->capacity = 1;
  s->used = 1;
  s->requested = size;
  if (!page_map::set_one(memory, page_entry::make(s, page_entry::huge_class, 0))) {
    os::unmap(memory, mapped);
    slab_descriptors.release(s);
    return nullptr;
  }
  huge_totals.allocations.fetch_add(1, std::memory_order_relaxed);
  huge_totals.active.fetch_add(mapped, std::memory_order_relaxed);
  if (owner) {
    s->owner = owner;
    lock_guard guard(owner->page_lock);
    owner->huge_blocks.push_front(s);
  }
  return memory;
}

void free_huge(slab* s) noexcept {
  if (s->owner) {
    lock_guard guard(s->owner->page_lock);
    s->owner->huge_blocks.remove(s);
  }
  page_map::clear(reinterpret_cast<void*>(s->start), 1);
  cache_put(s->start, s->bytes, os::now_ms());
  huge_totals.frees.fetch_add(1, std::memory_order_relaxed);
  huge_totals.active.fetch_sub(s->bytes, std::memory_order_relaxed);
  slab_descriptors.release(s);
}

void* reallocate_huge(slab* s, std::size_t new_size) noexcept {
  std::size_t bytes = os::round_to_pages(new_size);
  if (bytes < new_size) return nullptr;
  bytes = huge_round(bytes);
  void* old = reinterpret_cast<void*>(s->start);
  if (bytes <= s->bytes) {
    // Shrinking, or growing within slack, never moves (the page-map entry
    // stays); a long enough tail goes to the cache without a system call.
    std::size_t kept = split_tail(s->start, s->bytes, bytes, os::now_ms());
    huge_totals.active.fetch_sub(s->bytes - kept, std::memory_order_relaxed);
    s->bytes = kept;
    s->requested = new_size;
    return old;
  }
  const page_entry entry = page_map::lookup(old);
  // A cached range that fits: copy into its resident pages (a copy costs far
  // less than faulting the new pages in), and cache the old range.
  cached_range reused = cache_take(bytes, os::page_size, false);
  if (reused.start) {
    void* now = reinterpret_cast<void*>(reused.start);
    if (!page_map::set_one(now, entry)) {
      cache_put(reused.start, reused.bytes, reused.freed_ms);
      return nullptr;
    }
    std::memcpy(now, old, s->bytes);
    std::size_t mapped = split_tail(reused.start, reused.bytes, bytes, reused.freed_ms);
    page_map::clear(old, 1);   // before the range can be handed out again
    cache_put(s->start, s->bytes, os::now_ms());
    huge_totals.active.fetch_add(mapped - s->bytes, std::memory_order_relaxed);
    s->start = reused.start;
    s->bytes = mapped;
    s->requested = new_size;
    return now;
  }
  // Otherwise the pages move into a mapping entered in the page map first: its
  // place may need a page-map leaf that cannot be had (no address space left),
  // and that must fail the realloc, not leave the block missing from the map.
  void* now = map_fresh(bytes, os::page_size);
  if (!now) return nullptr;
  if (!page_map::set_one(now, entry)) { os::unmap(now, bytes); return nullptr; }
  // Cleared before the move: once the pages have moved, another thread may
  // map `old` again and enter it, and a later clear would erase its entry.
  page_map::clear(old, 1);
  if (!os::move_mapping(old, s->bytes, now, bytes)) {
    page_map::clear(now, 1);
    os::unmap(now, bytes);
    page_map::set_one(old, entry);   // still ours, untouched
    return nullptr;
  }
  huge_totals.active.fetch_add(bytes - s->bytes, std::memory_order_relaxed);
  s->start = reinterpret_cast<std::uintptr_t>(now);
  s->bytes = bytes;
  s->requested = new_size;
  return now;
}

namespace arenas {

// Objects a transfer stack holds: up to 64 KiB of them, at least 4 and at most
// 1024 (16-64 B classes: 1024; 256 B: 256; 4 KiB: 16; 32 KiB: 4). Enough for
// a burst of a few thousand blocks to cycle without touching slabs; little
// memory where classes are big. Idle stacks go home at the next decay tick.
std::uint32_t transfer_capacity(unsigned cls) {
  std::uint32_t n = (64u << 10) / size_classes[cls].size;
  return n < 4 ? 4 : n > 1024 ? 1024 : n;
}

void init(unsigned count) noexcept {
  arena_count = count;
  void* memory = base::allocate(sizeof(arena_core) * count);
  if (!memory) fatal("cannot map memory for %u arenas", count);
  arena_table = static_cast<arena_core*>(memory);
  std::size_t slots = 0;
  for (unsigned cls = first_class; cls < first_class + small_class_count; ++cls) slots += transfer_capacity(cls);
  for (unsigned i = 0; i < count; ++i) {
    new (&arena_table[i]) arena_core();
    arena_table[i].index = i;
    arena_table[i].pages.huge_pages = config.huge_pages;
    // Untouched until used: base memory is mapped, not committed.
    auto* slot = static_cast<void**>(base::allocate(slots * sizeof(void*)));
    if (!slot) continue;   // this arena works without transfer stacks
    for (unsigned cls = first_class; cls < first_class + small_class_count; ++cls) {
      arena_table[i].bins[cls].transfer = slot;
      arena_table[i].bins[cls].transfer_capacity = transfer_capacity(cls);
      slot += transfer_capacity(cls);
    }
  }
}

unsigned count() noexcept { return arena_count; }
arena_core& get(unsigned index) noexcept { return arena_table[index]; }

arena_core& for_this_thread() noexcept {
  if (thread_arena == 0) [[unlikely]]
    thread_arena = next_arena.fetch_add(1, std::memory_order_relaxed) % arena_count + 1;
  return arena_table[thread_arena - 1];
}

void decay_tick(bool force) noexcept {
  std::uint64_t now = os::now_ms();
  std::uint64_t due = next_decay_tick.load(std::memory_order_relaxed);
  if (!force && now < due) return;
  std::uint64_t step = config.decay_ms / 4 + 1;
  if (!force && !next_decay_tick.compare_exchange_strong(due, now + step, std::memory_order_relaxed)) return;
  // Transfer stacks first, all of them: a stack sends objects home to any
  // arena, and a slab it empties must find its arena not yet purged.
  for (unsigned i = 0; i < arena_count; ++i) arena_table[i].flush_transfers(!force);
  now = os::now_ms();   // the flush stamped the pages it freed: an older `now` would read as decay long past
  auto purge_one = [now, force](arena_core& a) {
    if (force) a.page_lock.lock();
    else if (!a.page_lock.try_lock()) return;
    a.purge(now, force ? 0 : config.decay_ms);
    a.page_lock.unlock();
  };
  for (unsigned i = 0; i < arena_count; ++i) purge_one(arena_table[i]);
  release_cached_huge(config.decay_ms, force);
  if (force) explicit_lock.lock();
  else if (!explicit_lock.try_lock()) return;
  for (arena_core* a = explicit_list; a; a = a->next_explicit) purge_one(*a);
  explicit_lock.unlock();
}

void add_explicit(arena_core* a) noexcept {
  lock_guard guard(explicit_lock);
  a->prev_explicit = nullptr;
  a->next_explicit = explicit_list;
  if (explicit_list) explicit_list->prev_explicit = a;
  explicit_list = a;
}

void remove_explicit(arena_core* a) noexcept {
  lock_guard guard(explicit_lock);
  if (a->prev_explicit) a->prev_explicit->next_explicit = a->next_explicit;
  else if (explicit_list == a) explicit_list = a->next_explicit;
  if (a->next_explicit) a->next_explicit->prev_explicit = a->prev_explicit;
  a->next_explicit = a->prev_explicit = nullptr;
}

// Order matches the allocation paths: each arena's bins, then its page lock;
// descriptor pools, then base metadata innermost.
void lock_for_fork() noexcept {
  explicit_lock.lock();
  auto lock_arena = [](arena_core& a) {
    for (auto& b : a.bins) b.lock.lock();
    a.page_lock.lock();
  };
  for (unsigned i = 0; i < arena_count; ++i) lock_arena(arena_table[i]);
  for (arena_core* a = explicit_list; a; a = a->next_explicit) lock_arena(*a);
  huge_cache_lock.lock();
  slab_descriptors.lock().lock();
}

void unlock_after_fork(bool child) noexcept {
  auto release = [child](mutex& m) { if (child) m.reset_after_fork(); else m.unlock(); };
  auto release_arena = [&release](arena_core& a) {
    for (auto& b : a.bins) release(b.lock);
    release(a.page_lock);
  };
  for (unsigned i = 0; i < arena_count; ++i) release_arena(arena_table[i]);
  for (arena_core* a = explicit_list; a; a = a->next_explicit) release_arena(*a);
  release(slab_descriptors.lock());
  release(huge_cache_lock);
  release(explicit_lock);
}

}  // namespace arenas
}  // namespace pcm
