// pcm::detail::thread_slots: a small number for each thread that asks (0 ..
// max_threads - 1, reused after the thread exits), and a hook that runs for
// every live owner (a map_pool) when a numbered thread exits.
//
// What it is for: an object may keep one slot per thread number, which only
// that thread reads and writes: plain loads and stores, no locked
// instruction. The owner frees what a slot holds when the thread exits
// (thread_exited), or when the owner itself goes (its destructor, after
// forget()). Synchronisation: numbers are taken and given back with atomic
// operations; owners register and leave, and exit hooks run, under one
// mutex, so an owner is never destroyed while a hook runs on it.
#pragma once
#include <atomic>
#include <bit>
#include <cstdint>
#include <mutex>
#include <vector>

namespace pcm::detail {

// An object with per-thread slots (map_pool).
class thread_slot_owner {
 public:
  // Thread `number` is exiting: what its slot holds goes back. Runs on that
  // thread, under the registry's mutex.
  virtual void thread_exited(unsigned number) noexcept = 0;

 protected:
  ~thread_slot_owner() = default;
};

class thread_slots {
 public:
  static constexpr unsigned max_threads = 64;
  static constexpr unsigned none = max_threads;

  // This thread's number, or none when all are taken (the caller then uses
  // its shared path). One thread-local load once the thread has one.
  static unsigned number() noexcept {
    const unsigned n = number_plus_one_;
    return n ? n - 1 : take_number();
  }

  static void enroll(thread_slot_owner* owner) {
    std::lock_guard guard(mutex());
    owners().push_back(owner);
  }
  // After forget() returns, no exit hook runs on owner, and none is running.
  static void forget(thread_slot_owner* owner) noexcept {
    std::lock_guard guard(mutex());
    std::erase(owners(), owner);
  }

 private:
  // Gives the number back when the thread exits, after every owner emptied
  // the thread's slot.
  struct exit_hook {
    unsigned number;
    ~exit_hook() {
      {
        std::lock_guard guard(mutex());
        for (thread_slot_owner* owner : owners()) owner->thread_exited(number);
      }
      number_plus_one_ = max_threads + 1;   // a destructor running later takes no new number
      taken().fetch_and(~(std::uint64_t(1) << number), std::memory_order_release);
    }
  };

  [[gnu::noinline]] static unsigned take_number() noexcept {
    if (number_plus_one_ == max_threads + 1) return none;   // exiting (or out of numbers before)
    std::uint64_t seen = taken().load(std::memory_order_relaxed);
    unsigned n;
    do {
      if (~seen == 0) {
        number_plus_one_ = max_threads + 1;
        return none;
      }
      n = static_cast<unsigned>(std::countr_one(seen));
    } while (!taken().compare_exchange_weak(seen, seen | (std::uint64_t(1) << n), std::memory_order_acquire));
    static thread_local exit_hook hook{n};   // constructed here, on this thread's first number
    hook.number = n;
    number_plus_one_ = n + 1;
    return n;
  }

  static std::atomic<std::uint64_t>& taken() noexcept {
    static std::atomic<std::uint64_t> bits{0};
    return bits;
  }
  static std::mutex& mutex() noexcept {
    static std::mutex m;
    return m;
  }
  static std::vector<thread_slot_owner*>& owners() noexcept {
    static std::vector<thread_slot_owner*> list;
    return list;
  }
  // 0: no number yet; max_threads + 1: none (all taken, or the thread is exiting).
  static inline thread_local unsigned number_plus_one_ = 0;
};

}  // namespace pcm::detail
