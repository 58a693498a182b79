#include "registry.hpp"

#include <atomic>

#include "lock.hpp"
#include "platform/platform.hpp"
#include "report.hpp"

namespace pcm::debug {
namespace {

constexpr unsigned bucket_bits = 22;   // 4M buckets: 32 MiB reserved, touched as used
constexpr std::size_t buckets_total = std::size_t(1) << bucket_bits;

// A record belongs to the stripe that carved it, for good: its free list and
// lock. Plain records come from the inserting thread's home stripe (a lock and
// free list that stay in its cache); hashed records from their bucket's
// stripe, whose lock also guards the chain.
struct alignas(64) stripe {
  mutex lock;
  std::size_t live = 0;            // records in use from this stripe
  block_record* spare = nullptr;   // free records
  block_record* fresh = nullptr;   // [fresh, fresh_end): carved, never used (untouched pages)
  block_record* fresh_end = nullptr;
};

// Records: one sparse reservation, carved in batches by a bump counter.
constexpr std::size_t record_reserve = std::size_t(16) << 30;   // 16 GiB of address space
constexpr std::size_t record_batch = 64;
constexpr std::size_t record_limit = record_reserve / sizeof(block_record);

block_record** buckets = nullptr;
block_record* records = nullptr;
std::atomic<std::size_t> records_carved{0};
stripe stripes[registry::stripe_count];
std::atomic<unsigned> next_home{0};
__thread unsigned home_stripe __attribute__((tls_model("initial-exec"))) = ~0u;

stripe& home() {
  if (home_stripe == ~0u) [[unlikely]]
    home_stripe = next_home.fetch_add(1, std::memory_order_relaxed) % registry::stripe_count;
  return stripes[home_stripe];
}
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
    records = static_cast<block_record*>(os::reserve_sparse(record_reserve));
    if (!memory || !records) fatal("debug: cannot reserve the block registry");
    __atomic_store_n(&buckets, static_cast<block_record**>(memory), __ATOMIC_RELEASE);
  }
  return buckets;
}

block_record* new_record(stripe& s) {
  block_record* r = s.spare;
  if (r) {
    s.spare = r->next;
  } else {
    if (s.fresh == s.fresh_end) {
      // Batches are carved lazily: a record's page is touched when it is first used.
      std::size_t first = records_carved.fetch_add(record_batch, std::memory_order_relaxed);
      if (first + record_batch > record_limit) return nullptr;
      s.fresh = records + first;
      s.fresh_end = s.fresh + record_batch;
    }
    r = s.fresh++;
  }
  *r = block_record{};
  r->stripe = std::uint16_t(&s - stripes);
  ++s.live;
  return r;
}

}  // namespace

block_record* registry::records_begin() noexcept { return records; }
block_record* registry::records_end() noexcept {
  std::size_t carved = records_carved.load(std::memory_order_relaxed);
  return records ? records + (carved < record_limit ? carved : record_limit) : nullptr;
}
void registry::records_range(std::uintptr_t* begin, std::uintptr_t* end) noexcept {
  *begin = reinterpret_cast<std::uintptr_t>(records);
  *end = *begin + (records ? record_reserve : 0);
}

block_record* registry::insert(std::uintptr_t user, bool hashed) noexcept {
  block_record** t = table();
  std::size_t b = bucket_of(user);
  stripe& s = hashed ? stripe_of(b) : home();
  lock_guard guard(s.lock);
  block_record* r = new_record(s);
  if (!r) return nullptr;
  __atomic_store_n(&r->user, user, __ATOMIC_RELAXED);   // read without the lock by record_at's callers
  r->hashed = hashed;
  if (hashed) {
    r->next = t[b];
    t[b] = r;
  }
  return r;
}

block_record* registry::record_at(std::uintptr_t candidate) noexcept {
  auto begin = reinterpret_cast<std::uintptr_t>(records);
  auto end = reinterpret_cast<std::uintptr_t>(records_end());
  if (candidate < begin || candidate >= end || (candidate - begin) % sizeof(block_record)) return nullptr;
  return reinterpret_cast<block_record*>(candidate);
}

bool registry::claim_for_free(block_record* r, std::uintptr_t user, block_state* previous) noexcept {
  lock_guard guard(stripes[r->stripe].lock);
  if (r->user != user) return false;   // erased (and maybe reused) since the caller looked
  if (r->state == block_state::initialising) return false;   // reused, not yet handed out: a stale pointer
  *previous = r->state;
  r->state = block_state::quarantined;
  return true;
}

block_record* registry::find_for_free(std::uintptr_t user, block_state* previous) noexcept {
  block_record** t = table();
  std::size_t b = bucket_of(user);
  lock_guard guard(stripe_of(b).lock);
  for (block_record* r = t[b]; r; r = r->next) {
    if (r->user != user || r->state == block_state::initialising) continue;
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
  stripe& s = stripes[record->stripe];
  lock_guard guard(s.lock);
  if (record->hashed) {
    block_record** link = &t[b];
    while (*link && *link != record) link = &(*link)->next;
    if (!*link) return;
    *link = record->next;
  }
  __atomic_store_n(&record->user, std::uintptr_t(0), __ATOMIC_RELAXED);
  record->next = s.spare;
  s.spare = record;
  --s.live;
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

// Racy (no locks): the leak scan sizes its work list with it, plus a margin.
std::size_t registry::live_count() noexcept {
  std::size_t n = 0;
  for (stripe& s : stripes) n += __atomic_load_n(&s.live, __ATOMIC_RELAXED);
  return n;
}

}  // namespace pcm::debug
