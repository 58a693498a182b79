// Sampling and the per-stack tables (see sampler.hpp). Runs inside malloc and
// free, in a signal handler and in fork handlers, so it never uses the heap:
// its tables come from os::map. Synchronisation: `table_lock` over records and
// sites (held for a few hundred instructions per sample or sampled free);
// `dump_lock` serialises dumps, which copy the sites under table_lock and
// write without it. fork waits for a dump in progress (both locks are taken in
// the prepare handler), so a child never inherits a half-written profile.
#include "sampler.hpp"

#include <atomic>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <unistd.h>

#include "lock.hpp"
#include "options.hpp"
#include "platform/platform.hpp"
#include "profile/tables.hpp"
#include "sampling.hpp"
#include "report/reporter.hpp"
#include "trace/stack_trace.hpp"
#include "trace/symbolize.hpp"

namespace pcm::profile {


namespace {

bool enabled = false;   // profile:true, and the tables are there

constexpr unsigned max_frames = 64;
constexpr std::uint32_t max_records = 1u << 18;   // live sampled blocks (~128 GiB of heap at 512 KiB)
constexpr std::uint32_t site_slots = 1u << 16;    // distinct allocation stacks

// One live sampled block: its site and its estimate, taken back when freed.
struct record {
  std::uint32_t site;
  std::uint32_t next_free;   // free list (index + 1; 0: end)
  double count, bytes;
};

struct thread_state {
  bool started;
  bool inside;               // sampling on this thread now (no recursion)
  std::uint64_t random;      // xorshift64* state
};
__thread thread_state self __attribute__((tls_model("initial-exec"))) = {};

mutex table_lock, dump_lock;
record* records = nullptr;
std::uint32_t records_used = 0, free_records = 0;   // bump and free list (index + 1)
site* sites = nullptr;
std::uint32_t* used_sites = nullptr;                 // slots in use, in order of first use
std::uint32_t sites_used = 0;
double rate = 512.0 * 1024;
double live_total = 0, alloc_total = 0, peak_total = 0, peak_snapshot_total = 0;
std::uint64_t samples = 0, dropped = 0;
std::atomic<bool> signal_pending{false};
std::atomic<std::uint32_t> thread_seeds{0};

double uniform() noexcept {   // in (0, 1]
  std::uint64_t x = self.random;
  x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
  self.random = x;
  return double((x * 0x2545F4914F6CDD1Dull) >> 11) * 0x1.0p-53 + 0x1.0p-54;
}

// Bytes until this thread's next sample: exponential with mean `rate`.
std::int64_t next_interval() noexcept {
  if (!self.started) {
    self.started = true;
    std::uint64_t seed = std::uint64_t(os::thread_id()) * 0x9E3779B97F4A7C15ull ^
                         (std::uint64_t(thread_seeds.fetch_add(1, std::memory_order_relaxed)) << 32) ^
                         reinterpret_cast<std::uintptr_t>(&self);
    self.random = seed ? seed : 1;
  }
  double interval = -std::log(uniform()) * rate;
  return interval >= 0x1.0p62 ? std::int64_t(1) << 62 : std::int64_t(interval) + 1;
}

std::uint32_t site_for(std::uint32_t stack) noexcept {   // REQUIRES: table_lock
  std::uint32_t slot = (stack * 0x9E3779B1u) >> 16;
  for (std::uint32_t probes = 0; probes < site_slots; ++probes, slot = (slot + 1) & (site_slots - 1)) {
    if (sites[slot].stack == stack) return slot;
    if (sites[slot].stack == 0) {
      if (sites_used >= site_slots / 2) return site_slots;   // keep probes short: full
      sites[slot].stack = stack;
      used_sites[sites_used++] = slot;
      return slot;
    }
  }
  return site_slots;
}

// The live heap as the peak profile, whenever it has grown by 1/256 since the
// last copy: the peak profile is within 0.4 % of the true peak, and a growing
// heap copies the sites about 256 times per doubling, not at every sample.
void copy_live_to_peak() noexcept {   // REQUIRES: table_lock
  peak_snapshot_total = live_total;
  for (std::uint32_t i = 0; i < sites_used; ++i) {
    site& s = sites[used_sites[i]];
    s.peak_count = s.live_count;
    s.peak_bytes = s.live_bytes;
  }
}
void note_peak() noexcept {   // REQUIRES: table_lock
  if (live_total <= peak_total) return;
  peak_total = live_total;
  if (live_total >= peak_snapshot_total * (1.0 + 1.0 / 256)) copy_live_to_peak();
}

void* plain(std::size_t size, std::size_t alignment, bool zero) noexcept {
  if (zero) return pcm::allocate_zeroed(1, size);
  return alignment <= 16 ? pcm::allocate(size) : pcm::allocate_aligned(alignment, size);
}

void write_signal_dump() noexcept;

// A sampled block of `size` bytes, or nullptr with *recorded false when the
// allocation is not to be sampled after all (the caller then allocates plainly).
// The stack is the program's (debug::capture_program drops the library's own
// frames, however many the entry points and sampling's slow path put there).
// With `old` (realloc of a block to a large size): the core reallocates it, in
// place or by mremap when it can, and the result is tagged.
[[gnu::always_inline]] inline void* sampled_block(std::size_t size, std::size_t alignment, bool zero, bool* recorded,
                                                  void* old = nullptr) noexcept {
  *recorded = false;
  bool first = !self.started;
  std::int64_t owed = sampling::countdown.bytes_until_profile;     // already charged with `size`
  sampling::countdown.bytes_until_profile = next_interval();
  // A thread's first count starts at 0: its first interval is drawn now, and
  // this allocation is charged against it like any other.
  if (first && (sampling::countdown.bytes_until_profile += owed) >= 0) return nullptr;
  if (self.inside || size == 0) return nullptr;
  self.inside = true;
  void* frames[max_frames];
  unsigned depth = debug::capture_program(frames, max_frames);
  std::uint32_t stack = depth ? debug::stack_depot_save(frames, depth) : 0;
  double p = -std::expm1(-double(size) / rate);
  double count = 1.0 / p, bytes = double(size) / p;
  std::uint32_t index = 0;
  if (stack) {
    lock_guard guard(table_lock);
    std::uint32_t slot = site_for(stack);
    if (slot < site_slots && (free_records || records_used < max_records)) {
      if (free_records) { index = free_records; free_records = records[index - 1].next_free; }
      else index = ++records_used;
      records[index - 1] = {slot, 0, count, bytes};
      site& s = sites[slot];
      s.alloc_count += count; s.alloc_bytes += bytes;
      s.live_count += count; s.live_bytes += bytes;
      ++s.live_samples;
      alloc_total += bytes;
      live_total += bytes;
      ++samples;
      note_peak();
    } else {
      ++dropped;
    }
  }
  void* p_block = nullptr;
  if (index) {
    bool tagged;
    if (old) {
      p_block = pcm::reallocate(old, size);
      tagged = p_block && pcm::tag_sampled(p_block, index);   // (sizes above small_max: always)
    } else {
      p_block = pcm::allocate_sampled(size, alignment, zero, index);
      tagged = p_block != nullptr;
    }
    if (!tagged) {   // out of memory: take the sample back
      lock_guard guard(table_lock);
      const record& r = records[index - 1];
      site& s = sites[r.site];
      s.alloc_count -= r.count; s.alloc_bytes -= r.bytes;
      s.live_count -= r.count; s.live_bytes -= r.bytes;
      --s.live_samples;
      alloc_total -= r.bytes;
      live_total -= r.bytes;
      --samples;
      records[index - 1].next_free = free_records;
      free_records = index;
    }
    *recorded = true;
  }
  self.inside = false;
  if (signal_pending.load(std::memory_order_relaxed)) [[unlikely]] write_signal_dump();
  return p_block;
}

void sampled_free(void*, std::uint32_t index) noexcept {
  lock_guard guard(table_lock);
  record& r = records[index - 1];
  site& s = sites[r.site];
  s.live_count -= r.count;
  s.live_bytes -= r.bytes;
  if (--s.live_samples == 0) s.live_count = s.live_bytes = 0;   // no drift from rounding
  live_total -= r.bytes;
  if (live_total < 0) live_total = 0;
  r.next_free = free_records;
  free_records = index;
}

// REQUIRES: dump_lock. Copies the sites (table_lock held only for the copy).
int dump_locked(const char* prefix) noexcept {
  std::size_t bytes = os::round_to_pages(std::size_t(site_slots) * sizeof(site));
  auto* copy = static_cast<site*>(os::map(bytes));
  if (!copy) { errno = ENOMEM; return -1; }
  snapshot shot{};
  {
    lock_guard guard(table_lock);
    if (live_total > peak_snapshot_total) copy_live_to_peak();   // at the peak now
    for (std::uint32_t i = 0; i < sites_used; ++i) copy[i] = sites[used_sites[i]];
    shot = {copy, sites_used, std::uint64_t(rate), live_total, peak_snapshot_total, alloc_total, samples, dropped};
  }
  int result = write_profiles(prefix, shot);
  int saved = errno;
  os::unmap(copy, bytes);
  errno = saved;
  return result;
}

const char* file_prefix() noexcept { return config.profile_file[0] ? config.profile_file : "pcmalloc-profile"; }

std::atomic<unsigned> signal_dumps{0};

// On profile_signal: write now when no thread is inside the tables or a dump
// (this thread may be one of them: it was interrupted); otherwise the next
// sample on any thread writes it.
void write_signal_dump() noexcept {
  if (!dump_lock.try_lock()) return;
  if (!table_lock.try_lock()) { dump_lock.unlock(); return; }
  table_lock.unlock();   // free now; dump_locked takes it briefly, and we hold dump_lock
  if (signal_pending.exchange(false)) {
    char prefix[320];
    std::snprintf(prefix, sizeof prefix, "%s.%ld.sig%u", file_prefix(), long(getpid()),
                  signal_dumps.fetch_add(1, std::memory_order_relaxed) + 1);
    dump_locked(prefix);
  }
  dump_lock.unlock();
}

void on_signal(int) {
  int saved = errno;
  signal_pending.store(true);
  bool inside = self.inside;
  self.inside = true;   // no sampling from the handler
  write_signal_dump();
  self.inside = inside;
  errno = saved;
}

void fork_prepare() { dump_lock.lock(); table_lock.lock(); }
void fork_parent() { table_lock.unlock(); dump_lock.unlock(); }
void fork_child() {
  table_lock.reset_after_fork();
  dump_lock.reset_after_fork();
  debug::symbolize_after_fork_child();
}

void* map_zeroed(std::size_t bytes) noexcept { return os::map(os::round_to_pages(bytes)); }

// Before main (and before other threads): turn the profiler on if asked.
__attribute__((constructor)) void start_profiler() {
  pcm::ensure_initialised();
  if (!config.profile) return;
  records = static_cast<record*>(map_zeroed(std::size_t(max_records) * sizeof(record)));
  sites = static_cast<site*>(map_zeroed(std::size_t(site_slots) * sizeof(site)));
  used_sites = static_cast<std::uint32_t*>(map_zeroed(std::size_t(site_slots) * sizeof(std::uint32_t)));
  if (!records || !sites || !used_sites) return;
  rate = config.profile_rate ? double(config.profile_rate) : 1.0;
  debug::find_own_code();   // where stacks start (capture_program)
  if (!config.profile_symbols) debug::set_addr2line_path(nullptr);   // no addr2line child at a dump
  pcm::detail::sampled_free_hook = sampled_free;
  pcm::add_fork_hooks(fork_prepare, fork_parent, fork_child);
  if (config.profile_signal) {
    struct sigaction action {};
    action.sa_handler = on_signal;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    sigaction(int(config.profile_signal), &action, nullptr);
  }
  enabled = true;
  sampling::turn_on_profile();
}

// At exit, after the program's own destructors: the final profiles.
__attribute__((destructor)) void dump_at_exit() {
  if (!enabled) return;
  self.inside = true;
  char prefix[320];
  std::snprintf(prefix, sizeof prefix, "%s.%ld", file_prefix(), long(getpid()));
  lock_guard guard(dump_lock);
  dump_locked(prefix);
}

}  // namespace

void* allocate(std::size_t size, std::size_t alignment, bool zero) noexcept {
  bool recorded;
  void* p = sampled_block(size, alignment, zero, &recorded);
  return recorded ? p : plain(size, alignment, zero);
}

void* reallocate(void* p, std::size_t size) noexcept {
  if (!p || size == 0) return pcm::reallocate(p, size);
  bool recorded;
  if (size > small_max) {   // grown or moved by the core (mremap for huge blocks), then tagged
    void* q = sampled_block(size, 16, false, &recorded, p);
    return recorded ? q : pcm::reallocate(p, size);
  }
  // p checked before a sample is taken: a freed or foreign pointer is reported as a realloc's.
  std::size_t old_size = pcm::detail::usable_size_for(p, "realloc");
  void* q = sampled_block(size, 16, false, &recorded);
  if (!recorded) return pcm::reallocate(p, size);
  if (!q) return nullptr;   // the old block stays valid
  std::memcpy(q, p, old_size < size ? old_size : size);
  pcm::deallocate(p);
  return q;
}

int dump(const char* prefix) noexcept {
  if (!enabled) { errno = ENOTSUP; return -1; }
  if (!prefix || !*prefix) { errno = EINVAL; return -1; }
  bool inside = self.inside;
  self.inside = true;
  int result;
  {
    lock_guard guard(dump_lock);
    result = dump_locked(prefix);
  }
  self.inside = inside;
  return result;
}

}  // namespace pcm::profile
