// The thread numbers and the owners' registry of
// include/pcmalloc/thread_slots.hpp: one of each per process.
#include "pcmalloc/thread_slots.hpp"

#include <atomic>
#include <bit>

#include "heap.hpp"
#include "lock.hpp"
#include "platform/platform.hpp"

extern "C" {
__thread unsigned pcm_thread_number_plus_one = 0;
}

namespace pcm::detail {
namespace {

constexpr unsigned exiting = thread_slots::max_threads + 1;

// Constant-initialised and never destroyed: a thread may exit after the
// program's static destructors ran (the registry once was a function-local
// std::vector, destroyed under such a thread's exit hook).
mutex registry_lock;
thread_slot_owner* owners = nullptr;
std::atomic<std::uint64_t> taken{0};
std::atomic<bool> fork_hooks_added{false};

void fork_prepare() { registry_lock.lock(); }
void fork_parent() { registry_lock.unlock(); }
void fork_child() { registry_lock.reset_after_fork(); }

}  // namespace

// Gives the number back when the thread exits, after every owner emptied the
// thread's slot.
struct thread_slots::exit_hook {
  unsigned number;
  ~exit_hook();
};

// The owners this hook already emptied need no second call; an owner that
// left while its hook ran took its place in the list with it, so the walk
// starts again from the front (a second call on an emptied slot does nothing).
thread_slots::exit_hook::~exit_hook() {
  registry_lock.lock();
  for (thread_slot_owner* o = owners; o;) {
    ++o->hooks_running_;
    registry_lock.unlock();
    o->thread_exited(number);
    registry_lock.lock();
    thread_slot_owner* next = o->enrolled_ ? o->next_ : owners;
    --o->hooks_running_;   // from here on forget() may return and o may go
    o = next;
  }
  registry_lock.unlock();
  pcm_thread_number_plus_one = exiting;   // a destructor running later takes no new number
  taken.fetch_and(~(std::uint64_t(1) << number), std::memory_order_release);
}

void thread_slots::enroll(thread_slot_owner* owner) noexcept {
  if (!fork_hooks_added.exchange(true)) add_fork_hooks(fork_prepare, fork_parent, fork_child);
  lock_guard guard(registry_lock);
  owner->prev_ = nullptr;
  owner->next_ = owners;
  if (owners) owners->prev_ = owner;
  owners = owner;
  owner->enrolled_ = true;
}

void thread_slots::forget(thread_slot_owner* owner) noexcept {
  registry_lock.lock();
  if (owner->enrolled_) {
    if (owner->prev_) owner->prev_->next_ = owner->next_;
    else owners = owner->next_;
    if (owner->next_) owner->next_->prev_ = owner->prev_;
    owner->enrolled_ = false;
  }
  // A hook pinned it before it left: wait until that hook is done with it.
  while (owner->hooks_running_) {
    registry_lock.unlock();
    os::yield_cpu();
    registry_lock.lock();
  }
  registry_lock.unlock();
}

unsigned thread_slots::take_number() noexcept {
  if (pcm_thread_number_plus_one == exiting) return none;   // exiting (or out of numbers before)
  std::uint64_t seen = taken.load(std::memory_order_relaxed);
  unsigned n;
  do {
    if (~seen == 0) {
      pcm_thread_number_plus_one = exiting;
      return none;
    }
    n = static_cast<unsigned>(std::countr_one(seen));
  } while (!taken.compare_exchange_weak(seen, seen | (std::uint64_t(1) << n), std::memory_order_acquire));
  static thread_local exit_hook hook{n};   // constructed here, on this thread's first number
  hook.number = n;
  pcm_thread_number_plus_one = n + 1;
  return n;
}

}  // namespace pcm::detail
