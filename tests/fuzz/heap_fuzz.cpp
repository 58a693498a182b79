// libFuzzer target: sequences of pcm_* calls, pcm::arena and pcm::pmr resource
// operations decoded from the input, some run on a second thread while the
// first churns its own blocks. Every live block carries a pattern made from its
// id and each byte's offset; it is checked before every free, realloc and reset,
// so a block handed out twice, an overlap, a lost realloc prefix or an
// unzeroed calloc aborts the run. Also checked: usable size >= request,
// alignment, pcm_owns, and the errno of each expected failure.
// Built by run.sh with clang -fsanitize=fuzzer,address,undefined against a
// libpcmalloc built with -Doverride=false (the sanitizers keep malloc).
#include <fuzzer/FuzzedDataProvider.h>

#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <thread>
#include <vector>

#include <pcmalloc/arena.hpp>
#include <pcmalloc/pcmalloc.h>
#include <pcmalloc/pmr.hpp>

// The pattern code is the harness's own bookkeeping: libFuzzer's comparison
// tracing in it (most of the run time) would only guide inputs towards nothing.
#if defined(__clang__)
#define NO_COVERAGE __attribute__((no_sanitize("coverage")))
#else
#define NO_COVERAGE
#endif

namespace {

constexpr unsigned slot_count = 64;
constexpr std::size_t KiB = 1024, MiB = 1024 * KiB;
// Blocks up to this size are patterned whole; above, sparsely (see for_each_range).
constexpr std::size_t dense_limit = 32 * KiB;
constexpr std::size_t sparse_stride = 16 * KiB;
// Requests at or above this must fail; below it, with a valid alignment, they must succeed.
constexpr std::size_t absurd = std::size_t(1) << 60;
constexpr std::size_t largest_alignment = 8 * MiB;

enum class origin : std::uint8_t {
  heap,            // pcm_malloc & co.
  arena,           // pcm::arena::allocate on the growing arena
  buffer_arena,    // ... on the arena inside a caller's buffer
  global,          // pcm::pmr::global_resource()
  on_arena,        // arena_resource over the growing arena
  on_buffer,       // arena_resource over the buffer arena
  local,           // local_resource
  scoped,          // scoped_resource
};

struct block {
  unsigned char* p = nullptr;
  std::size_t size = 0;        // requested
  std::size_t alignment = 0;   // requested (resources: for deallocate)
  std::size_t filled = 0;      // bytes carrying the pattern (heap blocks: the usable size)
  std::uint32_t id = 0;
  origin from = origin::heap;
};

[[noreturn]] void fail(const char* what, const void* p, std::size_t size, std::size_t alignment) {
  std::fprintf(stderr, "heap_fuzz: %s (block %p, %zu bytes, alignment %zu, errno %d)\n", what, p, size, alignment,
               errno);
  std::abort();
}
[[noreturn]] void fail(const char* what, const block& b) { fail(what, b.p, b.size, b.alignment); }

NO_COVERAGE std::uint64_t word_of(std::uint32_t id, std::size_t word_index) {
  std::uint64_t x = (std::uint64_t(id) << 32 | 0x5bd1e995u) ^ (word_index * 0x9e3779b97f4a7c15ull);
  x ^= x >> 31;
  x *= 0xbf58476d1ce4e5b9ull;
  return x ^ (x >> 29);
}

// Calls visit(start, end) for the patterned ranges of a block of n bytes: the
// first 32 KiB whole, then 8 bytes every 16 KiB, then (with_tail) the last 8
// bytes: cheap for megabytes, still catches two blocks that overlap. Which
// bytes below the tail are patterned depends on the offset only, so a block
// grown or shrunk by realloc keeps a checkable prefix.
template <class Visit>
NO_COVERAGE void for_each_range(std::size_t n, Visit visit, bool with_tail = true) {
  visit(std::size_t(0), n < dense_limit ? n : dense_limit);
  for (std::size_t at = dense_limit; at < n; at += sparse_stride) visit(at, at + 8 < n ? at + 8 : n);
  if (with_tail && n > dense_limit) visit(n - 8, n);
}

NO_COVERAGE void fill_range(unsigned char* p, std::uint32_t id, std::size_t start, std::size_t end) {
  std::size_t at = start;
  for (; at < end && at % 8; ++at) p[at] = std::uint8_t(word_of(id, at / 8) >> (at % 8 * 8));
  for (; at + 8 <= end; at += 8) {
    std::uint64_t w = word_of(id, at / 8);
    std::memcpy(p + at, &w, 8);
  }
  for (; at < end; ++at) p[at] = std::uint8_t(word_of(id, at / 8) >> (at % 8 * 8));
}

NO_COVERAGE bool range_intact(const unsigned char* p, std::uint32_t id, std::size_t start, std::size_t end) {
  std::size_t at = start;
  for (; at < end && at % 8; ++at)
    if (p[at] != std::uint8_t(word_of(id, at / 8) >> (at % 8 * 8))) return false;
  for (; at + 8 <= end; at += 8) {
    std::uint64_t seen;
    std::memcpy(&seen, p + at, 8);   // one load (memcmp would go through ASan's interceptor)
    if (seen != word_of(id, at / 8)) return false;
  }
  for (; at < end; ++at)
    if (p[at] != std::uint8_t(word_of(id, at / 8) >> (at % 8 * 8))) return false;
  return true;
}

// Pattern [from, n) of the block (ranges clipped to it).
NO_COVERAGE void fill(unsigned char* p, std::uint32_t id, std::size_t from, std::size_t n) {
  for_each_range(n, [&](std::size_t start, std::size_t end) NO_COVERAGE {
    if (end > from) fill_range(p, id, start > from ? start : from, end);
  });
}
NO_COVERAGE bool intact(const unsigned char* p, std::uint32_t id, std::size_t n, bool with_tail = true) {
  bool ok = true;
  for_each_range(n, [&](std::size_t start, std::size_t end) NO_COVERAGE { ok = ok && range_intact(p, id, start, end); }, with_tail);
  return ok;
}
NO_COVERAGE bool zeroed(const unsigned char* p, std::size_t n) {
  bool ok = true;
  for_each_range(n, [&](std::size_t start, std::size_t end) NO_COVERAGE {
    for (std::size_t at = start; ok && at < end; ++at) ok = p[at] == 0;
  });
  return ok;
}

bool is_power_of_two(std::size_t a) { return a && !(a & (a - 1)); }
bool aligned(const void* p, std::size_t a) { return a == 0 || reinterpret_cast<std::uintptr_t>(p) % a == 0; }

// ---- Decoding ---------------------------------------------------------------

enum class kind : std::uint8_t {
  malloc_, calloc_, realloc_, aligned_, free_, inspect, resource_allocate, arena_allocate,
  reset, thread_batch, flush,
};
constexpr kind kind_table[16] = {
    kind::malloc_, kind::malloc_, kind::calloc_, kind::realloc_, kind::realloc_, kind::aligned_,
    kind::free_, kind::free_, kind::inspect, kind::resource_allocate, kind::resource_allocate,
    kind::arena_allocate, kind::reset, kind::thread_batch, kind::flush, kind::free_,
};

struct operation {
  kind what;
  std::uint8_t slot, variant;
  std::size_t size, count, alignment;
};

std::size_t decode_size(FuzzedDataProvider& in) {
  std::uint8_t range = in.ConsumeIntegral<std::uint8_t>();
  std::size_t v = in.ConsumeIntegral<std::uint32_t>();
  switch (range % 32) {
    case 0: case 1: case 2: case 3: case 4: case 5: case 6: case 7:
    case 8: case 9: case 10: case 11: case 12: case 13: case 14: case 15: return v % 257;
    case 16: case 17: case 18: case 19: case 20: case 21: case 22: case 23: case 24: return v % (32 * KiB + 257);
    case 25: case 26: case 27: case 28: return 32 * KiB + v % (2 * MiB + 64 * KiB);
    case 29: case 30: return 2 * MiB + v % (4 * MiB);
    default: {
      const std::size_t sizes[] = {SIZE_MAX, SIZE_MAX - v % 4096, absurd + v, std::size_t(PTRDIFF_MAX) - v % 64};
      return sizes[v % 4];
    }
  }
}

// Mostly powers of two up to 8 MiB; sometimes invalid or enormous ones.
std::size_t decode_alignment(FuzzedDataProvider& in) {
  std::uint8_t b = in.ConsumeIntegral<std::uint8_t>();
  if (b < 240) return std::size_t(1) << (b % 24);
  const std::size_t odd[] = {0, 3, 24, 48, 1000, std::size_t(1) << 40, std::size_t(1) << 63, 4097};
  return odd[b % 8];
}

operation decode(FuzzedDataProvider& in) {
  operation op{};
  op.what = kind_table[in.ConsumeIntegral<std::uint8_t>() % 16];
  op.slot = in.ConsumeIntegral<std::uint8_t>() % slot_count;
  op.variant = in.ConsumeIntegral<std::uint8_t>();
  op.size = decode_size(in);
  op.count = in.ConsumeIntegral<std::uint8_t>();
  op.alignment = decode_alignment(in);
  return op;
}

// ---- The world of one run -----------------------------------------------------

alignas(4096) unsigned char caller_buffer[2 * MiB + 64 * KiB];

struct world {
  block slots[slot_count];
  std::unique_ptr<pcm::arena> arena = std::make_unique<pcm::arena>();
  std::unique_ptr<pcm::arena> buffer_arena;   // null when the region given was unusable
  pcm::pmr::arena_resource on_arena{*arena};
  std::unique_ptr<pcm::pmr::arena_resource> on_buffer;
  pcm::pmr::local_resource local;
  pcm::pmr::scoped_resource scoped;
  std::uint32_t next_id = 1;

  world(std::size_t buffer_offset, std::size_t buffer_bytes, std::size_t local_first, std::size_t scoped_first)
      : local(pcm::pmr::global_resource(), local_first), scoped(scoped_first) {
    try {
      buffer_arena = std::make_unique<pcm::arena>(caller_buffer + buffer_offset, buffer_bytes);
      on_buffer = std::make_unique<pcm::pmr::arena_resource>(*buffer_arena);
    } catch (const std::bad_alloc&) {
      // Less than a usable page: refusing is the documented answer.
      if (buffer_bytes >= 2 * 4096) fail("pcm::arena refused a caller buffer of two pages or more", caller_buffer + buffer_offset, buffer_bytes, 0);
    }
  }

  std::pmr::memory_resource* resource(origin o) {
    switch (o) {
      case origin::global: return pcm::pmr::global_resource();
      case origin::on_arena: return &on_arena;
      case origin::on_buffer: return on_buffer.get();
      case origin::local: return &local;
      case origin::scoped: return &scoped;
      default: return nullptr;
    }
  }
};

// ---- Operations -----------------------------------------------------------------

void check(const block& b, const char* when) {
  if (!intact(b.p, b.id, b.filled)) {
    std::fprintf(stderr, "heap_fuzz: pattern of block %u damaged %s\n", b.id, when);
    fail("a live block's contents changed", b);
  }
}

bool is_pcm_block(origin o) {
  return o == origin::heap || o == origin::arena || o == origin::buffer_arena || o == origin::global ||
         o == origin::on_arena || o == origin::on_buffer;
}

// Two live blocks never share a byte (the bytes they may use: heap blocks
// their usable size). Blocks of zero bytes count as one, except those of
// local_resource and scoped_resource, whose cursors may hand out an address twice.
std::size_t extent(const block& b) {
  return b.filled || b.from == origin::local || b.from == origin::scoped ? b.filled : 1;
}
void check_no_overlap(const world& w, const block& b) {
  for (const block& other : w.slots)
    if (&other != &b && other.p && b.p < other.p + extent(other) && other.p < b.p + extent(b)) {
      std::fprintf(stderr, "heap_fuzz: block %u (origin %d) overlaps live block %u (origin %d, %p, %zu bytes)\n", b.id,
                   int(b.from), other.id, int(other.from), static_cast<void*>(other.p), other.filled);
      fail("a new block overlaps a live one", b);
    }
}

// A new block in the slot: checks common to every source, then the pattern.
void adopt(world& w, block& b, void* p, std::size_t size, std::size_t alignment, origin from) {
  b = block{static_cast<unsigned char*>(p), size, alignment, size, w.next_id++, from};
  if (!aligned(p, alignment)) fail("block not aligned as requested", b);
  if (is_pcm_block(from)) {
    if (!pcm_owns(p)) fail("pcm_owns denies a block pcmalloc handed out", b);
    std::size_t usable = pcm_usable_size(p);
    if (usable < size) fail("usable size below the request", b);
    if (from == origin::heap) b.filled = usable;   // the usable tail is the program's too
  }
  check_no_overlap(w, b);
  if (from == origin::arena && !w.arena->owns(p)) fail("pcm::arena::owns denies its block", b);
  if (from == origin::buffer_arena) {
    if (!w.buffer_arena->owns(p)) fail("pcm::arena::owns denies its block", b);
    if (b.p < caller_buffer || b.p + size > caller_buffer + sizeof caller_buffer)
      fail("a buffer arena's block lies outside the buffer", b);
  }
  fill(b.p, b.id, 0, b.filled);
}

void release(world& w, block& b, std::uint8_t how) {
  if (!b.p) return;
  check(b, "before free");
  switch (b.from) {
    case origin::heap:
      if (how % 3 == 0) pcm_free(b.p);
      else if (how % 3 == 1) pcm_free_sized(b.p, b.size);
      else pcm_free_aligned_sized(b.p, b.alignment, b.size);
      break;
    case origin::arena:   // pcm_free routes an arena's block back to it
      if (how & 1) pcm_free(b.p); else w.arena->deallocate(b.p);
      break;
    case origin::buffer_arena:
      if (how & 1) pcm_free(b.p); else w.buffer_arena->deallocate(b.p);
      break;
    default: w.resource(b.from)->deallocate(b.p, b.size, b.alignment); break;
  }
  b = block{};
}

// A request must succeed when its size is possible and its alignment a power
// of two up to 8 MiB; it must fail when its size is impossible (ENOMEM) or
// its alignment not a power of two (EINVAL). Larger alignments may go either way.
bool must_succeed(std::size_t size, std::size_t alignment) {
  return size < absurd && is_power_of_two(alignment) && alignment <= largest_alignment;
}
bool must_fail(std::size_t size, std::size_t alignment) { return size >= absurd || !is_power_of_two(alignment); }
int failure_errno(std::size_t alignment) { return is_power_of_two(alignment) ? ENOMEM : EINVAL; }

void do_malloc(world& w, const operation& op) {
  block& b = w.slots[op.slot];
  release(w, b, op.variant);
  errno = 0;
  void* p = pcm_malloc(op.size);
  if (!p) {
    if (op.size < absurd) fail("pcm_malloc failed", nullptr, op.size, 0);
    if (errno != ENOMEM) fail("pcm_malloc failed without ENOMEM", nullptr, op.size, 0);
    return;
  }
  if (op.size >= absurd) fail("pcm_malloc succeeded for an impossible size", p, op.size, 0);
  adopt(w, b, p, op.size, 16, origin::heap);
}

void do_calloc(world& w, const operation& op) {
  block& b = w.slots[op.slot];
  release(w, b, op.variant);
  // count: 0..255, or (variant & 1) a count that makes count * size overflow.
  std::size_t count = op.count, size = op.size;
  if (op.variant & 1 && size > 1) count = SIZE_MAX / size + 1 + op.count;
  else if (size >= 2 * MiB) count = count % 2;   // keep the product reasonable
  else if (size > 4096) count = count % 8;
  std::size_t total;
  bool overflow = __builtin_mul_overflow(count, size, &total);
  errno = 0;
  void* p = pcm_calloc(count, size);
  if (!p) {
    if (!overflow && total < absurd) fail("pcm_calloc failed", nullptr, total, 0);
    if (errno != ENOMEM) fail("pcm_calloc failed without ENOMEM", nullptr, total, 0);
    return;
  }
  if (overflow || total >= absurd) fail("pcm_calloc succeeded for an impossible size", p, total, 0);
  if (!zeroed(static_cast<unsigned char*>(p), total)) fail("pcm_calloc's block is not zeroed", p, total, 0);
  adopt(w, b, p, total, 16, origin::heap);
}

void do_realloc(world& w, const operation& op) {
  block& b = w.slots[op.slot];
  if (b.p && b.from != origin::heap && b.from != origin::arena && b.from != origin::buffer_arena) {
    release(w, b, op.variant);   // a resource's block is not realloc's to move
  }
  if (b.p) check(b, "before realloc");
  bool array = op.variant & 1;
  std::size_t count = array ? (op.variant & 2 ? SIZE_MAX / 2 : 1 + op.count % 4) : 1;
  std::size_t total;
  bool overflow = __builtin_mul_overflow(count, op.size, &total);
  std::size_t old_size = b.size;
  errno = 0;
  void* q = array ? pcm_reallocarray(b.p, count, op.size) : pcm_realloc(b.p, total);
  if (!q) {
    if (b.p && !overflow && total == 0) { b = block{}; return; }   // realloc(p, 0) freed p (as glibc)
    if (!overflow && total < absurd) fail("pcm_realloc failed", b.p, total, 0);
    if (errno != ENOMEM) fail("pcm_realloc failed without ENOMEM", b.p, total, 0);
    if (b.p) check(b, "after a failed realloc (the block must stay valid)");
    return;
  }
  if (overflow || total >= absurd) fail("pcm_realloc succeeded for an impossible size", q, total, 0);
  auto* bytes = static_cast<unsigned char*>(q);
  std::size_t kept = old_size < total ? old_size : total;
  if (b.p && !intact(bytes, b.id, kept, false)) fail("pcm_realloc lost the old contents", q, total, 0);
  // Where the block lives now: an arena's block resized in place stays the arena's.
  origin now = origin::heap;
  if (w.arena->owns(q)) now = origin::arena;
  else if (w.buffer_arena && w.buffer_arena->owns(q)) now = origin::buffer_arena;
  std::uint32_t id = b.p ? b.id : w.next_id++;
  b = block{bytes, total, 16, total, id, now};
  if (!pcm_owns(q)) fail("pcm_owns denies a reallocated block", b);
  std::size_t usable = pcm_usable_size(q);
  if (usable < total) fail("usable size below the realloc request", b);
  if (now == origin::heap) b.filled = usable;
  check_no_overlap(w, b);
  // Pattern the grown part and the new tail; the kept prefix already carries this id's pattern.
  fill(bytes, id, kept, b.filled);
  if (b.filled > dense_limit) fill_range(bytes, id, b.filled - 8, b.filled);
}

void do_aligned(world& w, const operation& op) {
  block& b = w.slots[op.slot];
  release(w, b, op.variant);
  std::size_t a = op.alignment, size = op.size;
  errno = 0;
  void* p = nullptr;
  int variant = op.variant % 5;
  switch (variant) {
    case 0: p = pcm_aligned_alloc(a, size); break;
    case 1: {
      // memalign keeps glibc's contract: an alignment that is no power of two
      // rounds up to the next one, 0 is malloc's own; past 2^63 it is EINVAL.
      constexpr std::size_t largest = ~(~std::size_t(0) >> 1);
      p = pcm_memalign(a, size);
      if (a > largest) {
        if (p) fail("pcm_memalign succeeded past the largest alignment", p, size, a);
        if (errno != EINVAL) fail("pcm_memalign failed without EINVAL past the largest alignment", nullptr, size, a);
        return;
      }
      a = a ? std::bit_ceil(a) : 16;
      break;
    }
    case 2: {
      void* out = &b;   // must stay untouched on failure
      int e = pcm_posix_memalign(&out, a, size);
      bool valid = is_power_of_two(a) && a >= sizeof(void*);
      if (e) {
        if (out != &b) fail("pcm_posix_memalign wrote *out on failure", out, size, a);
        if (e != (valid ? ENOMEM : EINVAL)) fail("pcm_posix_memalign returned the wrong error", nullptr, size, a);
        if (valid && must_succeed(size, a)) fail("pcm_posix_memalign failed", nullptr, size, a);
        return;
      }
      if (!valid || must_fail(size, a)) fail("pcm_posix_memalign succeeded for an impossible request", out, size, a);
      p = out;
      break;
    }
    case 3: a = 4096; p = pcm_valloc(size); break;
    case 4:
      a = 4096;
      p = pcm_pvalloc(size);
      if (p && size < absurd) size = size ? (size + 4095) & ~std::size_t(4095) : 4096;
      break;
  }
  if (!p) {
    if (must_succeed(size, a)) fail("aligned allocation failed", nullptr, size, a);
    if (errno != failure_errno(a)) fail("aligned allocation failed with the wrong errno", nullptr, size, a);
    return;
  }
  if (must_fail(size, a)) fail("aligned allocation succeeded for an impossible request", p, size, a);
  adopt(w, b, p, size, a, origin::heap);
}

void do_inspect(world& w, const operation& op) {
  const block& b = w.slots[op.slot];
  if (!b.p) return;
  check(b, "on inspection");
  if (is_pcm_block(b.from)) {
    if (!pcm_owns(b.p)) fail("pcm_owns denies a live block", b);
    if (pcm_usable_size(b.p) < b.size) fail("usable size below the request", b);
  }
}

// pmr resources: alignment a power of two up to 64 KiB (their precondition);
// only impossible sizes may (and must) throw.
void do_resource_allocate(world& w, const operation& op) {
  block& b = w.slots[op.slot];
  release(w, b, op.variant);
  const origin kinds[] = {origin::global, origin::on_arena, origin::on_buffer, origin::local, origin::scoped};
  origin from = kinds[op.variant % 5];
  std::pmr::memory_resource* r = w.resource(from);
  if (!r) return;
  std::size_t a = std::size_t(1) << (op.count % 17);
  std::size_t size = op.size;
  // The buffer arena may run out: then only a throw is right.
  bool may_fail = size >= absurd || from == origin::on_buffer;
  void* p;
  try {
    p = r->allocate(size, a);
  } catch (const std::bad_alloc&) {
    if (!may_fail) fail("a memory_resource threw for a possible request", nullptr, size, a);
    return;
  }
  if (size >= absurd) fail("a memory_resource succeeded for an impossible size", p, size, a);
  adopt(w, b, p, size, a, from);
}

void do_arena_allocate(world& w, const operation& op) {
  block& b = w.slots[op.slot];
  release(w, b, op.variant);
  bool buffer = op.variant & 1;
  pcm::arena* a = buffer ? w.buffer_arena.get() : w.arena.get();
  if (!a) return;
  errno = 0;
  void* p = a->allocate(op.size, op.alignment);
  if (!p) {
    if (errno != failure_errno(op.alignment)) fail("pcm::arena failed with the wrong errno", nullptr, op.size, op.alignment);
    if (!buffer && must_succeed(op.size, op.alignment)) fail("pcm::arena failed", nullptr, op.size, op.alignment);
    return;
  }
  if (must_fail(op.size, op.alignment)) fail("pcm::arena succeeded for an impossible request", p, op.size, op.alignment);
  adopt(w, b, p, op.size, op.alignment, buffer ? origin::buffer_arena : origin::arena);
}

// Check, then forget every block of the given origins (their memory is gone).
void forget(world& w, origin a, origin b) {
  for (block& s : w.slots)
    if (s.p && (s.from == a || s.from == b)) {
      check(s, "before a reset or release");
      s = block{};
    }
}

void do_reset(world& w, const operation& op) {
  switch (op.variant % 5) {
    case 0:
      forget(w, origin::arena, origin::on_arena);
      w.arena->reset();
      break;
    case 1:
      if (!w.buffer_arena) return;
      forget(w, origin::buffer_arena, origin::on_buffer);
      w.buffer_arena->reset();
      break;
    case 2: forget(w, origin::local, origin::local); w.local.recycle(); break;
    case 3: forget(w, origin::local, origin::local); w.local.release(); break;
    case 4: forget(w, origin::scoped, origin::scoped); w.scoped.release(); break;
  }
}

void do_flush(const operation& op) {
  if (op.variant & 1) pcm_purge();
  else pcm_thread_flush();
}

void run_batch(world& w, const std::vector<operation>& ops);

void execute(world& w, const operation& op, FuzzedDataProvider* more) {
  switch (op.what) {
    case kind::malloc_: do_malloc(w, op); break;
    case kind::calloc_: do_calloc(w, op); break;
    case kind::realloc_: do_realloc(w, op); break;
    case kind::aligned_: do_aligned(w, op); break;
    case kind::free_: release(w, w.slots[op.slot], op.variant); break;
    case kind::inspect: do_inspect(w, op); break;
    case kind::resource_allocate: do_resource_allocate(w, op); break;
    case kind::arena_allocate: do_arena_allocate(w, op); break;
    case kind::reset: do_reset(w, op); break;
    case kind::flush: do_flush(op); break;
    case kind::thread_batch:
      // The next 1..32 operations run on a worker thread (a batch inside a
      // batch runs nothing more).
      if (more) {
        std::vector<operation> ops;
        for (unsigned n = 1 + op.count % 32; n && more->remaining_bytes(); --n) ops.push_back(decode(*more));
        run_batch(w, ops);
      }
      break;
  }
}

// While the worker runs the batch (it owns the slots meanwhile), this thread
// allocates, patterns, checks and frees blocks of its own: two threads in the
// heap at once, and the batch's blocks freed later here (and this thread's
// earlier blocks freed there) cross threads. When the batch resets nothing,
// the churn shares the growing arena with it.
NO_COVERAGE void churn(world& w, std::uint32_t seed, bool use_arena) {
  struct own { unsigned char* p; std::size_t size; std::uint32_t id; bool arena; };
  own ring[16] = {};
  std::uint32_t x = seed | 1;
  for (unsigned i = 0; i < 128; ++i) {
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    own& o = ring[x % 16];
    if (o.p) {
      if (!intact(o.p, o.id, o.size)) fail("churn: a block's contents changed", o.p, o.size, 0);
      if (o.arena) w.arena->deallocate(o.p); else pcm_free(o.p);
    }
    std::size_t size = (x >> 8) % ((x & 0x700) == 0 ? 40000 : 512);
    bool arena = use_arena && (x & 0x200);
    void* p = arena ? w.arena->allocate(size) : pcm_malloc(size);
    if (!p) fail("churn: allocation failed", nullptr, size, 0);
    o = own{static_cast<unsigned char*>(p), size, 0x80000000u | (seed + i), arena};
    fill(o.p, o.id, 0, size);
  }
  for (own& o : ring)
    if (o.p) {
      if (!intact(o.p, o.id, o.size)) fail("churn: a block's contents changed", o.p, o.size, 0);
      if (o.arena) w.arena->deallocate(o.p); else pcm_free(o.p);
    }
}

void run_batch(world& w, const std::vector<operation>& ops) {
  // HEAP_FUZZ_ONE_THREAD=1: the batch runs inline, without the churn, so a
  // failure that does not depend on timing replays exactly.
  static const bool one_thread = std::getenv("HEAP_FUZZ_ONE_THREAD") != nullptr;
  if (one_thread) {
    for (const operation& op : ops) execute(w, op, nullptr);
    return;
  }
  bool resets = false;
  for (const operation& op : ops) resets = resets || op.what == kind::reset;
  std::uint32_t seed = w.next_id;   // read before the worker changes it
  std::thread worker([&w, &ops] {
    for (const operation& op : ops) execute(w, op, nullptr);
  });
  churn(w, seed, !resets);
  worker.join();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  std::size_t offset = in.ConsumeIntegralInRange<std::size_t>(0, 64 * KiB);
  std::size_t bytes = in.ConsumeIntegralInRange<std::size_t>(0, 2 * MiB);
  std::size_t local_first = in.ConsumeIntegralInRange<std::size_t>(0, 128 * KiB);
  std::size_t scoped_first = in.ConsumeIntegralInRange<std::size_t>(0, 128 * KiB);
  world w(offset, bytes, local_first, scoped_first);
  // HEAP_FUZZ_PARANOID=1 (for reproducers): every live block is checked after
  // every operation, and the operation that damaged one is named.
  static const bool paranoid = std::getenv("HEAP_FUZZ_PARANOID") != nullptr;
  for (unsigned n = 0; n < 256 && in.remaining_bytes(); ++n) {
    operation op = decode(in);
    execute(w, op, &in);
    if (paranoid) {
      for (const block& b : w.slots)
        if (b.p && !intact(b.p, b.id, b.filled)) {
          std::fprintf(stderr, "heap_fuzz: operation %u (kind %d, slot %u, variant %u, size %zu, count %zu, alignment %zu) damaged block %u (origin %d)\n",
                       n, int(op.what), op.slot, op.variant, op.size, op.count, op.alignment, b.id, int(b.from));
          fail("an operation damaged a live block", b);
        }
    }
  }
  for (block& b : w.slots) {
    block was = b;
    release(w, b, 0);
    if (paranoid)
      for (const block& other : w.slots)
        if (other.p && !intact(other.p, other.id, other.filled)) {
          std::fprintf(stderr, "heap_fuzz: freeing block %u (origin %d, %p, %zu bytes) damaged block %u (origin %d)\n",
                       was.id, int(was.from), static_cast<void*>(was.p), was.size, other.id, int(other.from));
          fail("a free damaged a live block", other);
        }
  }
  // Every large and huge block of the arena went back: its accounting must say so.
  pcm::arena_statistics s = w.arena->statistics();
  if (s.large_bytes != 0 || s.huge_blocks != 0) fail("pcm::arena still counts large blocks after all were freed", nullptr, s.large_bytes, s.huge_blocks);
  return 0;
}
