// The prefixed C API: pcm_malloc and family, and the introspection calls.
#include "pcmalloc/pcmalloc.h"

#include "entry_points.hpp"
#include "profile/sampler.hpp"
#include "report.hpp"

#include <cerrno>

using namespace pcm::entry;

extern "C" {
void* pcm_malloc(size_t n) { return c_malloc(n); }
void* pcm_calloc(size_t c, size_t n) { return c_calloc(c, n); }
void* pcm_realloc(void* p, size_t n) { return c_realloc(p, n); }
void* pcm_reallocarray(void* p, size_t c, size_t n) { return c_reallocarray(p, c, n); }
void pcm_free(void* p) { c_free(p); }
void pcm_free_sized(void* p, size_t n) { c_free_sized(p, n); }
void pcm_free_aligned_sized(void* p, size_t a, size_t n) { c_free_aligned_sized(p, a, n); }
void* pcm_aligned_alloc(size_t a, size_t n) { return c_aligned_alloc(a, n); }
int pcm_posix_memalign(void** out, size_t a, size_t n) { return c_posix_memalign(out, a, n); }
void* pcm_memalign(size_t a, size_t n) { return c_memalign(a, n); }
void* pcm_valloc(size_t n) { return c_valloc(n); }
void* pcm_pvalloc(size_t n) { return c_pvalloc(n); }
size_t pcm_usable_size(const void* p) { return c_usable_size(p); }

int pcm_owns(const void* p) { return c_owns(p) ? 1 : 0; }
const char* pcm_cache_mode(void) { return pcm::cache_mode_name(); }
void pcm_thread_flush(void) { pcm::flush_thread_cache(); }
void pcm_purge(void) { pcm::purge_all(); }
void pcm_misuse(const char* message) { pcm::fatal("%s", message); }
unsigned pcm_arena_count(void) { return pcm::arena_count(); }
unsigned pcm_cpu_count(void) { return pcm::os::cpu_count(); }
unsigned pcm_current_cpu(void) { return pcm::current_cpu(); }
int pcm_profile_dump(const char* prefix) {
#if PCM_DEBUG
  (void)prefix;
  errno = ENOTSUP;   // the debug library keeps its own records; it does not sample
  return -1;
#else
  return pcm::profile::dump(prefix);
#endif
}
}
