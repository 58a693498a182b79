#include "registry.hpp"

#include <atomic>

#include "lock.hpp"
#include "platform/platform.hpp"
#include "report.hpp"

namespace pcm::debug {
namespace {

constexpr unsigned bucket_bits = 22;   // 4M buckets: 32 MiB reserved, touched as used
constexpr std::size_t buckets_total = std::size_t(1) << bucket_bits;

struct alignas(64) stripe {
  mutex lock;
  block_record* spare = nullptr;   // free records
};

block_record** buckets = nullptr;
stripe stripes[registry::stripe_count];
std::atomic<std::size_t> live{0};
mutex setup_lock;

// Blocks are handed out in address order within slabs: keeping neighbouring
// addresses in neighbouring buckets turns most lookups into cache hits. The
// high bits are folded in so that distant chunks do not all collide.
std::size_t bucket_of(std::uintptr_t user) {
  return std::size_t(((user >> 4) ^ (user >> (4 + bucket_bits))) & (buckets_total - 1));
}
stripe& stripe_of(std::size_t bucket) { return stripes[bucket % registry::stripe_count]; }

block_record** table() {
  block_record** t = __atomic_load_n(&buckets, __ATOMIC_ACQUIRE);
  if (t) return t;
  lock_guard guard(setup_lock);
  if (!buckets) {
    void* memory = os::reserve_sparse(buckets_total * sizeof(block_record*));
    if (!memory) fatal("debug: cannot reserve the block registry");
    __atomic_store_n(&buckets, static_cast<block_record**>(memory), __ATOMIC_RELEASE);
  }
  return buckets;
}

block_record* new_record(stripe& s) {
  if (!s.spare) {
    constexpr std::size_t batch = 64 * 1024 / sizeof(block_record);
    auto* fresh = static_cast<block_record*>(os::map(batch * sizeof(block_record)));
    if (!fresh) return nullptr;
    for (std::size_t i = 0; i < batch; ++i) { fresh[i].next = s.spare; s.spare = &fresh[i]; }
  }
  block_record* r = s.spare;
  s.spare = r->next;
  *r = block_record{};
  return r;
}

}  // namespace

std::size_t registry::bucket_count() noexcept { return buckets ? buckets_total : 0; }
block_record* registry::bucket(std::size_t index) noexcept { return buckets[index]; }

block_record* registry::insert(std::uintptr_t user) noexcept {
  block_record** t = table();
  std::size_t b = bucket_of(user);
  stripe& s = stripe_of(b);
  lock_guard guard(s.lock);
  block_record* r = new_record(s);
  if (!r) return nullptr;
  r->user = user;
  r->next = t[b];
  t[b] = r;
  live.fetch_add(1, std::memory_order_relaxed);
  return r;
}

block_record* registry::find_for_free(std::uintptr_t user, block_state* previous) noexcept {
  block_record** t = table();
  std::size_t b = bucket_of(user);
  lock_guard guard(stripe_of(b).lock);
  for (block_record* r = t[b]; r; r = r->next) {
    if (r->user != user) continue;
    *previous = r->state;
    r->state = block_state::quarantined;
    return r;
  }
  return nullptr;
}

block_record* registry::find(std::uintptr_t user) noexcept {
  block_record** t = table();
  std::size_t b = bucket_of(user);
  lock_guard guard(stripe_of(b).lock);
  for (block_record* r = t[b]; r; r = r->next)
    if (r->user == user) return r;
  return nullptr;
}

void registry::erase(block_record* record) noexcept {
  block_record** t = table();
  std::size_t b = bucket_of(record->user);
  stripe& s = stripe_of(b);
  lock_guard guard(s.lock);
  for (block_record** link = &t[b]; *link; link = &(*link)->next) {
    if (*link != record) continue;
    *link = record->next;
    record->next = s.spare;
    s.spare = record;
    live.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
}

block_record* registry::containing(std::uintptr_t address) noexcept {
  block_record* best = nullptr;
  for_each([&](block_record& r) {
    auto start = reinterpret_cast<std::uintptr_t>(r.raw);
    if (address >= start && address < start + r.raw_bytes) best = &r;
  });
  return best;
}

void registry::lock_all() noexcept {
  setup_lock.lock();
  for (stripe& s : stripes) s.lock.lock();
}

void registry::unlock_all(bool child) noexcept {
  for (stripe& s : stripes) {
    if (child) s.lock.reset_after_fork(); else s.lock.unlock();
  }
  if (child) setup_lock.reset_after_fork(); else setup_lock.unlock();
}

std::size_t registry::live_count() noexcept { return live.load(std::memory_order_relaxed); }

}  // namespace pcm::debug
