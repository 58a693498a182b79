#include "stats.hpp"

#include "arena.hpp"
#include "base.hpp"

namespace pcm::stats {

void take(snapshot& out) noexcept {
  out = snapshot{};
  ensure_initialised();
  out.mode = current_cache_mode();
  out.arenas = arenas::count();
  out.cpus = os::cpu_count();
  for_each_cache([](const cache_set& set, void* context) {
    auto& s = *static_cast<snapshot*>(context);
    for (unsigned cls = first_class; cls < cache_bins; ++cls) {
      s.classes[cls].cache_hits += __atomic_load_n(&set.bins[cls].hits, __ATOMIC_RELAXED);
      s.classes[cls].frees += __atomic_load_n(&set.bins[cls].frees, __ATOMIC_RELAXED);
      s.classes[cls].cached_objects += __atomic_load_n(&set.bins[cls].count, __ATOMIC_RELAXED);
    }
  }, &out);
  std::uint64_t out_of_slabs[cache_bins] = {};
  for (unsigned i = 0; i < arenas::count(); ++i) {
    arena_core& a = arenas::get(i);
    for (unsigned cls = first_class; cls < cache_bins; ++cls) {
      bin& b = a.bins[cls];
      lock_guard guard(b.lock);
      out.classes[cls].slabs += b.stats.slabs;
      out.classes[cls].cached_objects += b.transfer_count;
      out_of_slabs[cls] += b.stats.objects_out - b.stats.objects_back;
    }
    lock_guard guard(a.page_lock);
    out.large_live_bytes += a.stats.large_active;
    out.large_count += a.stats.large_allocations - a.stats.large_frees;
    out.mapped_bytes += a.pages.stats().mapped;
    out.dirty_bytes += a.pages.stats().dirty;
    out.purged_bytes += a.pages.stats().purged_total;
  }
  for (unsigned cls = first_class; cls < cache_bins; ++cls) {
    class_snapshot& c = out.classes[cls];
    c.size = size_classes[cls].size;
    adjust_cache_counts(cls, c.cache_misses, c.frees);
    c.requests = c.cache_hits + c.cache_misses;
    c.slab_bytes = c.slabs * std::uint64_t(size_classes[cls].slab_pages) * os::page_size;
    c.live_objects = out_of_slabs[cls] > c.cached_objects ? out_of_slabs[cls] - c.cached_objects : 0;
    out.small_live_bytes += c.live_objects * c.size;
    out.small_slab_bytes += c.slab_bytes;
  }
  out.huge_live_bytes = huge_totals.active.load(std::memory_order_relaxed);
  out.huge_count = huge_totals.allocations.load(std::memory_order_relaxed) - huge_totals.frees.load(std::memory_order_relaxed);
  out.metadata_bytes = base::mapped_bytes();
  out.mapped_bytes += out.huge_live_bytes + out.metadata_bytes;
  out.resident_bytes = os::resident_bytes();
}

}  // namespace pcm::stats
