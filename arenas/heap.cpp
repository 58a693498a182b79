// Slow paths of the core entry points, initialisation, thread caches and fork.
// Synchronisation: initialisation under init_lock (once); the thread-cache
// registry under registry_lock; everything else is delegated to the arenas.
#include "heap.hpp"
#include "hardened.hpp"

#include <cerrno>
#include <cstring>
#include <pthread.h>

#include "arena.hpp"
#include "base.hpp"
#include "lock.hpp"
#include "options.hpp"
#include "report.hpp"


namespace pcm {
namespace detail {
cache_mode mode = cache_mode::uninitialised;
std::ptrdiff_t rseq_offset = 0;
void (*sampled_free_hook)(void*, std::uint32_t) = nullptr;
const guarded_hooks* guarded = nullptr;
alignas(64) cache_set cpu_caches[rseq::max_cpus];
}  // namespace detail

namespace {
using detail::cpu_caches;
using detail::mode;

// Zero-capacity caches: every operation on them misses into the slow path.
// `no_cache` is where threads start; `exited_cache` marks a thread whose cache
// was already given back by its exit destructor (later frees go straight down).
cache_set no_cache, exited_cache;
}  // namespace

namespace detail {
__thread cache_set* thread_cache __attribute__((tls_model("initial-exec"))) = &no_cache;
}  // namespace detail

namespace {
using detail::thread_cache;
// Hardened mode keeps thread_cache at no_cache, so that every inline fast path
// misses into hardened.cpp, and the thread's real cache here.
__thread cache_set* hardened_cache __attribute__((tls_model("initial-exec"))) = &no_cache;
cache_set*& thread_slot() noexcept { return config.hardened ? hardened_cache : thread_cache; }
// Explicit arenas' blocks are not hardened (their heap has its own entry
// points): small ones carry the flag, large and huge ones name their arena.
bool explicit_block(page_entry e) noexcept {
  unsigned cls = e.size_class();
  if (cls & page_entry::explicit_flag) return true;
  if (cls == 0 || detail::is_guarded(e)) return false;   // a guarded page's owner is null
  return e.owner()->owner && e.owner()->owner->is_explicit;
}
bool hardened_block(const void* p) noexcept { return config.hardened && !explicit_block(page_map::lookup(p)); }

mutex init_lock;
std::atomic<bool> initialised{false};
std::uint32_t class_capacity[cache_bins];
std::size_t slots_per_set = 0;   // sum of capacities
pthread_key_t thread_key;
// Slow-path events per class, for statistics; touched only on slow paths.
// Batch moves between a bin and its arena leave the bins' hit and free
// counters alone, so these two complete the picture.
struct slow_path_counters {
  std::atomic<std::uint64_t> misses{0};        // allocations that went to an arena
  std::atomic<std::uint64_t> direct_frees{0};  // frees that bypassed every cache
};
slow_path_counters slow_counts[cache_bins];
void count(std::atomic<std::uint64_t>& counter, std::uint64_t n) { if (n) counter.fetch_add(n, std::memory_order_relaxed); }

mutex registry_lock;
cache_set* live_threads = nullptr;
cache_set* spare_sets = nullptr;

// The arena to take memory from. In per-CPU mode, the current CPU's: a CPU's
// bins then refill from one arena whose slabs stay dense, and short-lived
// threads do not spread memory over every arena (larson: 1.8x mimalloc's RSS
// with round-robin thread arenas). Otherwise the thread's own.
arena_core& home_arena() noexcept {
  if (mode == cache_mode::per_cpu) {
    int cpu = rseq::current_cpu(rseq::area(detail::rseq_offset));
    if (cpu >= 0) return arenas::get(unsigned(cpu) % arenas::count());
  }
  return arenas::for_this_thread();
}

// The layer below a thread's cache of class `cls`: refills from `owner`;
// drains onto a transfer stack first (stash_or_free).
struct arena_source {
  arena_core& owner;
  unsigned cls;
  unsigned refill(unsigned c, void** out, unsigned n) noexcept { return owner.refill(c, out, n); }
  void drain(void* const* objects, unsigned n) noexcept { detail::stash_or_free(cls, objects, n); }
};

}  // namespace

namespace detail {
std::size_t slots_per_cache_set() noexcept { return slots_per_set; }

void set_up_bins(cache_set& set, void** slots) noexcept {
  for (unsigned cls = first_class; cls < cache_bins; ++cls) {
    set.bins[cls] = cache_bin{0, class_capacity[cls], slots, 0, 0};
    slots += class_capacity[cls];
  }
}
}  // namespace detail

namespace {
using detail::set_up_bins;

void thread_exit(void* value) {
  auto* set = static_cast<cache_set*>(value);
  hardened::flush_delayed(*set);
  for (unsigned cls = first_class; cls < cache_bins; ++cls) {
    arena_source source{home_arena(), cls};
    bin_flush(set->bins[cls], source);
  }
  lock_guard guard(registry_lock);
  for (cache_set** link = &live_threads; *link; link = &(*link)->next_thread)
    if (*link == set) { *link = set->next_thread; break; }
  set->next_thread = spare_sets;
  spare_sets = set;
  thread_slot() = &exited_cache;
}

// This thread's own cache, made on first use; nullptr while the thread exits.
cache_set* own_thread_cache() noexcept {
  cache_set* set = thread_slot();
  if (set != &no_cache) return set == &exited_cache ? nullptr : set;
  set = nullptr;
  {
    lock_guard guard(registry_lock);
    if (spare_sets) { set = spare_sets; spare_sets = set->next_thread; }
  }
  if (set) {
    for (unsigned cls = first_class; cls < cache_bins; ++cls) set->bins[cls].count = 0;
  } else {
    void* memory = base::allocate(sizeof(cache_set) + slots_per_set * sizeof(void*));
    if (!memory) return nullptr;
    set = static_cast<cache_set*>(memory);
    set_up_bins(*set, reinterpret_cast<void**>(set + 1));
  }
  {
    lock_guard guard(registry_lock);
    set->next_thread = live_threads;
    live_threads = set;
  }
  thread_slot() = set;
  pthread_setspecific(thread_key, set);
  return set;
}

void* take_for_class(unsigned cls) noexcept {
  count(slow_counts[cls].misses, 1);
  arena_core& owner = home_arena();
  arenas::decay_tick(false);
  if (mode == cache_mode::per_cpu) {
    char* area = rseq::area(detail::rseq_offset);
    if (rseq::current_cpu(area) >= 0) return detail::cpu_refill(cpu_caches, area, owner, cls);
  }
  arena_source source{owner, cls};
  if (cache_set* set = own_thread_cache()) {
    if (void* p = bin_pop(set->bins[cls])) return p;
    return bin_refill(set->bins[cls], cls, source);
  }
  void* p = nullptr;
  return owner.refill(cls, &p, 1) ? p : nullptr;
}

void give_back_small(unsigned cls, void* p) noexcept {
  arenas::decay_tick(false);
  if (mode == cache_mode::per_cpu) {
    char* area = rseq::area(detail::rseq_offset);
    if (rseq::current_cpu(area) >= 0) return detail::cpu_give_back(cpu_caches, area, cls, p);
  }
  arena_source source{home_arena(), cls};
  if (cache_set* set = own_thread_cache()) {
    if (!bin_push(set->bins[cls], p)) bin_drain_and_push(set->bins[cls], p, source);
    return;
  }
  count(slow_counts[cls].direct_frees, 1);
  free_to_slabs(&p, 1);
}

struct fork_hooks {
  void (*prepare)();
  void (*parent)();
  void (*child)();
};
constexpr unsigned max_fork_hooks = 8;
fork_hooks extra_fork_hooks[max_fork_hooks];
std::atomic<unsigned> extra_fork_hook_count{0};

// Every pcmalloc lock, outermost first: the layers above (newest first), then
// the core's. Then locking becomes a no-op for this thread until the parent or
// child handler: other libraries' fork handlers that allocate run in between.
void fork_prepare() {
  for (unsigned i = extra_fork_hook_count.load(std::memory_order_acquire); i-- > 0;) extra_fork_hooks[i].prepare();
  init_lock.lock();
  registry_lock.lock();
  arenas::lock_for_fork();
  base::lock_for_fork();
  holding_every_lock = true;
}
void fork_parent() {
  holding_every_lock = false;
  base::unlock_after_fork(false);
  arenas::unlock_after_fork(false);
  registry_lock.unlock();
  init_lock.unlock();
  for (unsigned i = 0, n = extra_fork_hook_count.load(std::memory_order_acquire); i < n; ++i)
    extra_fork_hooks[i].parent();
}
void fork_child() {
  holding_every_lock = false;
  base::unlock_after_fork(true);
  arenas::unlock_after_fork(true);
  registry_lock.reset_after_fork();
  init_lock.reset_after_fork();
  for (unsigned i = 0, n = extra_fork_hook_count.load(std::memory_order_acquire); i < n; ++i)
    extra_fork_hooks[i].child();
}

__attribute__((constructor)) void initialise_at_load() {
  ensure_initialised();
  pthread_atfork(fork_prepare, fork_parent, fork_child);
}


// Hardened mode's cache of this thread (thread_slot() above), when it has one.
cache_set* hardened_set() noexcept {
  cache_set* set = hardened_cache;
  return set == &no_cache || set == &exited_cache ? nullptr : set;
}

void* allocate_in_class(unsigned cls) noexcept {
  if (void* p = detail::cache_pop(cls)) return free_marks::hand_out(p);
  if (config.hardened)   // its fast path: the real per-thread cache behind the empty one
    if (cache_set* set = hardened_set())
      if (void* p = bin_pop(set->bins[cls])) return free_marks::hand_out(p);
  if (void* p = take_for_class(cls)) return free_marks::hand_out(p);
  errno = ENOMEM;
  return nullptr;
}

}  // namespace

namespace detail {

// Only the global caches keep statistics counters (explicit arenas have their own).
void* cpu_refill(cache_set* sets, char* area, arena_core& source, unsigned cls) noexcept {
  void* batch[64];
  unsigned n = source.refill(cls, batch, batch_for(sets[0].bins[cls]));
  if (n == 0) return nullptr;
  unsigned pushed = n > 1 ? rseq::push_batch(area, &sets[0].bins[cls], batch + 1, n - 1) : 0;
  if (pushed + 1 < n) free_to_slabs(batch + 1 + pushed, n - 1 - pushed);   // another thread filled the bin meanwhile
  return batch[0];
}

// A drained batch goes onto the transfer stack of the arena that owns its
// first object: where a producer thread allocates and a consumer on another
// CPU frees (xmalloc), the producer's next refill finds its blocks there.
// One lookup per batch; the others may belong anywhere (see arena.hpp).
void stash_or_free(unsigned cls, void* const* objects, unsigned n) noexcept {
  if (n == 0) return;
  // NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage): filled by pop_batch's asm, which the analyser cannot see.
  unsigned kept = page_map::lookup(objects[0]).owner()->owner->stash(cls, objects, n);
  free_to_slabs(objects + kept, n - kept);
}

void cpu_give_back(cache_set* sets, char* area, unsigned cls, void* p) noexcept {
  void* batch[64];
  unsigned n = rseq::pop_batch(area, &sets[0].bins[cls], batch, batch_for(sets[0].bins[cls]));
  if (sets == cpu_caches) stash_or_free(cls, batch, n);
  else free_to_slabs(batch, n);   // an explicit arena's cache: its arena has no transfer stacks
  if (!rseq::push(area, &sets[0].bins[cls], p)) {
    if (sets == cpu_caches) count(slow_counts[cls].direct_frees, 1);
    free_to_slabs(&p, 1);
  }
}

slab* checked_block(const char* operation, const void* p, page_entry e) noexcept {
  unsigned cls = e.size_class() & ~page_entry::explicit_flag;
  if (is_guarded(e)) invalid_pointer(operation, p, "a guarded sample where none is expected");
  if (cls == 0) invalid_pointer(operation, p, "not allocated by pcmalloc (stack, global, foreign heap, or already freed large block)");
  if (is_small_class(cls)) {
    if (!detail::is_object_start(p, e, cls)) invalid_pointer(operation, p, "points inside a block, not at its start");
  } else if (reinterpret_cast<std::uintptr_t>(p) != e.owner()->start) {
    invalid_pointer(operation, p, "points inside a block, not at its start");
  }
  return e.owner();
}

cache_set* own_cache_set() noexcept { return own_thread_cache(); }

void* allocate_slow(std::size_t size) noexcept {
  if (!initialised.load(std::memory_order_acquire)) [[unlikely]] {
    ensure_initialised();
    return allocate(size);
  }
  if (config.hardened) [[unlikely]] return hardened::allocate(size, 16);
  return allocate_block(size, 16);
}

// One dispatch for every block: a small object (of the size's class, or of
// one whose objects fall on the alignment), a large run, or a huge mapping.
void* allocate_block(std::size_t size, std::size_t alignment) noexcept {
  if (size <= small_max && alignment <= os::page_size) {
    unsigned cls = alignment <= 16 ? size_to_class(size) : aligned_small_class(size, alignment);
    if (cls) return allocate_in_class(cls);
  }
  arenas::decay_tick(false);
  const std::size_t run_alignment = alignment > os::page_size ? alignment : os::page_size;
  void* p = nullptr;
  if (size <= large_max && run_alignment <= chunk_bytes / 4 && os::round_to_pages(size) + run_alignment <= chunk_bytes) {
    p = home_arena().allocate_large(size, run_alignment, false);
    // Refused a chunk (limit_bytes, no memory): kept huge ranges may free enough.
    if (!p && release_cached_huge(0, true)) p = home_arena().allocate_large(size, run_alignment, false);
  } else if (size < (std::size_t(1) << 46) && alignment < (std::size_t(1) << 40)) {
    p = allocate_huge(size, run_alignment);
  }
  if (!p) errno = ENOMEM;
  return p;
}

// A sampled block's sample ends (its free, or a realloc that resizes it).
void end_sample(void* p, slab* s) noexcept {
  if (s->sample) [[unlikely]] {
    sampled_free_hook(p, s->sample);
    s->sample = 0;
  }
}

// A large run or a huge mapping goes back (a sampled one past the profiler first).
void free_pages(void* p, slab* s, unsigned cls) noexcept {
  end_sample(p, s);
  if (cls == page_entry::huge_class) free_huge(s);
  else s->owner->free_large(s);
  arenas::decay_tick(false);
}

void free_block(void* p, page_entry e) noexcept {
  slab* s = checked_block("free", p, e);
  unsigned cls = e.size_class();
  if (!is_small_class(cls)) return free_pages(p, s, cls);
  free_marks::take_back(p, "free");
  if (config.hardened)
    if (cache_set* set = hardened_set())
      if (bin_push(set->bins[cls], p)) return;
  give_back_small(cls, p);
}

void deallocate_slow(void* p, page_entry e) noexcept {
  if (!p) return;
  if (is_guarded(e)) [[unlikely]] return guarded->free(p, 0, false, "free");
  if (config.hardened && !explicit_block(e)) [[unlikely]] return hardened::deallocate(p, 0, false);
  slab* s = checked_block("free", p, e);
  unsigned cls = e.size_class();
  if (cls & page_entry::explicit_flag) return explicit_free_small(*s->owner, cls & ~page_entry::explicit_flag, p);
  if (is_small_class(cls)) return give_back_small(cls, p);
  free_pages(p, s, cls);
}

void wrong_size(const void* p, std::size_t size, std::size_t block) noexcept {
  fatal("sized free or delete(%p, %zu): invalid size: the block holds %zu bytes (a delete through the wrong type?)",
        p, size, block);
}

void deallocate_sized_slow(void* p, std::size_t size, bool exact, page_entry e) noexcept {
  if (!p) return;
  // A guarded block's size is exactly what was asked: src/guard checks the size
  // by the same rules (exact: equal; else: at most the block) and reports with its stacks.
  if (is_guarded(e)) [[unlikely]] return guarded->free(p, size, exact, "free");
  if (config.hardened && !explicit_block(e)) [[unlikely]] return hardened::deallocate(p, size, exact);
  unsigned cls = e.size_class() & ~page_entry::explicit_flag;
  if (cls != 0 && owns(p)) {
    bool fits;
    if (is_small_class(cls)) fits = size <= size_classes[cls].size && (!exact || size_to_class(size) == cls);
    else fits = size <= e.owner()->bytes &&   // a sampled block of any size is a page run of its own
                (!exact || e.owner()->sample || (size > small_max && size > e.owner()->bytes / 2));
    if (!fits) [[unlikely]] wrong_size(p, size, is_small_class(cls) ? size_classes[cls].size : e.owner()->bytes);
  }
  deallocate_slow(p, e);
}

}  // namespace detail

void ensure_initialised() noexcept {
  if (initialised.load(std::memory_order_acquire)) return;
  lock_guard guard(init_lock);
  if (initialised.load(std::memory_order_relaxed)) return;
  if (os::kernel_page_size() != os::page_size) fatal("this build needs %zu-byte pages", os::page_size);
  load_options_from_environment();
  free_marks::secret = os::random_word();   // before the first object is carved
  os::set_map_limit(config.limit_bytes);   // before the first mapping: metadata counts too
  unsigned cpus = os::cpu_count();
  arenas::init(config.arenas ? config.arenas : 4 * cpus);
  for (unsigned cls = first_class; cls < cache_bins; ++cls) {
    class_capacity[cls] = cache_capacity(cls, config.cache_class_bytes, config.cache_max_objects);
    slots_per_set += class_capacity[cls];
  }
  pthread_key_create(&thread_key, thread_exit);
  cache_mode chosen = cache_mode::per_thread;
  std::ptrdiff_t offset = 0;
  // Hardened: per-thread caches behind hardened.cpp (thread_slot() above).
  // One cache set per CPU id, not per CPU counted: a process started on
  // CPU 1 alone counts one CPU and runs on id 1 (an id without a set would
  // have capacity 0, every allocation a miss).
  const unsigned ids = os::cpu_id_limit();
  // (More CPUs than ids the per-CPU arrays index: per-thread caches instead.)
  if (!config.hardened && config.percpu && rseq::supported && cpus <= rseq::max_cpus && os::rseq_available(&offset) &&
      rseq::current_cpu(rseq::area(offset)) >= 0) {
    auto* slots = static_cast<void**>(base::allocate(std::size_t(ids) * slots_per_set * sizeof(void*)));
    if (slots) {
      for (unsigned cpu = 0; cpu < ids; ++cpu) set_up_bins(cpu_caches[cpu], slots + std::size_t(cpu) * slots_per_set);
      detail::rseq_offset = offset;
      chosen = cache_mode::per_cpu;
    }
  }
  mode = chosen;
  initialised.store(true, std::memory_order_release);
}

cache_mode current_cache_mode() noexcept { ensure_initialised(); return mode; }
unsigned arena_count() noexcept { ensure_initialised(); return arenas::count(); }
const char* cache_mode_name() noexcept {
  if (current_cache_mode() == cache_mode::per_cpu) return "per-cpu (rseq)";
  return config.hardened ? "per-thread (hardened)" : "per-thread";
}

unsigned current_cpu() noexcept {
  if (mode == cache_mode::per_cpu) {
    int cpu = rseq::current_cpu(rseq::area(detail::rseq_offset));
    if (cpu >= 0) return unsigned(cpu);
  }
  return os::current_cpu();
}

void* allocate_zeroed(std::size_t count, std::size_t size) noexcept {
  std::size_t total;
  if (__builtin_mul_overflow(count, size, &total)) { errno = ENOMEM; return nullptr; }
  ensure_initialised();   // config.hardened is read below
  if (total > small_max && total <= large_max && !config.hardened) {
    void* p = home_arena().allocate_large(total, os::page_size, true);
    if (!p) errno = ENOMEM;
    return p;
  }
  if (total > large_max && total < (std::size_t(1) << 46) && !config.hardened) {
    void* p = allocate_huge(total, os::page_size, nullptr, true);   // zeroes only reused pages
    if (!p) errno = ENOMEM;
    return p;
  }
  void* p = allocate(total);
  if (p && (total <= small_max || config.hardened)) std::memset(p, 0, total);
  return p;
}

void* allocate_aligned(std::size_t alignment, std::size_t size) noexcept {
  if (alignment == 0 || (alignment & (alignment - 1))) { errno = EINVAL; return nullptr; }
  if (alignment <= 16) return allocate(size);
  ensure_initialised();
  if (config.hardened) [[unlikely]] return hardened::allocate(size, alignment);
  return detail::allocate_block(size, alignment);
}

void* reallocate(void* p, std::size_t size) noexcept {
  if (!p) return allocate(size);
  if (size == 0) { deallocate(p); return nullptr; }   // as glibc: free, return NULL
  page_entry e = page_map::lookup(p);
  if (detail::is_guarded(e)) [[unlikely]] {   // moved to a plain block (a new sample is the front end's choice)
    std::size_t old_usable = detail::guarded->usable_size(p, "realloc");
    void* q = allocate(size);
    if (!q) return nullptr;
    std::memcpy(q, p, size < old_usable ? size : old_usable);
    detail::guarded->free(p, 0, false, "realloc");
    return q;
  }
  if (hardened_block(p)) [[unlikely]] return hardened::reallocate(p, size);
  slab* s = detail::checked_block("realloc", p, e);
  unsigned cls = e.size_class() & ~page_entry::explicit_flag;
  detail::end_sample(p, s);   // the old size is freed; the new one may be sampled anew (tag_sampled)
  std::size_t old_usable;
  if (is_small_class(cls)) {
    // A freed block kept in place would be handed out twice (found by review).
    if (free_marks::is_marked(p)) [[unlikely]] free_marks::double_free("realloc", p);
    old_usable = size_classes[cls].size;
    if (size <= old_usable && size >= old_usable / 2) return p;   // fits, not too wasteful
  } else if (cls == page_entry::huge_class) {
    old_usable = huge_usable_size(s);
    if (size > large_max) {
      void* moved = reallocate_huge(s, size);
      if (!moved) errno = ENOMEM;
      return moved;
    }
  } else {
    old_usable = s->bytes;
    if (size > small_max && size <= large_max && s->owner->resize_large_in_place(s, size)) return p;
  }
  void* q = allocate(size);
  if (!q) return nullptr;   // the old block stays valid, as C requires
  std::memcpy(q, p, size < old_usable ? size : old_usable);
  deallocate(p);
  return q;
}

std::size_t usable_size(const void* p) noexcept { return detail::usable_size_for(p, "malloc_usable_size"); }

std::size_t detail::usable_size_for(const void* p, const char* operation) noexcept {
  if (!p) return 0;
  page_entry e = page_map::lookup(p);
  if (detail::is_guarded(e)) [[unlikely]] return detail::guarded->usable_size(p, operation);
  if (hardened_block(p)) [[unlikely]] return hardened::usable_size(p);
  slab* s = detail::checked_block(operation, p, e);
  unsigned cls = e.size_class() & ~page_entry::explicit_flag;
  if (is_small_class(cls)) return size_classes[cls].size;
  return cls == page_entry::huge_class ? huge_usable_size(s) : s->bytes;
}

bool owns(const void* p) noexcept {
  page_entry e = page_map::lookup(p);
  if (detail::is_guarded(e)) [[unlikely]] return detail::guarded->owns(p);
  if (hardened_block(p)) [[unlikely]] return hardened::owns(p);
  unsigned cls = e.size_class() & ~page_entry::explicit_flag;
  if (cls == 0) return false;
  if (is_small_class(cls)) return detail::is_object_start(p, e, cls);
  return reinterpret_cast<std::uintptr_t>(p) == e.owner()->start;
}

void* block_start(const void* p) noexcept {
  page_entry e = page_map::lookup(p);
  if (detail::is_guarded(e)) [[unlikely]] return detail::guarded->block_start(p);
  unsigned cls = e.size_class() & ~page_entry::explicit_flag;
  if (cls == 0) return nullptr;
  auto a = reinterpret_cast<std::uintptr_t>(p);
  if (!is_small_class(cls)) return reinterpret_cast<void*>(e.owner()->start);
  std::uintptr_t slab_start = detail::slab_start_of(a, e);
  std::uint64_t index = ((a - slab_start) * size_classes[cls].reciprocal) >> 32;
  if (index * size_classes[cls].size > a - slab_start) --index;   // the reciprocal rounds up
  if (index >= size_classes[cls].objects) return nullptr;            // the slab's unused tail
  return reinterpret_cast<void*>(slab_start + index * size_classes[cls].size);
}

bool tag_sampled(void* p, std::uint32_t sample) noexcept {
  page_entry e = page_map::lookup(p);
  unsigned cls = e.size_class();
  if (cls == 0 || is_small_class(cls) || (cls & page_entry::explicit_flag) || detail::is_guarded(e) ||
      e.owner()->start != reinterpret_cast<std::uintptr_t>(p))
    return false;
  e.owner()->sample = sample;
  return true;
}

void* allocate_sampled(std::size_t size, std::size_t alignment, bool zero, std::uint32_t sample) noexcept {
  ensure_initialised();
  if (alignment < os::page_size) alignment = os::page_size;
  void* p = nullptr;
  if (size <= large_max && alignment <= chunk_bytes / 4 && os::round_to_pages(size) + alignment <= chunk_bytes)
    p = home_arena().allocate_large(size, alignment, zero);
  else if (size < (std::size_t(1) << 46) && alignment < (std::size_t(1) << 40))
    p = allocate_huge(size, alignment, nullptr, zero);   // zeroes only reused pages
  if (!p) { errno = ENOMEM; return nullptr; }
  page_map::lookup(p).owner()->sample = sample;   // before p escapes: no free can race with it
  return p;
}

void flush_thread_cache() noexcept {
  ensure_initialised();
  if (mode == cache_mode::per_cpu) {
    char* area = rseq::area(detail::rseq_offset);
    for (unsigned cls = first_class; cls < cache_bins; ++cls) {
      void* batch[64];
      unsigned n;
      do {
        n = rseq::pop_batch(area, &cpu_caches[0].bins[cls], batch, 64);
        free_to_slabs(batch, n);
      } while (n == 64);
    }
  }
  cache_set* set = thread_slot();
  if (set != &no_cache && set != &exited_cache) {
    hardened::flush_delayed(*set);
    for (unsigned cls = first_class; cls < cache_bins; ++cls) {
      arena_source source{home_arena(), cls};
      bin_flush(set->bins[cls], source);
    }
  }
}

namespace {
// Another CPU's bin can only be emptied from that CPU (its rseq critical
// sections assume nobody else touches it), so purging moves the calling thread
// to every CPU in turn (even outside its own affinity, which it gets back
// after), draining each CPU's bins there. CPUs the kernel will not let it run
// on (another cpuset) keep what their bins hold.
void flush_every_cpu_cache() noexcept {
  os::cpu_mask own;
  if (!os::thread_cpus(own)) return flush_thread_cache();
  for (unsigned cpu = 0, n = os::cpu_id_limit(); cpu < n; ++cpu)
    if (os::move_thread_to(cpu)) flush_thread_cache();
  os::set_thread_cpus(own);
}
}  // namespace

void add_fork_hooks(void (*prepare)(), void (*parent)(), void (*child)()) noexcept {
  static mutex hooks_lock;
  lock_guard guard(hooks_lock);
  unsigned n = extra_fork_hook_count.load(std::memory_order_relaxed);
  if (n >= max_fork_hooks) {
    fatal("more than %u fork hooks", max_fork_hooks);
  } else {   // (fatal does not return; the else is for the static checkers)
    extra_fork_hooks[n] = {prepare, parent, child};
    extra_fork_hook_count.store(n + 1, std::memory_order_release);   // published whole
  }
}

void purge_all() noexcept {
  if (current_cache_mode() == cache_mode::per_cpu) flush_every_cpu_cache();
  else flush_thread_cache();
  arenas::decay_tick(true);
}

void for_each_cache(void (*visit)(const cache_set&, void*), void* context) noexcept {
  ensure_initialised();
  if (mode == cache_mode::per_cpu)
    for (unsigned cpu = 0, n = os::cpu_id_limit(); cpu < n; ++cpu) visit(cpu_caches[cpu], context);
  lock_guard guard(registry_lock);
  for (cache_set* set = live_threads; set; set = set->next_thread) visit(*set, context);
}

void adjust_cache_counts(unsigned cls, std::uint64_t& misses, std::uint64_t& frees) noexcept {
  const slow_path_counters& c = slow_counts[cls];
  frees += c.direct_frees.load(std::memory_order_relaxed);
  misses = c.misses.load(std::memory_order_relaxed);
}

void invalid_pointer(const char* operation, const void* p, const char* why) noexcept {
  fatal("%s(%p): invalid pointer: %s", operation, p, why);
}

}  // namespace pcm
