// Annotations for ThreadSanitizer. The per-CPU caches hand objects from thread
// to thread inside restartable sequences (rseq.hpp), plain asm that TSan does
// not see: a block freed by thread A and taken by thread B on the same CPU
// would carry no happens-before edge, and B's first write would read as a race
// with A's last. The object's own address is the synchronisation point:
// released before the push, acquired after the pop (only the threads that pass
// that very object are ordered, so real races elsewhere stay visible).
// Without TSan these compile to nothing.
#pragma once

#if defined(__SANITIZE_THREAD__)
#define PCM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PCM_TSAN 1
#endif
#endif

#ifdef PCM_TSAN
extern "C" void __tsan_acquire(void* address);
extern "C" void __tsan_release(void* address);
#endif

namespace pcm::sanitizer {

#ifdef PCM_TSAN
inline void handing_over(void* object) noexcept { __tsan_release(object); }
inline void taken_over(void* object) noexcept { if (object) __tsan_acquire(object); }
#else
[[gnu::always_inline]] inline void handing_over(void*) noexcept {}
[[gnu::always_inline]] inline void taken_over(void*) noexcept {}
#endif

}  // namespace pcm::sanitizer
