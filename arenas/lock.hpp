// A small futex mutex (three states: free, locked, locked with waiters). Used for
// arena bins and page allocators: never held across a call to the OS except the
// purge/map calls of the page allocator, and never while calling user code.
#pragma once
#include <atomic>
#include <cstdint>

#include "platform/platform.hpp"

namespace pcm {

// Set on the thread inside fork() from the end of pcmalloc's last prepare
// handler to the start of its first parent/child handler: that thread holds
// every pcmalloc lock then, and the fork handlers other libraries registered
// before pcmalloc's run in that window (prepare handlers run in reverse order of
// registration) and may allocate. For that thread alone locking is then a
// no-op: it owns everything the locks guard, and the other threads wait.
inline thread_local bool holding_every_lock __attribute__((tls_model("initial-exec"))) = false;

class mutex {
 public:
  void lock() noexcept {
    if (holding_every_lock) [[unlikely]] return;
    std::uint32_t expected = 0;
    if (state_.compare_exchange_strong(expected, 1, std::memory_order_acquire)) [[likely]] return;
    lock_contended();
  }
  bool try_lock() noexcept {
    if (holding_every_lock) [[unlikely]] return true;
    std::uint32_t expected = 0;
    return state_.compare_exchange_strong(expected, 1, std::memory_order_acquire);
  }
  void unlock() noexcept {
    if (holding_every_lock) [[unlikely]] return;
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
