// pcm::single_user_check: the debug library's watch over an object that one
// thread at a time may use and that a pool may take back (a local_resource, a
// pooled node_map). With the release library every call returns at once and
// the check is one well-predicted branch on a flag read when the object was
// built.
//
// Rule: mutating calls enter() and leave() (one owner at a time, re-entrant
// for the owner); reading calls look() (many readers may look at once, as
// the standard containers allow, but not while another thread is inside a
// mutating call). A parked object (its container went back to a pool) reports
// any use as use after return.
#pragma once
#include <atomic>
#include <cstddef>

#include "pcmalloc.h"

namespace pcm {

// What a report says: the object's two kinds of misuse, in words.
struct single_user_texts {
  const char* used_after_return;
  const char* used_by_two_threads;
};

class PCM_API single_user_check {
 public:
  // Whether the debug library is loaded: read once per process.
  static bool enabled() noexcept {
    static const bool on = pcm_debug_enabled() != 0;
    return on;
  }

  // Returns whether this call became the owner (then it must leave()).
  bool enter(const void* object, std::size_t size, const single_user_texts& texts) noexcept;
  void leave() noexcept { user_.store(0, std::memory_order_release); }
  void look(const void* object, std::size_t size, const single_user_texts& texts) const noexcept;
  void park(unsigned returned_at) noexcept;
  void unpark() noexcept { user_.store(0, std::memory_order_release); }

 private:
  void report(int seen, const void* object, std::size_t size, const single_user_texts& texts) const noexcept;
  std::atomic<int> user_{0};   // 0 free, -1 parked, else the kernel id of the thread inside
  unsigned parked_at_ = 0;     // stack id of the return to the pool
};

// One mutating call's stay inside a watched object.
class single_user_scope {
 public:
  single_user_scope(bool debug, single_user_check& check, const void* object, std::size_t size,
                    const single_user_texts& texts) noexcept
      : check_(debug && check.enter(object, size, texts) ? &check : nullptr) {}
  ~single_user_scope() {
    if (check_) [[unlikely]] check_->leave();
  }
  single_user_scope(const single_user_scope&) = delete;
  single_user_scope& operator=(const single_user_scope&) = delete;

 private:
  single_user_check* check_;
};

}  // namespace pcm
