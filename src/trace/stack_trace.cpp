// Stack capture with libunwind (local only: it keeps its caches in its own
// mmap'ed pools, never the heap) and the lock-free stack depot.
// Synchronisation: depot buckets are CAS-published chains of immutable records;
// depot memory is bump-allocated by fetch_add from chunks installed by CAS.
#include "stack_trace.hpp"

#include <atomic>
#include <cstring>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "platform/platform.hpp"

namespace pcm::debug {
namespace {

void* call_site(unw_word_t return_address) {
  return reinterpret_cast<void*>(return_address - 1);
}

// Set while this thread is inside unw_backtrace. libunwind's first trace in a
// thread calls pthread_setspecific, which callocs when its key index is >= 32;
// that calloc comes back here and must not unwind again (it would recurse
// without end, each level creating another trace cache).
__thread bool capturing __attribute__((tls_model("initial-exec"))) = false;

}  // namespace

// noinline: frame 0 of unw_backtrace is the return address into this function,
// which the skip arithmetic below relies on.
__attribute__((noinline)) unsigned capture(void** frames, unsigned max_frames, unsigned skip) noexcept {
  void* buffer[max_stack_depth + 8];
  unsigned dropped = skip + 1;   // this function's own frame
  if (max_frames == 0 || dropped >= sizeof buffer / sizeof buffer[0]) return 0;
  unsigned want = dropped + max_frames;
  if (want > sizeof buffer / sizeof buffer[0]) want = sizeof buffer / sizeof buffer[0];
  if (capturing) return 0;
  capturing = true;
  int found = unw_backtrace(buffer, int(want));
  capturing = false;
  unsigned depth = 0;
  for (unsigned i = dropped; i < unsigned(found > 0 ? found : 0) && buffer[i]; ++i)
    frames[depth++] = call_site(reinterpret_cast<unw_word_t>(buffer[i]));
  return depth;
}

unsigned capture_from_context(void* ucontext, void** frames, unsigned max_frames) noexcept {
  if (!ucontext || max_frames == 0) return 0;
  unw_cursor_t cursor;
  if (unw_init_local2(&cursor, static_cast<unw_context_t*>(ucontext), UNW_INIT_SIGNAL_FRAME) < 0) return 0;
  unsigned depth = 0;
  bool exact = true;   // the interrupted pc is not a return address
  do {
    unw_word_t ip = 0;
    if (unw_get_reg(&cursor, UNW_REG_IP, &ip) < 0 || ip == 0) break;
    frames[depth++] = exact ? reinterpret_cast<void*>(ip) : call_site(ip);
    // Below a signal trampoline lies another interrupted pc, again exact.
    exact = unw_is_signal_frame(&cursor) > 0;
  } while (depth < max_frames && unw_step(&cursor) > 0);
  return depth;
}

// ---- stack depot ---------------------------------------------------------------
namespace {

// A stored stack. Written once before the CAS that publishes it, never changed.
struct record {
  std::uint32_t next;    // id of the bucket's previous head (0: end of chain)
  std::uint32_t hash;
  std::uint32_t depth;
  std::uint32_t check;   // hash ^ record_magic: rejects most ids that are not ours
  void** frames() { return reinterpret_cast<void**>(this + 1); }
};
constexpr std::uint32_t record_magic = 0x57ac4d3bu;

// Ids are byte offsets / 8 into the concatenation of all chunks; offset 0 is
// never handed out, so no id is 0.
constexpr unsigned chunk_shift = 22;
constexpr std::size_t chunk_bytes = std::size_t(1) << chunk_shift;   // 4 MiB
constexpr unsigned max_chunks = 1024;                                // 4 GiB of stacks
static_assert((std::uint64_t(max_chunks) << chunk_shift >> 3) <= UINT32_MAX, "ids must fit 32 bits");

constexpr unsigned bucket_bits = 18;   // 1 MiB of heads, chains stay short up to ~250k stacks
std::atomic<std::uint32_t> buckets[1u << bucket_bits];
std::atomic<char*> chunks[max_chunks];
std::atomic<std::uint64_t> next_offset{sizeof(record)};
std::atomic<std::size_t> stack_count{0};
std::atomic<std::size_t> chunk_count{0};

std::uint32_t hash_of(void* const* frames, unsigned depth) {
  std::uint64_t h = 0x9e3779b97f4a7c15ull ^ depth;
  for (unsigned i = 0; i < depth; ++i) {
    h ^= reinterpret_cast<std::uintptr_t>(frames[i]);
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 32;
  }
  h *= 0xc4ceb9fe1a85ec53ull;   // murmur3's finaliser: every bit reaches the bucket index
  h ^= h >> 33;
  return std::uint32_t(h);
}

char* chunk_base(std::uint64_t chunk) {
  char* base = chunks[chunk].load(std::memory_order_acquire);
  if (base) [[likely]] return base;
  auto* mapped = static_cast<char*>(os::map(chunk_bytes));
  if (!mapped) return nullptr;
  if (chunks[chunk].compare_exchange_strong(base, mapped, std::memory_order_acq_rel)) {
    chunk_count.fetch_add(1, std::memory_order_relaxed);
    return mapped;
  }
  os::unmap(mapped, chunk_bytes);   // another thread installed this chunk first
  return base;
}

record* locate(std::uint32_t id) {
  std::uint64_t offset = std::uint64_t(id) << 3;
  std::uint64_t chunk = offset >> chunk_shift;
  if (id == 0 || chunk >= max_chunks || offset + sizeof(record) > next_offset.load(std::memory_order_relaxed))
    return nullptr;
  char* base = chunks[chunk].load(std::memory_order_acquire);
  if (!base || (offset & (chunk_bytes - 1)) + sizeof(record) > chunk_bytes) return nullptr;
  return reinterpret_cast<record*>(base + (offset & (chunk_bytes - 1)));
}

// A fresh record, not yet visible to anyone. Records never straddle chunks.
record* allocate(unsigned depth, std::uint32_t* id) {
  const std::size_t bytes = sizeof(record) + depth * sizeof(void*);
  for (;;) {
    std::uint64_t offset = next_offset.fetch_add(bytes, std::memory_order_relaxed);
    std::uint64_t chunk = offset >> chunk_shift;
    if (chunk >= max_chunks) return nullptr;
    if (((offset + bytes - 1) >> chunk_shift) != chunk) continue;   // the chunk's tail is lost
    char* base = chunk_base(chunk);
    if (!base) return nullptr;
    *id = std::uint32_t(offset >> 3);
    return reinterpret_cast<record*>(base + (offset & (chunk_bytes - 1)));
  }
}

// Walks the chain from `id` down to (not including) `stop`.
std::uint32_t find(std::uint32_t id, std::uint32_t stop, std::uint32_t hash, void* const* frames, unsigned depth) {
  while (id && id != stop) {
    record* r = locate(id);
    if (!r) return 0;
    if (r->hash == hash && r->depth == depth && std::memcmp(r->frames(), frames, depth * sizeof(void*)) == 0)
      return id;
    id = r->next;
  }
  return 0;
}

}  // namespace

std::uint32_t stack_depot_save(void* const* frames, unsigned depth) noexcept {
  if (depth == 0 || !frames) return 0;
  if (depth > max_stack_depth) depth = max_stack_depth;
  const std::uint32_t hash = hash_of(frames, depth);
  std::atomic<std::uint32_t>& bucket = buckets[hash & ((1u << bucket_bits) - 1)];
  std::uint32_t head = bucket.load(std::memory_order_acquire);
  if (std::uint32_t id = find(head, 0, hash, frames, depth)) [[likely]] return id;

  std::uint32_t fresh_id = 0;
  record* fresh = allocate(depth, &fresh_id);
  if (!fresh) return 0;
  fresh->hash = hash;
  fresh->depth = depth;
  fresh->check = hash ^ record_magic;
  std::memcpy(fresh->frames(), frames, depth * sizeof(void*));
  for (;;) {
    fresh->next = head;
    std::uint32_t searched = head;
    if (bucket.compare_exchange_weak(head, fresh_id, std::memory_order_release, std::memory_order_acquire)) {
      stack_count.fetch_add(1, std::memory_order_relaxed);
      return fresh_id;
    }
    // Someone published first; if it was this very stack, ours goes unused
    // (a rare, bounded loss: the depot never frees).
    if (std::uint32_t id = find(head, searched, hash, frames, depth)) return id;
  }
}

unsigned stack_depot_load(std::uint32_t id, void** frames, unsigned max_frames) noexcept {
  record* r = locate(id);
  if (!r || r->check != (r->hash ^ record_magic) || r->depth == 0 || r->depth > max_stack_depth) return 0;
  unsigned depth = r->depth < max_frames ? r->depth : max_frames;
  std::memcpy(frames, r->frames(), depth * sizeof(void*));
  return depth;
}

stack_depot_usage stack_depot_stats() noexcept {
  return {stack_count.load(std::memory_order_relaxed),
          chunk_count.load(std::memory_order_relaxed) * chunk_bytes + sizeof buckets};
}

}  // namespace pcm::debug
