#include "debug_heap.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <link.h>
#include <ucontext.h>
#include <unistd.h>

#include "explicit_arena.hpp"
#include "heap.hpp"
#include "lock.hpp"
#include "options.hpp"
#include "platform/platform.hpp"
#include "report/reporter.hpp"
#include "trace/stack_trace.hpp"
#include "trace/symbolize.hpp"

extern "C" void* __libc_stack_end;

namespace pcm::debug {
namespace {

constexpr unsigned char canary_byte = 0xCB;   // around every block
constexpr unsigned char freed_byte = 0xDF;    // over every freed block but its first word
constexpr std::size_t redzone = 16;           // at least this much canary on each side
constexpr unsigned max_frames = 64;

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) & ~(to - 1); }

std::uint32_t save_stack() { return save_here(); }

// First byte in [p, p + n) that is not `value`, or nullptr.
const unsigned char* first_mismatch(const void* p, std::size_t n, unsigned char value) {
  auto* bytes = static_cast<const unsigned char*>(p);
  std::uint64_t word = 0x0101010101010101ull * value;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t chunk;
    std::memcpy(&chunk, bytes + i, 8);
    if (chunk != word) break;
  }
  for (; i < n; ++i) if (bytes[i] != value) return bytes + i;
  return nullptr;
}

// ---- block layout ------------------------------------------------------------
// Plain:   raw [left canary][record slot][canary][user block][right canary up to the core's usable size]
//          The slot (8 bytes at user - 16) holds the block's record: free and
//          realloc find it without a hash lookup. It is part of the left canary:
//          its expected value is the record's address.
// Guarded: [guard page][canary][user block, ending on the next page][guard page]

constexpr std::size_t max_guarded_blocks = 12000;   // 36k of the kernel's 65530 mappings
std::atomic<std::size_t> guarded_blocks{0};

std::size_t left_redzone(std::size_t alignment) { return alignment > redzone ? alignment : redzone; }

constexpr std::size_t slot_offset = 16;   // the record slot lies at user - 16
unsigned char* record_slot(std::uintptr_t user) { return reinterpret_cast<unsigned char*>(user - slot_offset); }
void write_slot(const block_record& r) {
  const block_record* self = &r;
  std::memcpy(record_slot(r.user), &self, sizeof self);
}
// The byte the left redzone should hold at b (plain blocks).
unsigned char expected_left(const block_record& r, const unsigned char* b) {
  const unsigned char* slot = record_slot(r.user);
  if (b < slot || b >= slot + sizeof(void*)) return canary_byte;
  const block_record* self = &r;
  unsigned char bytes[sizeof self];
  std::memcpy(bytes, &self, sizeof self);
  return bytes[b - slot];
}

// The core block that contains `address`, or nullptr. pcm::block_start knows
// any byte of a small block but only the first page of a large or huge one;
// deeper in (an aligned block's user pointer lies a whole alignment past its
// start; an interior pointer) the pages before are tried, as far back as a
// large block reaches.
constexpr std::uintptr_t max_pages_back = (std::uintptr_t(2) << 20) / 4096;
void* core_block_containing(std::uintptr_t address) {
  if (void* raw = pcm::block_start(reinterpret_cast<void*>(address))) return raw;
  const std::uintptr_t page = os::page_start(address);
  for (std::uintptr_t back = 1; back <= max_pages_back && page >= back * os::page_size; ++back) {
    void* raw = pcm::block_start(reinterpret_cast<void*>(page - back * os::page_size));
    if (!raw) continue;
    auto start = reinterpret_cast<std::uintptr_t>(raw);
    return address < start + pcm::usable_size(raw) ? raw : nullptr;
  }
  return nullptr;
}

// The record of the plain block whose user pointer is `user`, through the
// slot; nullptr when p is no core block's user pointer or the slot does not
// name a record that names p back (an invalid pointer, or a smashed slot).
// Reads only inside the core block that contains p.
block_record* record_of(std::uintptr_t user) {
  void* raw = core_block_containing(user);
  if (!raw || user - reinterpret_cast<std::uintptr_t>(raw) < slot_offset) return nullptr;
  std::uintptr_t candidate;
  std::memcpy(&candidate, record_slot(user), sizeof candidate);
  block_record* r = registry::record_at(candidate);
  if (!r || __atomic_load_n(&r->user, __ATOMIC_RELAXED) != user || r->guarded) return nullptr;
  return r;
}

// Blocks the slot cannot find are also keyed by user pointer in the
// registry's hash: guarded blocks (their redzone may be inaccessible) and
// plain blocks whose user pointer lies further into the core block than
// core_block_containing looks back (alignments above 2 MiB).
std::atomic<bool> any_hashed{false};
bool far_from_start(std::size_t left) { return left > max_pages_back * os::page_size; }
bool hashed_records() { return any_hashed.load(std::memory_order_relaxed); }

// Any block's record by its user pointer: the slot, else the hash.
block_record* lookup(std::uintptr_t user) {
  if (block_record* r = record_of(user)) return r;
  return hashed_records() ? registry::find(user) : nullptr;
}

// The block ends as near the guard page as its alignment allows: exactly on
// it when the size is a multiple of the alignment (16 at least: malloc's
// guarantee, which programs rely on, e.g. python3's aligned loads), so an
// overflow by one byte faults; otherwise the few bytes between are canary,
// checked at free.
bool allocate_guarded(block_record& r, std::size_t size, std::size_t alignment) {
  std::size_t page = os::page_size;
  std::size_t body = round_up(size ? size : 1, alignment);
  std::size_t data = round_up(body + redzone, page);
  std::size_t total = data + 2 * page;
  auto* mapping = static_cast<char*>(os::map(total));
  if (!mapping) return false;
  os::protect_none(mapping, page);
  os::protect_none(mapping + page + data, page);
  r.raw = mapping;
  r.raw_bytes = total;
  r.user = reinterpret_cast<std::uintptr_t>(mapping + page + data - body);
  r.guarded = true;
  return true;
}

void fill_canaries(const block_record& r) {
  auto* raw = static_cast<unsigned char*>(r.raw);
  auto* user = reinterpret_cast<unsigned char*>(r.user);
  if (r.guarded) {
    unsigned char* data = raw + os::page_size;
    std::memset(data, canary_byte, std::size_t(user - data));
    std::size_t tail = std::size_t(raw + r.raw_bytes - os::page_size - (user + r.size));
    std::memset(user + r.size, canary_byte, tail);
    return;
  }
  std::memset(raw, canary_byte, std::size_t(user - raw));
  std::memset(user + r.size, canary_byte, r.raw_bytes - std::size_t(user - raw) - r.size);
  write_slot(r);
}

// Report a damaged canary; true when both were intact.
bool check_canaries(const block_record& r) {
  auto* raw = static_cast<unsigned char*>(r.raw);
  auto* user = reinterpret_cast<unsigned char*>(r.user);
  unsigned char* left = r.guarded ? raw + os::page_size : raw;
  unsigned char* end = r.guarded ? raw + r.raw_bytes - os::page_size : raw + r.raw_bytes;
  // The byte nearest the block tells the direction best (searched only once
  // the word-wise check found damage).
  bool left_damaged;
  if (r.guarded) {
    left_damaged = first_mismatch(left, std::size_t(user - left), canary_byte) != nullptr;
  } else {
    unsigned char* slot = record_slot(r.user);
    const block_record* self = &r;
    left_damaged = first_mismatch(left, std::size_t(slot - left), canary_byte) ||
                   std::memcmp(slot, &self, sizeof self) != 0 ||
                   first_mismatch(slot + sizeof self, std::size_t(user - slot) - sizeof self, canary_byte);
  }
  if (left_damaged)
  for (unsigned char* b = user; b-- > left;) {
    if (*b != (r.guarded ? canary_byte : expected_left(r, b))) {
      report({error_kind::heap_buffer_underflow, "the canary before the block was overwritten",
              reinterpret_cast<std::uintptr_t>(b), &r});
      return false;
    }
  }
  if (const unsigned char* bad = first_mismatch(user + r.size, std::size_t(end - (user + r.size)), canary_byte)) {
    report({error_kind::heap_buffer_overflow, "the canary after the block was overwritten",
            reinterpret_cast<std::uintptr_t>(bad), &r});
    return false;
  }
  return true;
}

// ---- quarantine ----------------------------------------------------------------
// Each shard is a ring of entries in FIFO order. Leaving quarantine, a block
// and its record are cold (the whole quarantine went through the cache since):
// the ring is read in order (the hardware prefetches it) and carries the
// addresses needed to prefetch the blocks due a few evictions ahead, so their
// misses overlap instead of following one another down a linked list.
constexpr unsigned quarantine_shards = 8;
// Per shard: 1.5 MiB once the ring has wrapped; 512k freed blocks over the 8
// shards (tiny blocks reach this cap before the byte budget).
constexpr std::size_t ring_entries = std::size_t(1) << 16;
constexpr std::size_t prefetch_ahead = 8;
struct quarantine_entry {
  block_record* record;   // nullptr: taken out early (its arena needed it), a hole
  std::uintptr_t user;
  std::size_t cost;
  std::size_t size;
};
struct alignas(64) quarantine_shard {
  mutex lock;
  quarantine_entry* ring = nullptr;   // reserved at first use
  std::size_t head = 0, tail = 0;     // oldest, next free (counters; index = counter % ring_entries)
  // Blocks taken off the ring (under the lock) and not yet released (after
  // it): an arena going away waits for them (release_quarantined).
  std::atomic<unsigned> releasing{0};
  quarantine_entry& at(std::size_t counter) { return ring[counter & (ring_entries - 1)]; }
};
quarantine_shard quarantine[quarantine_shards];
std::atomic<bool> exiting{false};   // check_at_exit started: nothing leaves quarantine any more

std::size_t quarantine_cost(const block_record& r) { return r.raw_bytes; }

// The record goes first: once the core has the memory back it may hand it out
// again, and no record may still name it then.
void release_block(block_record* r) {
  void* raw = r->raw;
  std::size_t bytes = r->raw_bytes;
  bool guarded = r->guarded;
  registry::erase(r);
  if (guarded) {
    os::unmap(raw, bytes);
    guarded_blocks.fetch_sub(1, std::memory_order_relaxed);
  } else {
    pcm::deallocate(raw);
  }
}

// A freed block reads as freed_byte, except its first word, which reads as
// zero: a stale pointer to the block then holds null links and counts, and
// operator delete[] on it reads an array cookie of no elements (0xDFDF...
// elements kept a double delete[] running destructors until its report).
constexpr std::size_t zeroed_head = 8;
void poison_freed(unsigned char* user, std::size_t size) {
  std::size_t zeroed = size < zeroed_head ? size : zeroed_head;
  std::memset(user, 0, zeroed);
  std::memset(user + zeroed, freed_byte, size - zeroed);
}
// First byte of [user + from, user + from + n) that poison_freed did not write.
const unsigned char* first_unpoisoned(const unsigned char* user, std::size_t from, std::size_t n) {
  for (; from < zeroed_head && n > 0; ++from, --n)
    if (user[from] != 0) return user + from;
  return n ? first_mismatch(user + from, n, freed_byte) : nullptr;
}

// A block leaving quarantine (or checked at exit): still poisoned?
// Leaving quarantine, a block is cold (the whole quarantine went through the
// cache since it was freed): reading all of it back doubled the memory traffic
// of the debug heap. The first 256 bytes (where a stale pointer's fields,
// links and counts lie) and the last 64 are checked then; the whole block and
// its canaries at exit; guard:true catches every access at once.
constexpr std::size_t checked_head = 256, checked_tail = 64;
void verify_freed(block_record& r, const char* what, bool whole) {
  if (r.guarded) return;
  auto* user = reinterpret_cast<const unsigned char*>(r.user);
  const unsigned char* bad = nullptr;
  if (whole || r.size <= checked_head + checked_tail) {
    bad = first_unpoisoned(user, 0, r.size);
  } else {
    bad = first_unpoisoned(user, 0, checked_head);
    if (!bad) bad = first_unpoisoned(user, r.size - checked_tail, checked_tail);
  }
  if (bad) {
    report({error_kind::use_after_free, what, reinterpret_cast<std::uintptr_t>(bad), &r});
    return;
  }
  if (whole) check_canaries(r);
}

// quarantine_bytes bounds the whole quarantine: a freed block waits in its
// CPU's shard, and when the total is over budget the oldest blocks leave, from
// this CPU's shard first, then from the others (a thread that moved CPUs left
// its older blocks there). Until 2026-11-27 each shard had an eighth of the
// budget, so one thread's window was 8 MiB of the documented 64.
std::atomic<std::size_t> quarantined_bytes{0};

void quarantine_push(block_record* r) {
  const unsigned home = pcm::current_cpu() % quarantine_shards;
  const std::size_t limit = config.quarantine_bytes;
  constexpr unsigned batch = 16;   // evicted per lock hold; verified and released outside it
  auto over_budget = [limit] { return quarantined_bytes.load(std::memory_order_relaxed) > limit; };
  for (unsigned k = 0; k < quarantine_shards;) {
    quarantine_shard& q = quarantine[(home + k) % quarantine_shards];
    block_record* evicted[batch];
    unsigned count = 0;
    {
      lock_guard guard(q.lock);
      if (k == 0) {
        if (!q.ring) q.ring = static_cast<quarantine_entry*>(os::reserve_sparse(ring_entries * sizeof(quarantine_entry)));
        if (r && q.ring && q.tail - q.head < ring_entries) {
          std::size_t cost = quarantine_cost(*r);
          q.at(q.tail++) = {r, r->user, cost, r->size};
          quarantined_bytes.fetch_add(cost, std::memory_order_relaxed);
          r = nullptr;
        }
      }
      while (q.ring && q.head != q.tail && count < batch && (over_budget() || r) &&
             !exiting.load(std::memory_order_acquire)) {
        quarantine_entry& old = q.at(q.head++);
        quarantined_bytes.fetch_sub(old.cost, std::memory_order_relaxed);
        if (old.record) evicted[count++] = old.record;
        if (q.tail - q.head > prefetch_ahead && q.at(q.head + prefetch_ahead).record) {
          quarantine_entry& soon = q.at(q.head + prefetch_ahead);
          __builtin_prefetch(soon.record, 1);
          // Every line verify_freed reads (and the core's free writes the first).
          auto* user = reinterpret_cast<const char*>(soon.user);
          std::size_t head = soon.size < checked_head ? soon.size : checked_head;
          for (std::size_t line = 0; line < head; line += 64) __builtin_prefetch(user + line);
          if (soon.size > checked_head) __builtin_prefetch(user + soon.size - 1);
          if (soon.size > checked_head + 64) __builtin_prefetch(user + soon.size - checked_tail);
        }
      }
      if (r && k == 0 && !q.ring) { evicted[count++] = r; r = nullptr; }   // no ring at all: release at once
      if (r && exiting.load(std::memory_order_acquire)) r = nullptr;       // ring full at exit: kept, never released
      if (count) q.releasing.fetch_add(count, std::memory_order_relaxed);
    }
    for (unsigned i = 0; i < count; ++i) {
      verify_freed(*evicted[i], "the block was written after it was freed (found when it left quarantine)", false);
      release_block(evicted[i]);
    }
    if (count) q.releasing.fetch_sub(count, std::memory_order_release);
    if (r || count == batch) continue;   // r still to park (its ring was full), or more to evict here
    if (!over_budget() || exiting.load(std::memory_order_acquire)) return;
    ++k;   // this shard is empty: the older blocks wait in another
  }
}

// An explicit arena's blocks leave quarantine early when the arena needs the
// memory or goes away: taken out of the rings (their entries become holes that
// eviction skips), checked as on eviction, released to the arena. Returns
// whether any was.
bool release_quarantined_of(arena_core& a) {
  constexpr unsigned batch = 64;
  bool any = false;
  for (quarantine_shard& q : quarantine) {
    for (bool more = true; more;) {
      block_record* taken[batch];
      unsigned count = 0;
      {
        lock_guard guard(q.lock);
        for (std::size_t i = q.head; q.ring && i != q.tail && count < batch; ++i) {
          quarantine_entry& e = q.at(i);
          if (!e.record || e.record->guarded || explicit_arenas::owner_of(e.record->raw) != &a) continue;
          quarantined_bytes.fetch_sub(e.cost, std::memory_order_relaxed);
          taken[count++] = e.record;
          e = {nullptr, 0, 0, 0};
        }
      }
      more = count == batch;
      for (unsigned i = 0; i < count; ++i) {
        verify_freed(*taken[i], "the block was written after it was freed (found when its arena took it back)", false);
        release_block(taken[i]);
      }
      any |= count > 0;
    }
  }
  return any;
}

// The core block under a debug block: the global heap's, or an arena's (which
// takes back its quarantined blocks when it runs out, then tries again).
void* core_allocate(arena_core* from, std::size_t bytes, std::size_t alignment) {
  if (!from) return alignment > 16 ? pcm::allocate_aligned(alignment, bytes) : pcm::allocate(bytes);
  void* raw = explicit_arenas::allocate(*from, bytes, alignment);
  if (!raw && release_quarantined_of(*from)) raw = explicit_arenas::allocate(*from, bytes, alignment);
  return raw;
}

bool mapping_of(std::uintptr_t address, std::uintptr_t* begin, std::uintptr_t* end);

// A block claimed for free (its record now quarantined, its free stack taken):
// canaries checked, contents poisoned (or pages made inaccessible), parked.
void retire(block_record* r) {
  check_canaries(*r);
  if (r->guarded) os::protect_none(r->raw, r->raw_bytes);
  else poison_freed(reinterpret_cast<unsigned char*>(r->user), r->size);
  quarantine_push(r);
}

// ---- invalid pointers --------------------------------------------------------------
// Say what a pointer that is no live block is: inside a block, a freed block,
// the stack, a global, or memory that is not ours.
void report_unknown_pointer(const void* p, const char* operation, error_kind kind) {
  auto address = reinterpret_cast<std::uintptr_t>(p);
  char what[256];
  if (block_record* around = registry::containing(address)) {
    std::snprintf(what, sizeof what, "%s of a pointer into a block, not its start", operation);
    report({kind, what, address, around});
    return;
  }
  Dl_info info{};
  int dummy;
  auto stack_top = reinterpret_cast<std::uintptr_t>(__libc_stack_end);
  auto stack_here = reinterpret_cast<std::uintptr_t>(&dummy);
  std::uintptr_t map_begin = 0, map_end = 0;
  // __libc_stack_end is the main thread's: below it lies this stack only when
  // this is the main thread (its stack pointer close below that end).
  const bool main_thread = stack_here < stack_top && stack_top - stack_here < (std::uintptr_t(1) << 26);
  bool on_this_stack = (main_thread && address >= stack_here && address < stack_top) ||
                       (mapping_of(address, &map_begin, &map_end) && stack_here >= map_begin && stack_here < map_end);
  if (on_this_stack)
    std::snprintf(what, sizeof what, "%s of a pointer to the stack", operation);
  else if (dladdr(p, &info) && info.dli_fname)
    std::snprintf(what, sizeof what, "%s of a pointer to a global or static object (in %s%s%s)", operation,
                  info.dli_fname, info.dli_sname ? ", near " : "", info.dli_sname ? info.dli_sname : "");
  else if (pcm::block_start(p))
    std::snprintf(what, sizeof what, "%s of a pointer to heap memory that is not a live block (freed long ago?)", operation);
  else
    std::snprintf(what, sizeof what, "%s of a pointer that pcmalloc never handed out (foreign memory)", operation);
  report({kind, what, address, nullptr});
}

const char* alloc_name(request k) {
  switch (k) {
    case request::malloc_family: return "malloc";
    case request::new_scalar: return "operator new";
    case request::new_array: return "operator new[]";
  }
  return "malloc";
}

// ---- guard-page faults -------------------------------------------------------------
struct sigaction previous_segv;

void on_fault(int signal, siginfo_t* info, void* context) {
  auto address = reinterpret_cast<std::uintptr_t>(info->si_addr);
  block_record* r = registry::containing(address);
  if (!r || !r->guarded) {
    // Not ours: let the program's own handler, or the default action, have it.
    sigaction(signal, &previous_segv, nullptr);
    return;
  }
  void* frames[max_frames];
  unsigned depth = capture_from_context(context, frames, max_frames);
  bool write = false;
#if defined(__x86_64__)
  write = (static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_ERR] & 2) != 0;
#endif
  error_kind kind;
  char what[160];
  if (r->state == block_state::quarantined) {
    kind = error_kind::use_after_free;
    std::snprintf(what, sizeof what, "%s of a freed block (guard pages)", write ? "write" : "read");
  } else if (address >= r->user + r->size) {
    kind = error_kind::heap_buffer_overflow;
    std::snprintf(what, sizeof what, "%s past the end of the block (guard page)", write ? "write" : "read");
  } else {
    kind = error_kind::heap_buffer_underflow;
    std::snprintf(what, sizeof what, "%s before the start of the block (guard page)", write ? "write" : "read");
  }
  report({kind, what, address, r, 0, frames, depth});
  os::write_error("pcmalloc-debug: stopping: the access cannot be resumed\n", 55);
  std::fflush(nullptr);
  _exit(int(config.error_exit_code ? config.error_exit_code : 1));
}

void install_fault_handler() {
  struct sigaction action {};
  action.sa_sigaction = on_fault;
  action.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  sigaction(SIGSEGV, &action, &previous_segv);
}

// ---- leak scan -------------------------------------------------------------------------
// Conservative mark phase (LeakSanitizer-style). Roots: the writable segments
// of every loaded object, and every private writable anonymous mapping of the
// process (all threads' stacks, their TLS and thread control blocks, cached
// stacks of exited threads that glibc keeps with their TLS, memory the program
// mapped itself), except the memory of the blocks themselves and the registry's
// records; the calling thread's stack only from its stack pointer up. Then
// every reachable block's contents. Unreachable live blocks are leaks.
struct work_list {
  block_record** items = nullptr;
  std::size_t count = 0, capacity = 0;
  // Sized once before the scan: a block is pushed at most once (it is marked
  // first), so the list never grows while mappings are being read.
  bool reserve(std::size_t n) {
    capacity = n ? n : 1;
    items = static_cast<block_record**>(os::map(capacity * sizeof(block_record*)));
    return items != nullptr;
  }
  void push(block_record* r) { if (count < capacity) items[count++] = r; }
  ~work_list() { if (items) os::unmap(items, capacity * sizeof(block_record*)); }
};

// Live blocks at least a page long, and guarded blocks, sorted by user
// pointer, built before the leak scan: a word the page map cannot place (a
// large block is named by its first page only, an aligned block's user pointer
// lies pages into it, a guarded block is not the core's at all) is looked up
// here in O(log n), not by walking the page map back per word.
struct block_span {
  std::uintptr_t begin, end;   // the user bytes
  block_record* record;
};
struct span_table {
  block_span* spans = nullptr;
  std::size_t count = 0, capacity = 0;
  bool build() {
    capacity = registry::live_count() + 64;
    spans = static_cast<block_span*>(os::map(capacity * sizeof(block_span)));
    if (!spans) return false;
    registry::for_each([this](block_record& r) {
      // Guarded blocks of any size: their mappings are not the core's, so the
      // page map places none of their bytes.
      if (count < capacity && (r.guarded || r.size >= os::page_size) && load_state(r.state) == block_state::live)
        spans[count++] = {r.user, r.user + r.size, &r};
    });
    std::sort(spans, spans + count, [](const block_span& a, const block_span& b) { return a.begin < b.begin; });
    return true;
  }
  block_record* find(std::uintptr_t value) const {
    const block_span* first = spans;
    const block_span* end = spans + count;
    const block_span* after = std::upper_bound(first, end, value,
                                               [](std::uintptr_t v, const block_span& s) { return v < s.begin; });
    if (after == first) return nullptr;
    const block_span& s = after[-1];
    return value < s.end ? s.record : nullptr;
  }
  ~span_table() { if (spans) os::unmap(spans, capacity * sizeof(block_span)); }
};
const span_table* large_spans = nullptr;   // during report_leaks only

// A pointer to a live block's first byte or into its user bytes (not its redzones).
block_record* block_at(std::uintptr_t value) {
  if (value < 4096) return nullptr;
  // Most words are not pointers into the core's blocks: the page map says so
  // without a lock. Guard mappings are not the core's; only guard mode looks
  // them up by address.
  void* raw = pcm::block_start(reinterpret_cast<void*>(value));
  if (!raw) {
    if (block_record* r = large_spans ? large_spans->find(value) : nullptr) return r;
    return hashed_records() ? registry::find(value) : nullptr;
  }
  if (block_record* r = record_of(value)) return r;   // the usual case: a pointer to the start
  // Interior pointer into a plain block: its user bytes start at raw + left
  // redzone, which is the block's alignment (16 B up to a page here; beyond,
  // the user pointer lies off the first page and the span table has it).
  auto start = reinterpret_cast<std::uintptr_t>(raw);
  for (std::size_t left = redzone; left <= os::page_size && start + left <= value; left *= 2) {
    block_record* r = record_of(start + left);
    if (r && r->raw == raw) return value >= r->user && value < r->user + r->size ? r : nullptr;
  }
  return large_spans ? large_spans->find(value) : nullptr;
}

void scan_range(std::uintptr_t begin, std::uintptr_t end, work_list& work) {
  begin = round_up(begin, sizeof(void*));
  for (std::uintptr_t a = begin; a + sizeof(void*) <= end; a += sizeof(void*)) {
    std::uintptr_t value;
    std::memcpy(&value, reinterpret_cast<void*>(a), sizeof value);
    block_record* r = block_at(value);
    if (r && !r->reachable && load_state(r->state) == block_state::live) {
      r->reachable = true;
      work.push(r);
    }
  }
}

int scan_module(dl_phdr_info* info, std::size_t, void* data) {
  auto& work = *static_cast<work_list*>(data);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_W)) continue;
    std::uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
    scan_range(begin, begin + ph.p_memsz, work);
  }
  return 0;
}

// Memory that must not count as a root, sorted by start.
struct excluded_range { std::uintptr_t begin, end; };
struct exclusions {
  excluded_range* items = nullptr;
  std::size_t count = 0, capacity = 0;
  bool build() {
    capacity = registry::live_count() + 4096;   // racy count: blocks made meanwhile are dropped
    items = static_cast<excluded_range*>(os::map(capacity * sizeof(excluded_range)));
    if (!items) return false;
    std::uintptr_t records_begin, records_end;
    registry::records_range(&records_begin, &records_end);
    items[count++] = {records_begin, records_end};
    registry::for_each([&](block_record& r) {
      if (count == capacity) return;
      auto raw = reinterpret_cast<std::uintptr_t>(r.raw);
      items[count++] = {raw, raw + r.raw_bytes};
    });
    std::sort(items, items + count, [](const excluded_range& a, const excluded_range& b) { return a.begin < b.begin; });
    return true;
  }
  // Scan [begin, end) minus the excluded ranges.
  void scan(std::uintptr_t begin, std::uintptr_t end, work_list& work) const {
    std::size_t lo = 0, hi = count;   // first range ending after begin
    while (lo < hi) {
      std::size_t mid = (lo + hi) / 2;
      if (items[mid].end <= begin) lo = mid + 1; else hi = mid;
    }
    for (std::size_t i = lo; i < count && begin < end && items[i].begin < end; ++i) {
      if (items[i].end <= begin) continue;   // ranges may overlap (records inside raw ranges never; keep it safe)
      if (items[i].begin > begin) scan_range(begin, items[i].begin, work);
      if (items[i].end > begin) begin = items[i].end;
    }
    if (begin < end) scan_range(begin, end, work);
  }
  ~exclusions() { if (items) os::unmap(items, capacity * sizeof(excluded_range)); }
};

// The whole of /proc/self/maps, read before the scan touches anything, into
// mapped memory (never the heap). Empty on failure.
struct maps_text {
  char* text = nullptr;
  std::size_t length = 0, capacity = 0;
  bool read() {
    for (capacity = std::size_t(1) << 20; capacity <= (std::size_t(1) << 28); capacity *= 4) {
      text = static_cast<char*>(os::map(capacity));
      if (!text) return false;
      int fd = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
      if (fd < 0) return false;
      length = 0;
      ssize_t n;
      while (length < capacity - 1 && (n = ::read(fd, text + length, capacity - 1 - length)) > 0) length += std::size_t(n);
      ::close(fd);
      if (length < capacity - 1) { text[length] = 0; return true; }
      os::unmap(text, capacity);   // did not fit: try a bigger buffer
      text = nullptr;
    }
    return false;
  }
  ~maps_text() { if (text) os::unmap(text, capacity); }
};

std::uintptr_t parse_hex(const char*& p) {
  std::uintptr_t v = 0;
  for (;; ++p) {
    char c = *p;
    if (c >= '0' && c <= '9') v = v * 16 + std::uintptr_t(c - '0');
    else if (c >= 'a' && c <= 'f') v = v * 16 + std::uintptr_t(c - 'a' + 10);
    else return v;
  }
}

// Other threads may still run while the scan reads their memory at exit (LSan
// stops them; this scan does not): a mapping unmapped under it faults. A fault
// on the scanning thread abandons that mapping; any other thread's fault goes
// to the handler that was there before.
sigjmp_buf scan_escape;
std::int32_t scanning_thread = 0;
struct sigaction scan_previous_segv, scan_previous_bus;

void on_scan_fault(int signal, siginfo_t*, void*) {
  if (current_thread() == scanning_thread) siglongjmp(scan_escape, 1);
  sigaction(signal, signal == SIGBUS ? &scan_previous_bus : &scan_previous_segv, nullptr);   // re-raised on return
}

// Its own frame: nothing of the caller's lives across the jump.
[[gnu::noinline]] void scan_or_skip(const exclusions& excluded, std::uintptr_t begin, std::uintptr_t end, work_list& work) {
  if (sigsetjmp(scan_escape, 1) == 0) excluded.scan(begin, end, work);
}

// Every private, readable and writable mapping that is anonymous (no file:
// stacks, TLS, the program's own mmaps; [heap], [stack], [anon:...]). Module
// data segments come from dl_iterate_phdr; device and shared mappings are left
// alone (reading them can have effects).
void scan_anonymous_mappings(const exclusions& excluded, work_list& work) {
  maps_text maps;
  if (!maps.read()) return;
  struct sigaction on_fault_during_scan {};
  on_fault_during_scan.sa_sigaction = on_scan_fault;
  on_fault_during_scan.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&on_fault_during_scan.sa_mask);
  scanning_thread = current_thread();
  sigaction(SIGSEGV, &on_fault_during_scan, &scan_previous_segv);
  sigaction(SIGBUS, &on_fault_during_scan, &scan_previous_bus);
  struct restore_handlers {
    ~restore_handlers() {
      sigaction(SIGSEGV, &scan_previous_segv, nullptr);
      sigaction(SIGBUS, &scan_previous_bus, nullptr);
      scanning_thread = 0;
    }
  } restore;
  int here;
  auto sp = reinterpret_cast<std::uintptr_t>(&here);
  for (const char* line = maps.text; *line;) {
    const char* end_of_line = std::strchr(line, '\n');
    if (!end_of_line) end_of_line = line + std::strlen(line);
    const char* p = line;
    std::uintptr_t begin = parse_hex(p);
    if (*p == '-') ++p;
    std::uintptr_t end = parse_hex(p);
    while (*p == ' ') ++p;
    bool private_rw = p[0] == 'r' && p[1] == 'w' && p[3] == 'p';
    // Skip offset, device and inode to the path (empty for anonymous memory).
    for (int field = 0; field < 4 && p < end_of_line; ++field) {
      while (p < end_of_line && *p != ' ') ++p;
      while (p < end_of_line && *p == ' ') ++p;
    }
    bool anonymous = p == end_of_line || (*p == '[' && std::strncmp(p, "[vvar]", 6) != 0 && std::strncmp(p, "[vdso]", 6) != 0 &&
                                          std::strncmp(p, "[vsyscall]", 10) != 0);
    if (private_rw && anonymous && begin < end) {
      // The calling thread: only the live part of its stack (below the
      // stack pointer lie stale copies that would hide leaks).
      if (sp >= begin && sp < end) begin = sp;
      scan_or_skip(excluded, begin, end, work);
    }
    line = *end_of_line ? end_of_line + 1 : end_of_line;
  }
}

// The mapping of /proc/self/maps that contains address: its bounds.
bool mapping_of(std::uintptr_t address, std::uintptr_t* begin, std::uintptr_t* end) {
  maps_text maps;
  if (!maps.read()) return false;
  for (const char* p = maps.text; *p;) {
    std::uintptr_t lo = parse_hex(p);
    if (*p == '-') ++p;
    std::uintptr_t hi = parse_hex(p);
    if (address >= lo && address < hi) { *begin = lo; *end = hi; return true; }
    p = std::strchr(p, '\n');
    if (!p) break;
    ++p;
  }
  return false;
}

// Leaks count as errors (exit status) only when PCMALLOC_CONF asks for the
// check by name ("leaks:true"); by default they are reported but leave the
// exit status alone, like valgrind's: many programs (sort, git) leave blocks
// to exit() on purpose, and a changed status would break their callers (git gc
// fails when its child `git prune` exits 23).
bool leaks_asked_for() { return config.leaks && option_given(config, "leaks"); }

struct leak_group {
  std::uint32_t stack;
  std::size_t count, bytes;
  block_record* example;
};

void report_leaks() {
  const bool strict = leaks_asked_for();
  work_list work;
  exclusions excluded;
  if (!work.reserve(registry::live_count() + 4096) || !excluded.build()) {
    os::write_error("pcmalloc-debug: no memory for the leak scan; leaks not checked\n", 63);
    return;
  }
  span_table spans;
  if (spans.build()) large_spans = &spans;
  dl_iterate_phdr(scan_module, &work);
  scan_anonymous_mappings(excluded, work);
  while (work.count) {
    block_record* r = work.items[--work.count];
    std::uintptr_t user = __atomic_load_n(&r->user, __ATOMIC_ACQUIRE);
    if (user) scan_range(user, user + r->size, work);   // 0: released by a thread still running
  }
  large_spans = nullptr;
  // Group the unreachable blocks by allocation stack.
  std::size_t groups_capacity = 4096, group_count = 0;
  auto* groups = static_cast<leak_group*>(os::map(groups_capacity * sizeof(leak_group)));
  std::size_t total_blocks = 0, total_bytes = 0;
  registry::for_each([&](block_record& r) {
    if (load_state(r.state) != block_state::live || r.reachable) { r.reachable = false; return; }
    ++total_blocks;
    total_bytes += r.size;
    std::size_t g = 0;
    while (g < group_count && groups[g].stack != r.alloc_stack) ++g;
    if (g == group_count) {
      if (!groups || group_count == groups_capacity) return;
      groups[group_count++] = {r.alloc_stack, 0, 0, &r};
    }
    groups[g].count++;
    groups[g].bytes += r.size;
  });
  // Largest first.
  for (std::size_t i = 1; i < group_count; ++i)
    for (std::size_t j = i; j > 0 && groups[j].bytes > groups[j - 1].bytes; --j) std::swap(groups[j], groups[j - 1]);
  for (std::size_t g = 0; strict && g < group_count; ++g) {
    error_report r{error_kind::memory_leak, "memory still allocated at exit and unreachable",
                   groups[g].example->user, groups[g].example};
    r.leak_count = groups[g].count;
    r.leak_bytes = groups[g].bytes;
    r.counts = strict;
    report(r);
  }
  if (total_blocks) {
    char line[200];
    int n = std::snprintf(line, sizeof line, "pcmalloc-debug: %zu bytes leaked in %zu blocks (%zu allocation sites)%s\n",
                          total_bytes, total_blocks, group_count,
                          strict ? "" : "; PCMALLOC_CONF=leaks:true reports them with their stacks");
    report_note(line, std::size_t(n) < sizeof line ? std::size_t(n) : sizeof line - 1);
  }
  if (groups) os::unmap(groups, groups_capacity * sizeof(leak_group));
  if (work.items) os::unmap(work.items, work.capacity * sizeof(block_record*));
}

void at_exit() { check_at_exit(); }

// fork(): the child must not inherit a registry stripe or quarantine shard
// locked by a thread that does not exist in it.
void fork_prepare() {
  reports_fork_prepare();   // a report takes registry stripes and shards under it: first
  for (quarantine_shard& q : quarantine) q.lock.lock();
  registry::lock_all();
}
void fork_parent() {
  registry::unlock_all(false);
  for (quarantine_shard& q : quarantine) q.lock.unlock();
  reports_fork_parent();
}
void fork_child() {
  reports_fork_child();
  symbolize_after_fork_child();
  registry::unlock_all(true);
  // A release in flight on another thread at the fork never finishes in the
  // child: its count would make an arena's destruction there wait forever.
  for (quarantine_shard& q : quarantine) {
    q.lock.reset_after_fork();
    q.releasing.store(0, std::memory_order_relaxed);
  }
}

__attribute__((constructor)) void start_debug_layer() {
  pcm::ensure_initialised();
  prepare_reports();
  if (config.guard) install_fault_handler();
  pcm::add_fork_hooks(fork_prepare, fork_parent, fork_child);   // inside the core's one registration
  std::atexit(at_exit);
}

}  // namespace

// ---- entry points ---------------------------------------------------------------------

void* allocate(std::size_t size, std::size_t alignment, request kind, bool zero, arena_core* from) noexcept {
  if (alignment < 16) alignment = 16;
  if (size > (std::size_t(1) << 46)) { errno = ENOMEM; return nullptr; }
  block_record staging{};
  bool guarded = config.guard && alignment <= os::page_size && !from;
  // Each guarded block is three kernel mappings (guard, data, guard), and the
  // kernel allows 65530 (vm.max_map_count) for everything: past
  // max_guarded_blocks live and quarantined, or when the kernel refuses, a block
  // gets canaries instead, and the program and the core keep room to map.
  // Only a block that was counted is uncounted (an arena's block, or one
  // aligned past a page, never was: uncounting it wrapped the count, and no
  // block was guarded again).
  const bool counted = guarded;
  if (guarded && guarded_blocks.fetch_add(1, std::memory_order_relaxed) >= max_guarded_blocks) guarded = false;
  if (guarded && !allocate_guarded(staging, size, alignment)) guarded = false;
  if (counted && !guarded) guarded_blocks.fetch_sub(1, std::memory_order_relaxed);
  if (!guarded) {
    std::size_t left = left_redzone(alignment);
    void* raw = core_allocate(from, left + size + redzone, alignment);
    if (!raw) return nullptr;
    staging.raw = raw;
    staging.raw_bytes = pcm::usable_size(raw);
    staging.user = reinterpret_cast<std::uintptr_t>(raw) + left;
  }
  const bool hashed = guarded || far_from_start(staging.user - reinterpret_cast<std::uintptr_t>(staging.raw));
  if (hashed && !hashed_records()) any_hashed.store(true, std::memory_order_relaxed);
  block_record* r = registry::insert(staging.user, hashed);
  if (!r) {
    if (guarded) {
      os::unmap(staging.raw, staging.raw_bytes);
      guarded_blocks.fetch_sub(1, std::memory_order_relaxed);
    } else {
      pcm::deallocate(staging.raw);
    }
    errno = ENOMEM;
    return nullptr;
  }
  r->raw = staging.raw;
  r->raw_bytes = staging.raw_bytes;
  r->guarded = staging.guarded;
  r->size = size;
  r->alignment_shift = std::uint8_t(__builtin_ctzll(alignment));   // a power of two
  r->kind = kind;
  r->alloc_thread = current_thread();
  r->alloc_stack = save_stack();
  fill_canaries(*r);
  void* user = reinterpret_cast<void*>(r->user);
  if (zero) std::memset(user, 0, size);
  // A block made while the exit checks run came after the leak scan read its
  // roots: it counts as reachable rather than as a leak.
  if (exiting.load(std::memory_order_acquire)) [[unlikely]] r->reachable = true;
  publish_state(r->state, block_state::live);   // last: the exit checks read only whole records
  return user;
}

void deallocate(void* p, request kind, std::size_t sized, const char* operation) noexcept {
  if (!p) return;
  block_state previous;
  auto user = reinterpret_cast<std::uintptr_t>(p);
  block_record* r = record_of(user);
  if (r && !registry::claim_for_free(r, user, &previous)) r = nullptr;
  if (!r && hashed_records()) r = registry::find_for_free(user, &previous);
  if (!r) {
    // A plain block whose slot was smashed (an underflow) is still a block:
    // found by a scan (slow, errors only), its canaries report the damage.
    block_record* around = registry::containing(user);
    if (!around || around->user != user || !registry::claim_for_free(around, user, &previous))
      return report_unknown_pointer(p, operation, error_kind::invalid_free);
    r = around;
  }
  if (previous == block_state::quarantined) {
    char what[128];
    std::snprintf(what, sizeof what, "%s of a block that was already freed", operation);
    return report({error_kind::double_free, what, r->user, r});
  }
  r->free_thread = current_thread();
  r->free_stack = save_stack();
  if (kind != r->kind) {
    char what[160];
    std::snprintf(what, sizeof what, "%s of a block allocated with %s", operation, alloc_name(r->kind));
    report({error_kind::alloc_dealloc_mismatch, what, r->user, r});
  } else if (sized && sized != r->size) {   // after a kind mismatch (delete of new[]) the size says nothing more
    char what[160];
    std::snprintf(what, sizeof what, "%s with size %zu for a block of %zu bytes", operation, sized, r->size);
    report({error_kind::sized_delete_mismatch, what, r->user, r});
  }
  retire(r);
}

void* reallocate(void* p, std::size_t size) noexcept {
  if (!p) return allocate(size, 16, request::malloc_family, false);
  block_record* r = lookup(reinterpret_cast<std::uintptr_t>(p));
  if (!r) r = registry::containing(reinterpret_cast<std::uintptr_t>(p));   // a smashed slot?
  if (r && r->user != reinterpret_cast<std::uintptr_t>(p)) r = nullptr;
  if (!r) {
    report_unknown_pointer(p, "realloc", error_kind::invalid_free);
    errno = EINVAL;
    return nullptr;
  }
  if (r->state == block_state::quarantined) {
    report({error_kind::realloc_of_freed, "realloc of a block that was already freed", r->user, r});
    errno = EINVAL;
    return nullptr;
  }
  if (size == 0) {
    deallocate(p, request::malloc_family, 0, "realloc");
    return nullptr;
  }
  // Always move: a stale pointer to the old block then lands in quarantine.
  void* q = allocate(size, r->alignment(), request::malloc_family, false);
  if (!q) return nullptr;
  std::memcpy(q, p, size < r->size ? size : r->size);
  // As free(): realloc of what operator new made is a mismatch.
  deallocate(p, request::malloc_family, 0, "realloc");
  return q;
}

std::size_t usable_size(const void* p) noexcept {
  if (!p) return 0;
  block_record* r = lookup(reinterpret_cast<std::uintptr_t>(p));
  if (!r || r->state != block_state::live) {
    report_unknown_pointer(p, "malloc_usable_size", error_kind::invalid_free);
    return 0;
  }
  return r->size;
}

bool owns(const void* p) noexcept {
  block_record* r = lookup(reinterpret_cast<std::uintptr_t>(p));
  return r && r->state == block_state::live;
}

void check_at_exit() noexcept {
  // Other threads may still run: from now on their frees keep what leaves the
  // quarantine instead of releasing it, so no record this check reads (nor the
  // memory of a block) goes away under it.
  exiting.store(true, std::memory_order_release);
  registry::for_each([](block_record& r) {
    if (load_state(r.state) == block_state::live) check_canaries(r);
  });
  for (quarantine_shard& q : quarantine) {
    lock_guard guard(q.lock);
    for (std::size_t i = q.head; q.ring && i != q.tail; ++i) {
      block_record* r = q.at(i).record;
      if (!r) continue;
      verify_freed(*r, "the block was written after it was freed (found at exit)", true);
    }
  }
  if (config.leaks) report_leaks();
  if (errors_reported()) {
    std::fflush(nullptr);
    _exit(int(config.error_exit_code));
  }
}

// ---- explicit arenas ------------------------------------------------------------------

void deallocate_in(arena_core& a, void* p) noexcept {
  if (!p) return;
  block_record* r = lookup(reinterpret_cast<std::uintptr_t>(p));
  if (r && load_state(r->state) == block_state::live && (r->guarded || explicit_arenas::owner_of(r->raw) != &a))
    return report({error_kind::invalid_free, "pcm::arena::deallocate of a block of another heap", r->user, r});
  deallocate(p, request::malloc_family, 0, "pcm::arena::deallocate");
}

bool arena_owns(const arena_core& a, const void* p) noexcept {
  block_record* r = lookup(reinterpret_cast<std::uintptr_t>(p));
  return r && load_state(r->state) == block_state::live && !r->guarded && explicit_arenas::owner_of(r->raw) == &a;
}

// A walk over every record: a reset costs time in proportion to the blocks
// the whole debug heap holds, not only the arena's (a record has no room left
// for a per-arena list).
void free_arena_blocks(arena_core& a) noexcept {
  const std::int32_t thread = current_thread();
  const std::uint32_t stack = save_stack();
  registry::for_each([&](block_record& r) {
    if (load_state(r.state) != block_state::live || r.guarded || explicit_arenas::owner_of(r.raw) != &a) return;
    block_state previous;
    // Another thread may have freed it since the walk read it live: then it
    // is that thread's to retire (a second retire would free it twice).
    if (!registry::claim_for_free(&r, r.user, &previous) || previous != block_state::live) return;
    r.free_thread = thread;
    r.free_stack = stack;
    retire(&r);
  });
}

void release_quarantined(arena_core& a) noexcept {
  release_quarantined_of(a);
  // Another thread may have taken some of a's blocks off a ring just before,
  // and be releasing them into a now: a must outlive that.
  for (quarantine_shard& q : quarantine)
    while (q.releasing.load(std::memory_order_acquire) != 0) os::yield_cpu();
}

}  // namespace pcm::debug
