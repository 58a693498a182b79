// A small futex mutex (three states: free, locked, locked with waiters). Used for
// arena bins and page allocators: never held across a call to the OS except the
// purge/map calls of the page allocator, and never while calling user code.
#pragma once
#include <atomic>
#include <cstdint>

#include "platform/platform.hpp"

namespace pcm {

class mutex {
 public:
  void lock() noexcept {
    std::uint32_t expected = 0;
    if (state_.compare_exchange_strong(expected, 1, std::memory_order_acquire)) [[likely]] return;
    lock_contended();
  }
  bool try_lock() noexcept {
    std::uint32_t expected = 0;
    return state_.compare_exchange_strong(expected, 1, std::memory_order_acquire);
  }
  void unlock() noexcept {
    if (state_.exchange(0, std::memory_order_release) == 2) [[unlikely]]
      os::futex_wake(raw(), 1);
  }
  // After fork() only the calling thread exists: a lock held by a vanished
  // thread must be forced open in the child.
  void reset_after_fork() noexcept { state_.store(0, std::memory_order_relaxed); }

 private:
  void lock_contended() noexcept {
    for (int spin = 0; spin < 64; ++spin) {
      if (state_.load(std::memory_order_relaxed) == 0) {
        std::uint32_t expected = 0;
        if (state_.compare_exchange_weak(expected, 1, std::memory_order_acquire)) return;
      }
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    while (state_.exchange(2, std::memory_order_acquire) != 0) os::futex_wait(raw(), 2);
  }
  std::uint32_t* raw() noexcept { return reinterpret_cast<std::uint32_t*>(&state_); }
  std::atomic<std::uint32_t> state_{0};
};
static_assert(sizeof(mutex) == 4);

class lock_guard {
 public:
  explicit lock_guard(mutex& m) noexcept : m_(m) { m_.lock(); }
  ~lock_guard() { m_.unlock(); }
  lock_guard(const lock_guard&) = delete;
  lock_guard& operator=(const lock_guard&) = delete;
 private:
  mutex& m_;
};

}  // namespace pcm
