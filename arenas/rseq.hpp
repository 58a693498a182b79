// Per-CPU cache bins through restartable sequences on glibc's own rseq area.
// Each operation is one critical section: read this CPU's id, index its bin,
// and commit with a single store of the new count as the last instruction. If
// the thread is preempted, migrated or signalled inside, the kernel restarts it
// at the abort handler, which simply begins again. The abort handler must be
// preceded by glibc's signature (x86-64: 0x53053053).
// A cpu_id outside [0, max_cpus) (rseq unregistered for this thread) fails the
// operation, and the caller falls back to its thread's cache.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cache.hpp"
#include "sanitizer.hpp"

namespace pcm::rseq {

inline constexpr unsigned max_cpus = 1024;

// struct rseq (linux/rseq.h): cpu_id_start at 0, cpu_id at 4, rseq_cs at 8.
inline char* area(std::ptrdiff_t offset) noexcept {
  return static_cast<char*>(__builtin_thread_pointer()) + offset;
}

#if defined(__x86_64__)
inline constexpr bool supported = true;

// Pop from this CPU's bin; `bin0` is the bin of the same class on CPU 0.
// Expected: 14 instructions on the hit path, no atomics, no fences. (Not asm
// goto: g++ 12 miscompiled its miss path under UBSan, returning a stale
// pointer, and deleted a non-volatile one whose outputs went unused.)
[[gnu::always_inline]] inline void* pop(char* rseq_area, cache_bin* bin0) noexcept {
  void* result;
  std::uintptr_t bin, count;
  asm volatile(
      ".pushsection __rseq_cs, \"aw\"\n\t"
      ".balign 32\n\t"
      "3:\n\t"
      ".long 0x0, 0x0\n\t"
      ".quad 1f, 2f - 1f, 4f\n\t"
      ".popsection\n\t"
      "0:\n\t"
      "leaq 3b(%%rip), %[bin]\n\t"
      "movq %[bin], 8(%[area])\n\t"           // rseq->rseq_cs = &descriptor
      "1:\n\t"
      "movl 4(%[area]), %k[bin]\n\t"          // cpu_id
      "cmpl %[max_cpus], %k[bin]\n\t"
      "jae 5f\n\t"
      "shlq %[shift], %[bin]\n\t"
      "addq %[bin0], %[bin]\n\t"
      "movl (%[bin]), %k[count]\n\t"
      "testl %k[count], %k[count]\n\t"
      "jz 5f\n\t"
      "movq 8(%[bin]), %[result]\n\t"
      "movq -8(%[result], %[count], 8), %[result]\n\t"
      "addq $1, 16(%[bin])\n\t"               // hits (an abort may count twice: stats only)
      "subl $1, %k[count]\n\t"
      "movl %k[count], (%[bin])\n\t"          // commit
      "2:\n\t"
      "jmp 6f\n\t"
      ".pushsection __rseq_failure, \"ax\"\n\t"
      ".long 0x53053053\n\t"
      "4:\n\t"
      "jmp 0b\n\t"
      ".popsection\n\t"
      "5:\n\t"
      "xorl %k[result], %k[result]\n\t"
      "6:\n\t"
      : [result] "=&r"(result), [bin] "=&r"(bin), [count] "=&r"(count)
      : [area] "r"(rseq_area), [bin0] "r"(bin0), [max_cpus] "i"(max_cpus), [shift] "i"(cache_set_shift)
      : "memory", "cc");
  sanitizer::taken_over(result);
  return result;
}

// Push onto this CPU's bin; false when it is full (or the CPU is unknown).
[[gnu::always_inline]] inline bool push(char* rseq_area, cache_bin* bin0, void* object) noexcept {
  std::uintptr_t bin, count, slots;
  unsigned ok;
  sanitizer::handing_over(object);
  asm volatile(
      ".pushsection __rseq_cs, \"aw\"\n\t"
      ".balign 32\n\t"
      "3:\n\t"
      ".long 0x0, 0x0\n\t"
      ".quad 1f, 2f - 1f, 4f\n\t"
      ".popsection\n\t"
      "0:\n\t"
      "leaq 3b(%%rip), %[bin]\n\t"
      "movq %[bin], 8(%[area])\n\t"
      "1:\n\t"
      "movl 4(%[area]), %k[bin]\n\t"
      "cmpl %[max_cpus], %k[bin]\n\t"
      "jae 5f\n\t"
      "shlq %[shift], %[bin]\n\t"
      "addq %[bin0], %[bin]\n\t"
      "movl (%[bin]), %k[count]\n\t"
      "cmpl 4(%[bin]), %k[count]\n\t"
      "jae 5f\n\t"
      "movq 8(%[bin]), %[slots]\n\t"
      "movq %[object], (%[slots], %[count], 8)\n\t"   // beyond count until committed
      "addq $1, 24(%[bin])\n\t"
      "addl $1, %k[count]\n\t"
      "movl %k[count], (%[bin])\n\t"          // commit
      "2:\n\t"
      "movl $1, %[ok]\n\t"
      "jmp 6f\n\t"
      ".pushsection __rseq_failure, \"ax\"\n\t"
      ".long 0x53053053\n\t"
      "4:\n\t"
      "jmp 0b\n\t"
      ".popsection\n\t"
      "5:\n\t"
      "xorl %[ok], %[ok]\n\t"
      "6:\n\t"
      : [ok] "=&r"(ok), [bin] "=&r"(bin), [count] "=&r"(count), [slots] "=&r"(slots)
      : [area] "r"(rseq_area), [bin0] "r"(bin0), [object] "r"(object), [max_cpus] "i"(max_cpus),
        [shift] "i"(cache_set_shift)
      : "memory", "cc");
  return ok != 0;
}

// Move up to `want` objects from the top of this CPU's bin into `out`, in one
// critical section: the copy goes to the caller's memory, and only the final
// store of the new count commits it, so an abort simply copies again.
// Returns how many were moved (0 when the bin is empty or the CPU unknown).
// Batch moves leave the hit/free counters alone: they are not user requests.
[[gnu::always_inline]] inline unsigned pop_batch(char* rseq_area, cache_bin* bin0, void** out, unsigned want) noexcept {
  std::uintptr_t bin, count, taken, from, i, object;
  asm volatile(
      ".pushsection __rseq_cs, \"aw\"\n\t"
      ".balign 32\n\t"
      "3:\n\t"
      ".long 0x0, 0x0\n\t"
      ".quad 1f, 2f - 1f, 4f\n\t"
      ".popsection\n\t"
      "0:\n\t"
      "leaq 3b(%%rip), %[bin]\n\t"
      "movq %[bin], 8(%[area])\n\t"
      "1:\n\t"
      "xorl %k[taken], %k[taken]\n\t"
      "movl 4(%[area]), %k[bin]\n\t"
      "cmpl %[max_cpus], %k[bin]\n\t"
      "jae 2f\n\t"
      "shlq %[shift], %[bin]\n\t"
      "addq %[bin0], %[bin]\n\t"
      "movl (%[bin]), %k[count]\n\t"
      "movl %[want], %k[taken]\n\t"
      "cmpl %k[count], %k[taken]\n\t"
      "cmoval %k[count], %k[taken]\n\t"       // taken = min(want, count)
      "testl %k[taken], %k[taken]\n\t"
      "jz 2f\n\t"
      "subl %k[taken], %k[count]\n\t"         // the new count
      "movq 8(%[bin]), %[from]\n\t"
      "leaq (%[from], %[count], 8), %[from]\n\t"
      "xorl %k[i], %k[i]\n\t"
      "7:\n\t"
      "movq (%[from], %[i], 8), %[object]\n\t"
      "movq %[object], (%[out], %[i], 8)\n\t"
      "addl $1, %k[i]\n\t"
      "cmpl %k[taken], %k[i]\n\t"
      "jb 7b\n\t"
      "movl %k[count], (%[bin])\n\t"          // commit
      "2:\n\t"
      ".pushsection __rseq_failure, \"ax\"\n\t"
      ".long 0x53053053\n\t"
      "4:\n\t"
      "jmp 0b\n\t"
      ".popsection\n\t"
      : [taken] "=&r"(taken), [bin] "=&r"(bin), [count] "=&r"(count), [from] "=&r"(from), [i] "=&r"(i),
        [object] "=&r"(object)
      : [area] "r"(rseq_area), [bin0] "r"(bin0), [out] "r"(out), [want] "r"(want),
        [max_cpus] "i"(max_cpus), [shift] "i"(cache_set_shift)
      : "memory", "cc");
  // NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage): out[] was written by the asm above.
  for (std::uintptr_t k = 0; k < taken; ++k) sanitizer::taken_over(out[k]);
  return unsigned(taken);
}

// Copy up to `n` objects from `in` onto this CPU's bin, as far as it has room;
// returns how many went in (0 when full or the CPU unknown). One critical
// section: the slots above count are invisible until the commit.
[[gnu::always_inline]] inline unsigned push_batch(char* rseq_area, cache_bin* bin0, void* const* in, unsigned n) noexcept {
  std::uintptr_t bin, count, put, to, i, object;
  for (unsigned k = 0; k < n; ++k) sanitizer::handing_over(in[k]);   // those left out are the caller's again
  asm volatile(
      ".pushsection __rseq_cs, \"aw\"\n\t"
      ".balign 32\n\t"
      "3:\n\t"
      ".long 0x0, 0x0\n\t"
      ".quad 1f, 2f - 1f, 4f\n\t"
      ".popsection\n\t"
      "0:\n\t"
      "leaq 3b(%%rip), %[bin]\n\t"
      "movq %[bin], 8(%[area])\n\t"
      "1:\n\t"
      "xorl %k[put], %k[put]\n\t"
      "movl 4(%[area]), %k[bin]\n\t"
      "cmpl %[max_cpus], %k[bin]\n\t"
      "jae 2f\n\t"
      "shlq %[shift], %[bin]\n\t"
      "addq %[bin0], %[bin]\n\t"
      "movl (%[bin]), %k[count]\n\t"
      "movl 4(%[bin]), %k[put]\n\t"
      "subl %k[count], %k[put]\n\t"           // room (capacity >= count always)
      "cmpl %[n], %k[put]\n\t"
      "cmoval %[n], %k[put]\n\t"              // put = min(n, room)
      "testl %k[put], %k[put]\n\t"
      "jz 2f\n\t"
      "movq 8(%[bin]), %[to]\n\t"
      "leaq (%[to], %[count], 8), %[to]\n\t"
      "xorl %k[i], %k[i]\n\t"
      "7:\n\t"
      "movq (%[in], %[i], 8), %[object]\n\t"
      "movq %[object], (%[to], %[i], 8)\n\t"  // beyond count until committed
      "addl $1, %k[i]\n\t"
      "cmpl %k[put], %k[i]\n\t"
      "jb 7b\n\t"
      "addl %k[put], %k[count]\n\t"
      "movl %k[count], (%[bin])\n\t"          // commit
      "2:\n\t"
      ".pushsection __rseq_failure, \"ax\"\n\t"
      ".long 0x53053053\n\t"
      "4:\n\t"
      "jmp 0b\n\t"
      ".popsection\n\t"
      : [put] "=&r"(put), [bin] "=&r"(bin), [count] "=&r"(count), [to] "=&r"(to), [i] "=&r"(i),
        [object] "=&r"(object)
      : [area] "r"(rseq_area), [bin0] "r"(bin0), [in] "r"(in), [n] "r"(n),
        [max_cpus] "i"(max_cpus), [shift] "i"(cache_set_shift)
      : "memory", "cc");
  return unsigned(put);
}

#else
inline constexpr bool supported = false;
inline void* pop(char*, cache_bin*) noexcept { return nullptr; }
inline bool push(char*, cache_bin*, void*) noexcept { return false; }
inline unsigned pop_batch(char*, cache_bin*, void**, unsigned) noexcept { return 0; }
inline unsigned push_batch(char*, cache_bin*, void* const*, unsigned) noexcept { return 0; }
#endif

// The CPU this thread runs on now, or -1 when rseq is not registered for it.
inline int current_cpu(char* rseq_area) noexcept {
  int cpu = __atomic_load_n(reinterpret_cast<int*>(rseq_area + 4), __ATOMIC_RELAXED);
  return cpu >= 0 && unsigned(cpu) < max_cpus ? cpu : -1;
}

}  // namespace pcm::rseq
