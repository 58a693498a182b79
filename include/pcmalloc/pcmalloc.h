/* pcmalloc: the prefixed C API. Always present, whether or not the standard
 * malloc symbols are overridden (they are in libpcmalloc.so and .a).
 * Failure: NULL with errno ENOMEM (impossible size, calloc overflow, no memory)
 * or EINVAL (bad alignment). Invalid pointers (not ours, interior): one line on
 * stderr naming the pointer, then abort. */
#ifndef PCMALLOC_PCMALLOC_H
#define PCMALLOC_PCMALLOC_H

#include <stddef.h>

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
PCM_API unsigned pcm_arena_count(void);

#ifdef __cplusplus
}
#endif

#endif
