/* pcmalloc: the prefixed C API. Always present, whether or not the standard
 * malloc symbols are overridden (they are in libpcmalloc.so and .a).
 * Failure: NULL with errno ENOMEM (impossible size, calloc overflow, no memory)
 * or EINVAL (bad alignment). Invalid pointers (not ours, interior): one line on
 * stderr naming the pointer, then abort. */
#ifndef PCMALLOC_PCMALLOC_H
#define PCMALLOC_PCMALLOC_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define PCM_API __attribute__((visibility("default")))
#define PCM_MALLOC_LIKE __attribute__((malloc, warn_unused_result))
#else
#define PCM_API
#define PCM_MALLOC_LIKE
#endif

#ifdef __cplusplus
extern "C" {
#endif

PCM_API PCM_MALLOC_LIKE void* pcm_malloc(size_t size);
PCM_API PCM_MALLOC_LIKE void* pcm_calloc(size_t count, size_t size);
PCM_API void* pcm_realloc(void* p, size_t size);
PCM_API void* pcm_reallocarray(void* p, size_t count, size_t size);
PCM_API void pcm_free(void* p);
PCM_API void pcm_free_sized(void* p, size_t size);
PCM_API void pcm_free_aligned_sized(void* p, size_t alignment, size_t size);
PCM_API PCM_MALLOC_LIKE void* pcm_aligned_alloc(size_t alignment, size_t size);
PCM_API int pcm_posix_memalign(void** out, size_t alignment, size_t size);
PCM_API PCM_MALLOC_LIKE void* pcm_memalign(size_t alignment, size_t size);
PCM_API PCM_MALLOC_LIKE void* pcm_valloc(size_t size);
PCM_API PCM_MALLOC_LIKE void* pcm_pvalloc(size_t size);
PCM_API size_t pcm_usable_size(const void* p);

/* Introspection and control. */
PCM_API int pcm_owns(const void* p);             /* 1 if p is the start of a block of ours */
PCM_API const char* pcm_cache_mode(void);        /* "per-cpu (rseq)" or "per-thread" */
PCM_API void pcm_thread_flush(void);             /* give back this thread's / CPU's cached objects */
PCM_API void pcm_purge(void);                    /* flush, then return all free pages to the OS now */
/* A misuse found by code in pcmalloc's headers (map_pool): one line on stderr,
 * "pcmalloc: error: " and `message`, then abort, as invalid pointers do. */
PCM_API void pcm_misuse(const char* message) __attribute__((noreturn));
/* Heap profiling (PCMALLOC_CONF=profile:true): writes PREFIX.heap.pb.gz,
   .peak.pb.gz, .alloc.pb.gz (pprof), PREFIX.heap and .peak.heap (google-pprof's
   legacy text), PREFIX.*.folded (flame graph input) and PREFIX.txt (top sites).
   Returns 0, or -1 with errno (ENOTSUP when profiling is off or in the debug library). */
PCM_API int pcm_profile_dump(const char* prefix);
PCM_API unsigned pcm_arena_count(void);
PCM_API unsigned pcm_cpu_count(void);            /* CPUs this process may use (ids may be higher: pcm_current_cpu() % n to spread) */
PCM_API unsigned pcm_current_cpu(void);          /* this thread's CPU now (rseq when available) */

/* Debug hooks, for pooled objects that live outside the heap's own checks
 * (map_pool, local_resource). With the debug library (libpcmalloc-debug.so)
 * they capture stacks and report; with the release library they do nothing
 * and pcm_debug_enabled() returns 0. */
enum { PCM_DEBUG_USE_AFTER_RETURN = 1, PCM_DEBUG_CROSS_THREAD_USE = 2 };
PCM_API int pcm_debug_enabled(void);
PCM_API unsigned pcm_debug_stack(void);        /* the caller's stack, as an id for a later report (0: none) */
PCM_API int pcm_debug_thread(void);            /* the calling thread's kernel id */
/* kind: PCM_DEBUG_*; stack: where the object was returned (use after return);
 * other_thread: the thread found using the object (cross-thread use). */
PCM_API void pcm_debug_report(int kind, const void* object, size_t size, unsigned stack, int other_thread,
                              const char* what);

/* Statistics. Counters are read without stopping other threads: exact when the
 * process is quiet, within a few operations otherwise. */
#define PCM_STATS_MAX_CLASSES 64
typedef struct pcm_class_stats {
  size_t size;               /* object size of the class */
  uint64_t requests;         /* allocations of this class */
  uint64_t cache_hits;       /* ... served by a per-CPU or per-thread cache */
  uint64_t cache_misses;     /* ... that went to an arena (requests - hits) */
  uint64_t frees;
  uint64_t slabs;            /* slabs held now */
  uint64_t slab_bytes;       /* their bytes ("active") */
  uint64_t live_objects;     /* in the program's hands ("allocated" = live_objects * size) */
  uint64_t cached_objects;   /* free, waiting in caches */
} pcm_class_stats;

typedef struct pcm_stats {
  const char* cache_mode;    /* "per-cpu (rseq)" or "per-thread" */
  unsigned arenas, cpus, class_count;
  pcm_class_stats classes[PCM_STATS_MAX_CLASSES];   /* [0, class_count) */
  uint64_t small_live_bytes, small_slab_bytes;      /* fragmentation = 1 - live / slab */
  uint64_t large_live_bytes, large_count;
  uint64_t huge_live_bytes, huge_count;
  uint64_t mapped_bytes, dirty_bytes, purged_bytes, metadata_bytes, resident_bytes;
} pcm_stats;

enum { PCM_STATS_TEXT = 0, PCM_STATS_JSON = 1, PCM_STATS_PROMETHEUS = 2 };

PCM_API void pcm_stats_get(pcm_stats* out);
/* Write the statistics to a file descriptor, or format them into a buffer
 * (returns the length needed, like snprintf). Neither allocates. */
PCM_API int pcm_stats_write(int fd, int format);
PCM_API size_t pcm_stats_format(char* buffer, size_t size, int format);
PCM_API void pcm_stats_print(void);   /* text to stderr */

#ifdef __cplusplus
}
#endif

#endif
