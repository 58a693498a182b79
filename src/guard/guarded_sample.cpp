// The region of guarded slots, the FIFO of free slots, the per-thread countdown
// and the core's hooks for guarded blocks (see guarded_sample.hpp).
#include "guard/guarded_sample.hpp"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <string_view>

#include "heap.hpp"
#include "lock.hpp"
#include "options.hpp"
#include "page_map.hpp"
#include "sampling.hpp"
#include "trace/symbolize.hpp"

namespace pcm::guard {
namespace {

constexpr std::size_t slot_bytes = slot_data_bytes + os::page_size;   // data, then its guard page
constexpr std::size_t region_bytes = os::page_size + slot_count * slot_bytes;

enum class slot_state : std::uint8_t { unused, live, freed };
struct slot {
  std::uintptr_t user;
  std::size_t size;
  std::uint32_t alloc_stack, free_stack;   // stack depot ids
  std::int32_t alloc_thread, free_thread;
  slot_state state;
};

mutex lock;
char* region = nullptr;   // a guard page, then the slots
slot* slots = nullptr;
std::uint32_t* fifo = nullptr;   // free slot indices, longest free first (ring)
std::uint32_t fifo_head = 0, free_slots = 0;
double rate = 1;

struct thread_state {
  bool started;
  std::uint64_t random;   // xorshift64* state
};
__thread thread_state self __attribute__((tls_model("initial-exec"))) = {};

char* slot_data(std::uint32_t index) noexcept { return region + os::page_size + std::size_t(index) * slot_bytes; }
std::uintptr_t slot_end(std::uint32_t index) noexcept {
  return reinterpret_cast<std::uintptr_t>(slot_data(index)) + slot_data_bytes;
}
slot_state state_of(const slot& s) noexcept {
  return slot_state(__atomic_load_n(reinterpret_cast<const std::uint8_t*>(&s.state), __ATOMIC_ACQUIRE));
}
void publish_state(slot& s, slot_state value) noexcept {
  __atomic_store_n(reinterpret_cast<std::uint8_t*>(&s.state), std::uint8_t(value), __ATOMIC_RELEASE);
}
bool in_region(std::uintptr_t a) noexcept {
  auto begin = reinterpret_cast<std::uintptr_t>(region);
  return region && a >= begin && a < begin + region_bytes;
}
// The slot whose data pages or trailing guard page hold `a` (the leading
// guard page: slot 0). REQUIRES: in_region(a). (A fault in a guard page may
// belong to the slot after it: describe_fault looks at both.)
std::uint32_t slot_index(std::uintptr_t a) noexcept {
  auto first = reinterpret_cast<std::uintptr_t>(slot_data(0));
  return a < first ? 0 : std::uint32_t((a - first) / slot_bytes);
}

double uniform() noexcept {   // in (0, 1]
  std::uint64_t x = self.random;
  x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
  self.random = x;
  return double((x * 0x2545F4914F6CDD1Dull) >> 11) * 0x1.0p-53 + 0x1.0p-54;
}

std::uint64_t seed_word() noexcept {   // xorshift's state must not be 0
  std::uint64_t seed = os::random_word() ^ reinterpret_cast<std::uintptr_t>(&self);
  return seed ? seed : 1;
}

// Allocations until the next guarded one, k >= 1, geometric with mean `rate`
// (each allocation guarded with probability 1/rate): the countdown runs out
// at the k-th allocation from now.
void draw_countdown() noexcept {
  double k = 1;
  if (rate > 1) k = std::floor(std::log(uniform()) / std::log1p(-1.0 / rate)) + 1;
  sampling::countdown.allocations_until_guard = k >= 0x1.0p62 ? sampling::never : std::int64_t(k) - 1;
}

debug::block_record record_of(const slot& s) noexcept {
  debug::block_record r{};
  r.user = s.user;
  r.size = s.size;
  r.alloc_stack = s.alloc_stack;
  r.free_stack = s.free_stack;
  r.alloc_thread = s.alloc_thread;
  r.free_thread = s.free_thread;
  r.state = state_of(s) == slot_state::freed ? debug::block_state::quarantined : debug::block_state::live;
  r.guarded = true;
  return r;
}

// `operation` was given a pointer into the region that is not a live block's
// start: a freed guarded block's start is reported with both its stacks (a
// second free, a realloc of it, or another use); anything else is an invalid
// pointer. Both stop the process.
[[noreturn]] void bad_pointer(const char* operation, const void* p) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  const slot& s = slots[slot_index(a)];
  if (state_of(s) == slot_state::freed && s.user == a) {
    debug::block_record r = record_of(s);
    char what[160];
    std::snprintf(what, sizeof what, "%s of a guarded block that was already freed", operation);
    std::string_view op(operation);
    debug::error_kind kind = op == "free"      ? debug::error_kind::double_free
                             : op == "realloc" ? debug::error_kind::realloc_of_freed
                                               : debug::error_kind::use_after_free;
    debug::report({kind, what, a, &r});
    os::abort_process();
  }
  invalid_pointer(operation, p, state_of(s) == slot_state::freed ? "inside a freed guarded block"
                                                                   : "points inside a guarded block, not at its start");
}

// REQUIRES: lock.
void push_free(std::uint32_t index) noexcept {
  fifo[(fifo_head + free_slots) % slot_count] = index;
  ++free_slots;
}

// A sized free or delete whose size does not fit the live block at `s`: reported
// with the block's allocation stack, and the process stops (the block stays live).
[[noreturn]] void wrong_size(const slot& s, std::size_t size, bool exact) noexcept {
  debug::block_record r = record_of(s);
  char what[192];
  std::snprintf(what, sizeof what, "%s of %zu bytes on a guarded block of %zu bytes",
                exact ? "sized delete" : "sized free", size, s.size);
  debug::report({debug::error_kind::sized_delete_mismatch, what, s.user, &r});
  os::abort_process();
}

void release(void* p, std::size_t size, bool exact, const char* operation) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  std::uint32_t index = slot_index(a);
  slot& s = slots[index];
  // The free's stack and thread, taken before the lock and written with the
  // state change: whoever sees `freed` (a second free, the fault handler) sees them.
  std::uint32_t free_stack = debug::save_here();
  std::int32_t free_thread = debug::current_thread();
  bool claimed, fits = false;
  {
    lock_guard guard(lock);
    claimed = state_of(s) == slot_state::live && s.user == a;
    // operator delete(p, n) or delete[](p, n) of a plain new: n is the size
    // asked for; a sized free or an aligned new's sized delete: at most the block.
    if (claimed) fits = exact ? size == s.size : size <= slot_end(index) - a;
    if (claimed && fits) {
      s.free_stack = free_stack;
      s.free_thread = free_thread;
      publish_state(s, slot_state::freed);   // a second free is reported
    }
  }
  if (!claimed) bad_pointer(operation, p);
  if (!fits) wrong_size(s, size, exact);
  // Inaccessible first (a use after free faults from now on), then the pages
  // go back to the kernel: the slot costs no memory while it waits, and its
  // next block reads zeros.
  os::protect_none(slot_data(index), slot_data_bytes);
  os::purge(slot_data(index), slot_data_bytes);
  lock_guard guard(lock);
  push_free(index);
}

std::size_t usable_size(const void* p, const char* operation) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  std::uint32_t index = slot_index(a);
  const slot& s = slots[index];
  if (state_of(s) != slot_state::live || s.user != a) bad_pointer(operation, p);
  return slot_end(index) - a;
}

bool owns(const void* p) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  const slot& s = slots[slot_index(a)];
  return state_of(s) == slot_state::live && s.user == a;
}

void* block_start(const void* p) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  std::uint32_t index = slot_index(a);
  const slot& s = slots[index];
  if (state_of(s) != slot_state::live || a < s.user || a >= slot_end(index)) return nullptr;
  return reinterpret_cast<void*>(s.user);
}

constexpr detail::guarded_hooks hooks{release, usable_size, owns, block_start};

void fork_prepare() {
  debug::reports_fork_prepare();
  lock.lock();
}
void fork_parent() {
  lock.unlock();
  debug::reports_fork_parent();
}
void fork_child() {
  lock.reset_after_fork();
  // The forking thread's random state is the parent's: redrawn, or parent and
  // child would guard the same allocations from here on.
  if (self.started) {
    self.random = seed_word();
    draw_countdown();
  }
  debug::reports_fork_child();
  debug::symbolize_after_fork_child();
}

// Before main (and before other threads): reserve the region and turn guarded
// sampling on, if asked. Hardened mode keeps its own checks and no guards.
__attribute__((constructor)) void start_guarded_sampling() {
  pcm::ensure_initialised();
  if (!config.guard_sample_rate || config.hardened) return;
  // No commit charge and outside limit_bytes: only the live blocks' pages are ever touched.
  region = static_cast<char*>(os::reserve_sparse(region_bytes));
  std::size_t table_bytes = os::round_to_pages(slot_count * (sizeof(slot) + sizeof(std::uint32_t)));
  void* table = os::map(table_bytes);
  bool entered = region && table && os::protect_none(region, region_bytes) &&
                 page_map::set(region, region_bytes / os::page_size, page_entry::make(nullptr, page_entry::guarded_class, 0), true);
  if (!entered) {
    // A set that failed midway leaves some pages marked guarded, with no hooks:
    // unmarked before the region goes back (a later mapping may take its addresses).
    if (region) page_map::clear(region, region_bytes / os::page_size);
    if (region) os::release_sparse(region, region_bytes);
    if (table) os::unmap(table, table_bytes);
    region = nullptr;
    return;
  }
  slots = static_cast<slot*>(table);
  fifo = reinterpret_cast<std::uint32_t*>(slots + slot_count);
  for (std::uint32_t i = 0; i < slot_count; ++i) push_free(i);
  rate = double(config.guard_sample_rate);
  debug::prepare_reports();
  detail::guarded = &hooks;
  pcm::add_fork_hooks(fork_prepare, fork_parent, fork_child);
  install_fault_handler();
  sampling::turn_on_guard();
}

}  // namespace

bool take_turn() noexcept {
  bool first = !self.started;
  if (first) {
    self.started = true;
    self.random = seed_word();
  }
  draw_countdown();
  return !first;
}

void* allocate(std::size_t size, std::size_t alignment) noexcept {
  if (size == 0 || size > slot_data_bytes || alignment > os::page_size) return nullptr;
  std::uint32_t index;
  {
    lock_guard guard(lock);
    if (!free_slots) return nullptr;
    index = fifo[fifo_head];
    fifo_head = (fifo_head + 1) % slot_count;
    --free_slots;
  }
  std::uintptr_t end = slot_end(index);
  std::size_t align = alignment < 16 ? 16 : alignment;
  std::uintptr_t user = (end - size) & ~std::uintptr_t(align - 1);
  std::uintptr_t first_page = os::page_start(user);
  if (!os::protect_read_write(reinterpret_cast<void*>(first_page), end - first_page)) {
    lock_guard guard(lock);
    push_free(index);
    return nullptr;
  }
  slot& s = slots[index];
  s.user = user;
  s.size = size;
  s.alloc_stack = debug::save_here();
  s.alloc_thread = debug::current_thread();
  s.free_stack = 0;
  s.free_thread = 0;
  publish_state(s, slot_state::live);   // before the pointer escapes
  return reinterpret_cast<void*>(user);
}

bool describe_fault(std::uintptr_t address, fault_site& out) noexcept {
  if (!in_region(address)) return false;
  std::uint32_t index = slot_index(address);
  // A guard page lies between a block's end (slot `index`: an overflow) and the
  // next slot's pages (an underflow of a block that starts on its slot's first
  // data page): the nearer block is blamed, as GWP-ASan does.
  if (address >= slot_end(index) && index + 1 < slot_count) {
    const slot& below = slots[index], &above = slots[index + 1];
    bool has_below = state_of(below) != slot_state::unused, has_above = state_of(above) != slot_state::unused;
    std::uintptr_t below_end = below.user + below.size;
    if (has_above && (!has_below || above.user - address < address - below_end)) ++index;
  }
  const slot& s = slots[index];
  slot_state state = state_of(s);
  out.has_block = state != slot_state::unused;
  if (!out.has_block) {
    out.kind = debug::error_kind::wild_access;
    return true;
  }
  out.block = record_of(s);
  // Inside a freed block: use after free. Below the block: underflow. Else
  // the slot's guard page (a live block's own pages do not fault): overflow.
  bool inside = address >= s.user && address < slot_end(index);
  if (inside && state == slot_state::freed) out.kind = debug::error_kind::use_after_free;
  else if (address < s.user) out.kind = debug::error_kind::heap_buffer_underflow;
  else out.kind = debug::error_kind::heap_buffer_overflow;
  return true;
}

}  // namespace pcm::guard
