// pcm_debug_*: hooks for pooled objects (map_pool, local_resource) whose misuse
// the heap cannot see by itself. No-ops in the release library.
#include "heap_policy.hpp"
#include "pcmalloc/pcmalloc.h"

#if PCM_DEBUG
#include "report/reporter.hpp"
#include "trace/stack_trace.hpp"
#endif

extern "C" {

int pcm_debug_enabled(void) { return pcm::heap_policy::debug ? 1 : 0; }

#if PCM_DEBUG

unsigned pcm_debug_stack(void) {
  void* frames[64];
  unsigned depth = pcm::debug::capture_here(frames, 64);
  return pcm::debug::stack_depot_save(frames, depth);
}

int pcm_debug_thread(void) { return pcm::debug::current_thread(); }

void pcm_debug_report(int kind, const void* object, size_t size, unsigned stack, int other_thread, const char* what) {
  using namespace pcm::debug;
  error_report r{kind == PCM_DEBUG_USE_AFTER_RETURN ? error_kind::use_after_return : error_kind::cross_thread_use, what,
                 reinterpret_cast<std::uintptr_t>(object)};
  r.object_size = size;
  r.other_thread = other_thread;
  r.extra_stack = stack;
  r.extra_label = kind == PCM_DEBUG_USE_AFTER_RETURN ? "returned to its pool at" : nullptr;
  report(r);
}
#else
unsigned pcm_debug_stack(void) { return 0; }
int pcm_debug_thread(void) { return int(pcm::os::thread_id()); }
void pcm_debug_report(int, const void*, size_t, unsigned, int, const char*) {}
#endif
}
