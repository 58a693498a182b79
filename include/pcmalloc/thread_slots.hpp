// pcm::detail::thread_slots: a small number for each thread that asks (0 ..
// max_threads - 1, reused after the thread exits), and a hook that runs for
// every live owner (a map_pool) when a numbered thread exits.
//
// What it is for: an object may keep one slot per thread number, which only
// that thread reads and writes: plain loads and stores, no locked
// instruction. The owner frees what a slot holds when the thread exits
// (thread_exited), or when the owner itself goes (its destructor, after
// forget()).
//
// The numbers, the registry of owners and the exit hooks live in the library
// (src/thread_slots.cpp), not in this header: a header's statics would be one
// copy per module built with hidden visibility (a program and its plugins),
// and two threads could then hold the same number for one pool.
// Synchronisation: numbers are taken and given back with atomic operations;
// owners enroll and leave under the registry's lock; an exit hook runs an
// owner's thread_exited without that lock (it may run the program's
// destructors) but pinned, and forget() waits until no hook runs on it.
// fork(): the child keeps its own thread's number; numbers of the parent's
// other threads stay taken, and their slots keep their maps until each
// owner goes.
#pragma once
#include <cstdint>

#include "pcmalloc.h"

extern "C" {
// This thread's number + 1; 0: none yet; max_threads + 1: none (all taken,
// or the thread is exiting). Read inline by thread_slots::number().
extern PCM_API __thread unsigned pcm_thread_number_plus_one;
}

namespace pcm::detail {

// An object with per-thread slots (map_pool).
class PCM_API thread_slot_owner {
 public:
  // Thread `number` is exiting: what its slot holds goes back. Runs on that
  // thread, with no lock of the registry held.
  virtual void thread_exited(unsigned number) noexcept = 0;

 protected:
  thread_slot_owner() = default;
  ~thread_slot_owner() = default;
  thread_slot_owner(const thread_slot_owner&) = delete;
  thread_slot_owner& operator=(const thread_slot_owner&) = delete;

 private:
  friend class thread_slots;
  // The registry's list, under its lock.
  thread_slot_owner* next_ = nullptr;
  thread_slot_owner* prev_ = nullptr;
  bool enrolled_ = false;
  unsigned hooks_running_ = 0;   // exit hooks in thread_exited now (pins the owner)
};

class PCM_API thread_slots {
 public:
  static constexpr unsigned max_threads = 64;
  static constexpr unsigned none = max_threads;

  // This thread's number, or none when all are taken (the caller then uses
  // its shared path). One thread-local load once the thread has one.
  static unsigned number() noexcept {
    const unsigned n = pcm_thread_number_plus_one;
    return n ? n - 1 : take_number();
  }

  static void enroll(thread_slot_owner* owner) noexcept;
  // After forget() returns, no exit hook runs on owner, and none will.
  static void forget(thread_slot_owner* owner) noexcept;

 private:
  struct exit_hook;   // per numbered thread (src/thread_slots.cpp)
  [[gnu::noinline]] static unsigned take_number() noexcept;
};

}  // namespace pcm::detail
