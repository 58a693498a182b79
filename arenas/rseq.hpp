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
#include "platform/platform.hpp"
#include "sanitizer.hpp"

namespace pcm::rseq {

inline constexpr unsigned max_cpus = os::max_cpu_ids;   // the one CPU-id bound (platform.hpp)

// struct rseq (linux/rseq.h): cpu_id_start at 0, cpu_id at 4, rseq_cs at 8.
inline char* area(std::ptrdiff_t offset) noexcept {
  return static_cast<char*>(__builtin_thread_pointer()) + offset;
}

#if defined(__x86_64__)
inline constexpr bool supported = true;

// Every critical section below has the same frame, written once here:
//   PCM_RSEQ_START: the section's descriptor in __rseq_cs (start 1f, length
//     2f - 1f, abort handler 4f); at 0 it stores the descriptor's address in
//     rseq->rseq_cs (through %[bin] as scratch); the section begins at 1.
//   PCM_RSEQ_THIS_BIN(fail): %[bin] = this CPU's bin of the class whose CPU-0
//     bin is %[bin0]; jumps to `fail` when cpu_id is out of range (rseq not
//     registered for this thread).
//   PCM_RSEQ_ABORT: the abort handler after glibc's signature (x86-64
//     0x53053053, os::rseq_signature): the kernel lands there when it
//     preempted, migrated or signalled the thread inside, and it starts over.
// Each section ends at 2, right after its single committing store.
#define PCM_RSEQ_START                                                                   \
  ".pushsection __rseq_cs, \"aw\"\n\t.balign 32\n\t3:\n\t.long 0x0, 0x0\n\t"           \
  ".quad 1f, 2f - 1f, 4f\n\t.popsection\n\t"                                             \
  "0:\n\tleaq 3b(%%rip), %[bin]\n\tmovq %[bin], 8(%[area])\n\t1:\n\t"
#define PCM_RSEQ_THIS_BIN(fail)                                                          \
  "movl 4(%[area]), %k[bin]\n\tcmpl %[max_cpus], %k[bin]\n\tjae " fail "\n\t"              \
  "shlq %[shift], %[bin]\n\taddq %[bin0], %[bin]\n\t"
#define PCM_RSEQ_ABORT \
  ".pushsection __rseq_failure, \"ax\"\n\t.long 0x53053053\n\t4:\n\tjmp 0b\n\t.popsection\n\t"

// Pop from this CPU's bin; `bin0` is the bin of the same class on CPU 0.
// Expected: 14 instructions on the hit path, no atomics, no fences; of the
// 43 on malloc()'s whole hit path (gcc 12, heap.hpp's budget, checked by
// tests/core/fastpath_size_test.py), the rest are the size class, the CPU's
// bin, the free mark and sampling's switch (src/heap_policy.hpp). (Not asm
// goto: g++ 12 miscompiled its miss path under UBSan, returning a stale
// pointer, and deleted a non-volatile one whose outputs went unused.)
[[gnu::always_inline]] inline void* pop(char* rseq_area, cache_bin* bin0) noexcept {
  void* result;
  std::uintptr_t bin, count;
  asm volatile(
      PCM_RSEQ_START
      PCM_RSEQ_THIS_BIN("5f")
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
      PCM_RSEQ_ABORT
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
      PCM_RSEQ_START
      PCM_RSEQ_THIS_BIN("5f")
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
      PCM_RSEQ_ABORT
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
      PCM_RSEQ_START
      "xorl %k[taken], %k[taken]\n\t"
      PCM_RSEQ_THIS_BIN("2f")
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
      PCM_RSEQ_ABORT
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
      PCM_RSEQ_START
      "xorl %k[put], %k[put]\n\t"
      PCM_RSEQ_THIS_BIN("2f")
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
      PCM_RSEQ_ABORT
      : [put] "=&r"(put), [bin] "=&r"(bin), [count] "=&r"(count), [to] "=&r"(to), [i] "=&r"(i),
        [object] "=&r"(object)
      : [area] "r"(rseq_area), [bin0] "r"(bin0), [in] "r"(in), [n] "r"(n),
        [max_cpus] "i"(max_cpus), [shift] "i"(cache_set_shift)
      : "memory", "cc");
  return unsigned(put);
}

#undef PCM_RSEQ_START
#undef PCM_RSEQ_THIS_BIN
#undef PCM_RSEQ_ABORT
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
