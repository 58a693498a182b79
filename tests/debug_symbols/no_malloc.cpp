// Interposes malloc, calloc, realloc, free and the aligned allocators for the
// whole test process (libunwind and libc included), forwarding to glibc; aborts
// with a stack when a thread that forbade the heap calls one.
// Synchronisation: the flag is thread-local; nothing else is shared.
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <unistd.h>

#include "no_malloc.hpp"
#include "trace/stack_trace.hpp"
#include "trace/symbolize.hpp"

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void __libc_free(void*);
void* __libc_memalign(std::size_t, std::size_t);
}

namespace debug_symbols_test {

__thread int heap_forbidden __attribute__((tls_model("initial-exec"))) = 0;
__thread int capture_in_malloc __attribute__((tls_model("initial-exec"))) = 0;
__thread unsigned last_malloc_stack __attribute__((tls_model("initial-exec"))) = 0;

const char* executable_path() {
  static char path[256];
  if (!path[0]) {
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    path[n > 0 ? n : 0] = 0;
  }
  return path;
}

namespace {
void check(const char* what) {
  if (!heap_forbidden) [[likely]] return;
  heap_forbidden = 0;
  char line[128];
  int n = std::snprintf(line, sizeof line, "debug_symbols: %s called where the heap is forbidden:\n", what);
  if (write(STDERR_FILENO, line, std::size_t(n)) < 0) {}
  void* frames[64];
  unsigned depth = pcm::debug::capture(frames, 64, 1);
  pcm::debug::print_stack(STDERR_FILENO, frames, depth);
  _exit(99);
}

// What the debug heap does on each allocation; the heap stays forbidden inside.
void record_stack() {
  if (!capture_in_malloc) [[likely]] return;
  capture_in_malloc = 0;
  ++heap_forbidden;
  void* frames[64];
  unsigned depth = pcm::debug::capture(frames, 64, 1);   // from malloc's frame on
  last_malloc_stack = pcm::debug::stack_depot_save(frames, depth);
  --heap_forbidden;
  capture_in_malloc = 1;
}
}  // namespace
}  // namespace debug_symbols_test

using debug_symbols_test::check;
using debug_symbols_test::record_stack;

extern "C" {
void* malloc(std::size_t size) {
  check("malloc");
  record_stack();
  return __libc_malloc(size);
}
void* calloc(std::size_t count, std::size_t size) { check("calloc"); return __libc_calloc(count, size); }
void* realloc(void* p, std::size_t size) { check("realloc"); return __libc_realloc(p, size); }
void free(void* p) { if (p) check("free"); __libc_free(p); }
void* memalign(std::size_t alignment, std::size_t size) { check("memalign"); return __libc_memalign(alignment, size); }
void* aligned_alloc(std::size_t alignment, std::size_t size) { check("aligned_alloc"); return __libc_memalign(alignment, size); }
int posix_memalign(void** out, std::size_t alignment, std::size_t size) {
  check("posix_memalign");
  void* p = __libc_memalign(alignment, size);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
}
