#include "explicit_arena.hpp"

#include <atomic>
#include <cerrno>

#include "base.hpp"
#include "options.hpp"
#include "report.hpp"

namespace pcm::explicit_arenas {
namespace {

base::pool<arena_core> cores;

// Per-CPU cache sets for explicit arenas, recycled whole (all have one size).
struct cache_block { cache_block* next; };
mutex blocks_lock;
cache_block* spare_blocks = nullptr;

// One set per possible CPU id (rseq indexes them by id, up to max_cpus).
cache_set* make_cpu_sets() {
  unsigned cpus = os::cpu_id_limit();
  std::size_t slots = detail::slots_per_cache_set();
  std::size_t bytes = std::size_t(cpus) * (sizeof(cache_set) + slots * sizeof(void*));
  void* memory = nullptr;
  {
    lock_guard guard(blocks_lock);
    if (spare_blocks) { memory = spare_blocks; spare_blocks = spare_blocks->next; }
  }
  if (!memory) memory = base::allocate(bytes);
  if (!memory) return nullptr;
  auto* sets = static_cast<cache_set*>(memory);
  auto* slot = reinterpret_cast<void**>(sets + cpus);
  for (unsigned cpu = 0; cpu < cpus; ++cpu) detail::set_up_bins(sets[cpu], slot + std::size_t(cpu) * slots);
  return sets;
}

void retire_cpu_sets(cache_set* sets) {
  auto* block = reinterpret_cast<cache_block*>(sets);
  lock_guard guard(blocks_lock);
  block->next = spare_blocks;
  spare_blocks = block;
}

// fork(): the pool of arena descriptors and the spare cache sets are locked
// across it like the core's locks (arenas::lock_for_fork takes each listed
// arena's own). Handed to the core at the first create(); they prepare before
// the core locks: both are leaf locks, never held while another is taken, so
// taking them first keeps every order.
void fork_prepare() {
  cores.lock().lock();
  blocks_lock.lock();
}
void fork_parent() {
  blocks_lock.unlock();
  cores.lock().unlock();
}
void fork_child() {
  blocks_lock.reset_after_fork();
  cores.lock().reset_after_fork();
}
std::atomic<bool> fork_handlers_registered{false};

char* usable_rseq_area(const arena_core& a) {
  if (!a.cpu_sets || current_cache_mode() != cache_mode::per_cpu) return nullptr;
  char* area = rseq::area(detail::rseq_offset);
  return rseq::current_cpu(area) >= 0 ? area : nullptr;
}

void* allocate_small(arena_core& a, unsigned cls) {
  void* p = nullptr;
  if (char* area = usable_rseq_area(a)) {
    p = rseq::pop(area, &a.cpu_sets[0].bins[cls]);
    if (!p) p = detail::cpu_refill(a.cpu_sets, area, a, cls);
  } else if (!a.refill(cls, &p, 1)) {
    p = nullptr;
  }
  return p ? free_marks::hand_out(p) : nullptr;
}

}  // namespace

arena_core* create(void* memory, std::size_t bytes) noexcept {
  ensure_initialised();
  if (!fork_handlers_registered.exchange(true)) add_fork_hooks(fork_prepare, fork_parent, fork_child);
  arena_core* a = cores.acquire();
  if (!a) return nullptr;
  a->is_explicit = true;
  a->index = ~0u;
  a->pages.huge_pages = config.huge_pages;
  if (memory) {
    a->pages.can_grow = false;
    if (!a->pages.add_region(memory, bytes)) { destroy(a); return nullptr; }
  }
  if (current_cache_mode() == cache_mode::per_cpu) a->cpu_sets = make_cpu_sets();
  arenas::add_explicit(a);   // decay sweeps and fork locks see it from now on
  return a;
}

void reset(arena_core* a) noexcept {
  if (a->cpu_sets)
    for (unsigned cpu = 0, n = os::cpu_id_limit(); cpu < n; ++cpu)
      for (unsigned cls = first_class; cls < cache_bins; ++cls) a->cpu_sets[cpu].bins[cls].count = 0;
  a->reset();
}

void destroy(arena_core* a) noexcept {
  arenas::remove_explicit(a);   // first: no decay sweep may visit it while it goes
  reset(a);
  a->pages.release_all();
  if (a->cpu_sets) retire_cpu_sets(a->cpu_sets);
  cores.release(a);
}

void* allocate(arena_core& a, std::size_t size, std::size_t alignment) noexcept {
  if (alignment == 0 || (alignment & (alignment - 1))) { errno = EINVAL; return nullptr; }
  if (size <= small_max && alignment <= os::page_size) {
    unsigned cls = alignment <= 16 ? size_to_class(size) : aligned_small_class(size, alignment);
    if (cls) {
      void* p = allocate_small(a, cls);
      if (!p) errno = ENOMEM;
      return p;
    }
  }
  void* p = nullptr;
  std::size_t pages_bytes = os::round_to_pages(size);
  // Runs up to a whole chunk stay inside the arena's own pages.
  if (pages_bytes >= size && pages_bytes + (alignment > os::page_size ? alignment : 0) <= chunk_bytes)
    p = a.allocate_large(size, alignment > os::page_size ? alignment : os::page_size, false);
  else if (a.pages.can_grow && size < (std::size_t(1) << 46))
    p = allocate_huge(size, alignment > os::page_size ? alignment : os::page_size, &a);
  if (!p) errno = ENOMEM;
  return p;
}

void deallocate(arena_core& a, void* p) noexcept {
  if (!p) return;
  page_entry e = page_map::lookup(p);
  slab* s = detail::checked_block("pcm::arena::deallocate", p, e);
  if (s->owner != &a) invalid_pointer("pcm::arena::deallocate", p, "belongs to another arena");
  unsigned cls = e.size_class();
  if (cls & page_entry::explicit_flag) return detail::explicit_free_small(a, cls & ~page_entry::explicit_flag, p);
  if (cls == page_entry::huge_class) free_huge(s);
  else a.free_large(s);
}

bool owns(const arena_core& a, const void* p) noexcept {
  return pcm::owns(p) && !detail::is_guarded(page_map::lookup(p)) && page_map::lookup(p).owner()->owner == &a;
}

arena_core* owner_of(const void* block) noexcept {
  page_entry e = page_map::lookup(block);
  if (e.size_class() == 0 || detail::is_guarded(e)) return nullptr;   // a guarded page's owner is null
  arena_core* a = e.owner()->owner;
  return a && a->is_explicit ? a : nullptr;
}

counters read(arena_core& a) noexcept {
  counters c;
  for (unsigned cls = first_class; cls < cache_bins; ++cls) {
    bin& b = a.bins[cls];
    lock_guard guard(b.lock);
    c.slabs += b.stats.slabs;
    c.slab_bytes += b.stats.slabs * std::uint64_t(size_classes[cls].slab_pages) * os::page_size;
    c.objects_out_of_slabs += b.stats.objects_out - b.stats.objects_back;
  }
  if (a.cpu_sets)
    for (unsigned cpu = 0, n = os::cpu_id_limit(); cpu < n; ++cpu)
      for (unsigned cls = first_class; cls < cache_bins; ++cls)
        c.cached_objects += __atomic_load_n(&a.cpu_sets[cpu].bins[cls].count, __ATOMIC_RELAXED);
  lock_guard guard(a.page_lock);
  c.large_bytes = a.stats.large_active;
  c.mapped_bytes = a.pages.stats().mapped;
  c.dirty_bytes = a.pages.stats().dirty;
  for (slab* s = a.huge_blocks.front(); s; s = s->next) { ++c.huge_blocks; c.large_bytes += s->bytes; }
  return c;
}

}  // namespace pcm::explicit_arenas

namespace pcm::detail {

void explicit_free_small(arena_core& owner, unsigned cls, void* p) noexcept {
  free_marks::take_back(p, "free");
  if (owner.cpu_sets && current_cache_mode() == cache_mode::per_cpu) {
    char* area = rseq::area(rseq_offset);
    if (rseq::current_cpu(area) >= 0) {
      if (!rseq::push(area, &owner.cpu_sets[0].bins[cls], p)) cpu_give_back(owner.cpu_sets, area, cls, p);
      return;
    }
  }
  free_to_slabs(&p, 1);
}

}  // namespace pcm::detail
