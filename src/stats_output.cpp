// Statistics front end: the pcm_stats struct API, and the same figures as
// text, JSON or Prometheus exposition, written without touching the heap (a
// stack buffer flushed to a file descriptor or copied into the caller's buffer).
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include "options.hpp"
#include "pcmalloc/pcmalloc.h"
#include "stats.hpp"
#include "text_writer.hpp"

namespace {

using pcm::text_writer;
using ull = unsigned long long;
double ratio(std::uint64_t part, std::uint64_t whole) { return whole ? double(part) / double(whole) : 0.0; }
// 1 - live / held; no memory held is no fragmentation.
double fragmentation(std::uint64_t live, std::uint64_t held) { return held ? 1.0 - double(live) / double(held) : 0.0; }
double mib(std::uint64_t bytes) { return double(bytes) / (1024.0 * 1024.0); }

void write_text(text_writer& w, const pcm::stats::snapshot& s) {
  w.put("pcmalloc statistics: cache mode %s, %u arenas, %u cpus\n", pcm::cache_mode_name(), s.arenas, s.cpus);
  w.put("  resident %.1f MiB, mapped %.1f MiB, metadata %.1f MiB, dirty %.1f MiB, purged %.1f MiB (total)\n",
        mib(s.resident_bytes), mib(s.mapped_bytes), mib(s.metadata_bytes), mib(s.dirty_bytes), mib(s.purged_bytes));
  w.put("  small: %.2f MiB live in %.2f MiB of slabs (fragmentation %.1f%%); large: %llu blocks, %.2f MiB; huge: %llu blocks, %.2f MiB\n",
        mib(s.small_live_bytes), mib(s.small_slab_bytes), 100.0 * fragmentation(s.small_live_bytes, s.small_slab_bytes),
        ull(s.large_count), mib(s.large_live_bytes), ull(s.huge_count), mib(s.huge_live_bytes));
  w.put("  %8s %12s %8s %10s %12s %6s %10s %10s %8s %6s\n", "size", "requests", "hit%", "misses", "frees",
        "slabs", "slab KiB", "live", "cached", "frag%");
  for (unsigned cls = pcm::first_class; cls < pcm::cache_bins; ++cls) {
    const auto& c = s.classes[cls];
    if (!c.requests && !c.slabs) continue;
    w.put("  %8zu %12llu %8.2f %10llu %12llu %6llu %10llu %10llu %8llu %6.1f\n", c.size, ull(c.requests),
          100.0 * ratio(c.cache_hits, c.requests), ull(c.cache_misses), ull(c.frees), ull(c.slabs),
          ull(c.slab_bytes / 1024), ull(c.live_objects), ull(c.cached_objects),
          100.0 * fragmentation(c.live_objects * c.size, c.slab_bytes));
  }
}

void write_json(text_writer& w, const pcm::stats::snapshot& s) {
  w.put("{\"cache_mode\":\"%s\",\"arenas\":%u,\"cpus\":%u,", pcm::cache_mode_name(), s.arenas, s.cpus);
  w.put("\"resident_bytes\":%llu,\"mapped_bytes\":%llu,\"metadata_bytes\":%llu,\"dirty_bytes\":%llu,\"purged_bytes\":%llu,",
        ull(s.resident_bytes), ull(s.mapped_bytes), ull(s.metadata_bytes), ull(s.dirty_bytes), ull(s.purged_bytes));
  w.put("\"small_live_bytes\":%llu,\"small_slab_bytes\":%llu,\"large_live_bytes\":%llu,\"large_count\":%llu,"
        "\"huge_live_bytes\":%llu,\"huge_count\":%llu,\"classes\":[",
        ull(s.small_live_bytes), ull(s.small_slab_bytes), ull(s.large_live_bytes), ull(s.large_count),
        ull(s.huge_live_bytes), ull(s.huge_count));
  for (unsigned cls = pcm::first_class; cls < pcm::cache_bins; ++cls) {
    const auto& c = s.classes[cls];
    w.put("%s{\"size\":%zu,\"requests\":%llu,\"cache_hits\":%llu,\"cache_misses\":%llu,\"frees\":%llu,"
          "\"slabs\":%llu,\"slab_bytes\":%llu,\"live_objects\":%llu,\"cached_objects\":%llu}",
          cls == pcm::first_class ? "" : ",", c.size, ull(c.requests), ull(c.cache_hits), ull(c.cache_misses),
          ull(c.frees), ull(c.slabs), ull(c.slab_bytes), ull(c.live_objects), ull(c.cached_objects));
  }
  w.put("]}\n");
}

void write_prometheus(text_writer& w, const pcm::stats::snapshot& s) {
  struct metric { const char* name; const char* type; const char* help; std::uint64_t pcm::stats::class_snapshot::*field; };
  static constexpr metric per_class[] = {
      {"pcmalloc_requests_total", "counter", "Allocations per size class.", &pcm::stats::class_snapshot::requests},
      {"pcmalloc_cache_hits_total", "counter", "Allocations served by a CPU or thread cache.", &pcm::stats::class_snapshot::cache_hits},
      {"pcmalloc_cache_misses_total", "counter", "Allocations that went to an arena.", &pcm::stats::class_snapshot::cache_misses},
      {"pcmalloc_frees_total", "counter", "Frees per size class.", &pcm::stats::class_snapshot::frees},
      {"pcmalloc_slabs", "gauge", "Slabs held per size class.", &pcm::stats::class_snapshot::slabs},
      {"pcmalloc_slab_bytes", "gauge", "Bytes of slabs per size class.", &pcm::stats::class_snapshot::slab_bytes},
      {"pcmalloc_live_objects", "gauge", "Objects in use per size class.", &pcm::stats::class_snapshot::live_objects},
      {"pcmalloc_cached_objects", "gauge", "Free objects waiting in caches per size class.", &pcm::stats::class_snapshot::cached_objects},
  };
  for (const metric& m : per_class) {
    w.put("# HELP %s %s\n# TYPE %s %s\n", m.name, m.help, m.name, m.type);
    for (unsigned cls = pcm::first_class; cls < pcm::cache_bins; ++cls)
      w.put("%s{size=\"%zu\"} %llu\n", m.name, s.classes[cls].size, ull(s.classes[cls].*m.field));
  }
  struct total { const char* name; const char* help; std::uint64_t value; };
  const total totals[] = {
      {"pcmalloc_resident_bytes", "Resident set size of the process.", s.resident_bytes},
      {"pcmalloc_mapped_bytes", "Bytes mapped by the allocator.", s.mapped_bytes},
      {"pcmalloc_metadata_bytes", "Bytes of allocator metadata.", s.metadata_bytes},
      {"pcmalloc_dirty_bytes", "Free pages not yet returned to the OS.", s.dirty_bytes},
      {"pcmalloc_purged_bytes_total", "Bytes returned to the OS by purging.", s.purged_bytes},
      {"pcmalloc_small_live_bytes", "Bytes of small objects in use.", s.small_live_bytes},
      {"pcmalloc_small_slab_bytes", "Bytes of slabs holding small objects.", s.small_slab_bytes},
      {"pcmalloc_large_live_bytes", "Bytes of large blocks in use.", s.large_live_bytes},
      {"pcmalloc_huge_live_bytes", "Bytes of huge blocks in use.", s.huge_live_bytes},
  };
  for (const total& t : totals)
    w.put("# HELP %s %s\n# TYPE %s %s\n%s %llu\n", t.name, t.help, t.name,
          std::strstr(t.name, "_total") ? "counter" : "gauge", t.name, ull(t.value));
  w.put("# HELP pcmalloc_cache_mode Which front cache runs (1 for the active mode).\n# TYPE pcmalloc_cache_mode gauge\n");
  w.put("pcmalloc_cache_mode{mode=\"per-cpu\"} %d\npcmalloc_cache_mode{mode=\"per-thread\"} %d\n",
        s.mode == pcm::cache_mode::per_cpu, s.mode != pcm::cache_mode::per_cpu);
}

void write_any(text_writer& w, int format) {
  pcm::stats::snapshot s;
  pcm::stats::take(s);
  if (format == PCM_STATS_JSON) write_json(w, s);
  else if (format == PCM_STATS_PROMETHEUS) write_prometheus(w, s);
  else write_text(w, s);
}

// PCMALLOC_CONF=stats_print:true prints at exit (after the program's own
// destructors), to stderr as it was at start-up (os::kept_output says why).
pcm::os::kept_output exit_output;

__attribute__((constructor)) void prepare_exit_report() {
  pcm::ensure_initialised();
  if (pcm::config.stats_print || pcm::config.stats_json) exit_output.keep();
}

__attribute__((destructor)) void print_at_exit() {
  if (exit_output.kept()) pcm_stats_write(exit_output.fd(), pcm::config.stats_json ? PCM_STATS_JSON : PCM_STATS_TEXT);
}

}  // namespace

extern "C" {

void pcm_stats_get(pcm_stats* out) {
  pcm::stats::snapshot s;
  pcm::stats::take(s);
  std::memset(out, 0, sizeof *out);
  out->cache_mode = pcm::cache_mode_name();
  out->arenas = s.arenas;
  out->cpus = s.cpus;
  static_assert(pcm::cache_bins - pcm::first_class <= PCM_STATS_MAX_CLASSES);
  out->class_count = pcm::cache_bins - pcm::first_class;
  for (unsigned cls = pcm::first_class; cls < pcm::cache_bins; ++cls) {
    const auto& c = s.classes[cls];
    out->classes[cls - pcm::first_class] = pcm_class_stats{c.size, c.requests, c.cache_hits, c.cache_misses, c.frees,
                                                           c.slabs, c.slab_bytes, c.live_objects, c.cached_objects};
  }
  out->small_live_bytes = s.small_live_bytes;
  out->small_slab_bytes = s.small_slab_bytes;
  out->large_live_bytes = s.large_live_bytes;
  out->large_count = s.large_count;
  out->huge_live_bytes = s.huge_live_bytes;
  out->huge_count = s.huge_count;
  out->mapped_bytes = s.mapped_bytes;
  out->dirty_bytes = s.dirty_bytes;
  out->purged_bytes = s.purged_bytes;
  out->metadata_bytes = s.metadata_bytes;
  out->resident_bytes = s.resident_bytes;
}

int pcm_stats_write(int fd, int format) {
  text_writer w(fd, nullptr, 0);
  write_any(w, format);
  w.flush();
  return w.failed() ? -1 : 0;
}

size_t pcm_stats_format(char* buffer, size_t size, int format) {
  text_writer w(-1, buffer, size);
  write_any(w, format);
  w.flush();
  return w.total();
}

void pcm_stats_print(void) { pcm_stats_write(STDERR_FILENO, PCM_STATS_TEXT); }
}
