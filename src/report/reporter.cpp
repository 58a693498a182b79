#include "report/reporter.hpp"

#include <atomic>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <link.h>
#include <unistd.h>

#include "lock.hpp"
#include "options.hpp"
#include "platform/platform.hpp"
#include "trace/stack_trace.hpp"
#include "trace/symbolize.hpp"
#include "text_writer.hpp"

extern "C" void* __libc_stack_end;

#ifndef PCM_DEBUG
#define PCM_DEBUG 0
#endif

namespace pcm::debug {
namespace {

// Which library speaks: a report names it, so that a reader knows whether
// the debug heap or a sampled guard found the bug.
constexpr const char* library_name = PCM_DEBUG ? "pcmalloc-debug" : "pcmalloc";

mutex report_lock;
std::atomic<std::uint64_t> error_total{0};
os::kept_output report_output;
__thread std::int32_t cached_thread_id __attribute__((tls_model("initial-exec"))) = 0;

constexpr unsigned max_depth = 64;

// Taken at start-up (prepare_reports) or at the first report: report_file, or
// a copy of stderr (os::kept_output says why).
int output_fd() {
  if (!report_output.kept()) report_output.keep(config.report_file);
  return report_output.fd();
}

// Where `address` lies relative to the block: inside, before or after it.
void describe_location(text_writer& w, const error_report& r) {
  const block_record* b = r.block;
  if (!b) {
    if (r.object_size) w.put("a %zu-byte object at 0x%zx", r.object_size, std::size_t(r.address));
    else w.put("address 0x%zx", std::size_t(r.address));
    return;
  }
  auto offset = std::intptr_t(r.address - b->user);
  if (offset >= 0 && std::size_t(offset) < b->size)
    w.put("address 0x%zx, %zd bytes inside a %zu-byte block at 0x%zx", std::size_t(r.address), offset, b->size, std::size_t(b->user));
  else if (offset >= 0)
    w.put("address 0x%zx, %zu bytes after the end of a %zu-byte block at 0x%zx", std::size_t(r.address),
          std::size_t(offset) - b->size, b->size, std::size_t(b->user));
  else
    w.put("address 0x%zx, %zd bytes before a %zu-byte block at 0x%zx", std::size_t(r.address), -offset, b->size, std::size_t(b->user));
}

struct stack_view {
  const char* label;
  void* frames[max_depth];
  unsigned depth = 0;
};

void print_text(int fd, const error_report& r, stack_view* stacks, unsigned stack_count) {
  {
    text_writer w(fd, nullptr, 0);
    const int pid = int(getpid());
    w.put("==%d== ERROR: %s: %s on ", pid, library_name, name_of(r.kind));
    describe_location(w, r);
    w.put("\n==%d== %s\n", pid, r.what);
    w.put("==%d== threads: detected in T%d", pid, int(current_thread()));
    if (r.block) {
      w.put(", allocated by T%d", int(r.block->alloc_thread));
      if (r.block->state == block_state::quarantined) w.put(", freed by T%d", int(r.block->free_thread));
    }
    if (r.other_thread) w.put(", in use by T%d at the same time", int(r.other_thread));
    w.put("\n");
    if (r.kind == error_kind::memory_leak)
      w.put("==%d== %zu bytes in %zu blocks are unreachable; allocated at:\n", pid, r.leak_bytes, r.leak_count);
  }
  for (unsigned i = 0; i < stack_count; ++i) {
    if (!stacks[i].depth) continue;
    if (r.kind != error_kind::memory_leak) {
      text_writer w(fd, nullptr, 0);
      w.put("%s:\n", stacks[i].label);
    }
    print_stack(fd, stacks[i].frames, stacks[i].depth);
  }
  text_writer w(fd, nullptr, 0);
  w.put("\n");
}

void print_json(int fd, const error_report& r, stack_view* stacks, unsigned stack_count) {
  text_writer w(fd, nullptr, 0);
  w.put("{\"error\":\"%s\",\"what\":", name_of(r.kind));
  w.put_json_string(r.what);
  w.put(",\"address\":\"0x%zx\",\"pid\":%d,\"threads\":{\"detected\":%d", std::size_t(r.address), int(getpid()), int(current_thread()));
  if (r.block) {
    w.put(",\"allocated\":%d", int(r.block->alloc_thread));
    if (r.block->state == block_state::quarantined) w.put(",\"freed\":%d", int(r.block->free_thread));
  }
  if (r.other_thread) w.put(",\"concurrent\":%d", int(r.other_thread));
  w.put("}");
  if (r.block)
    w.put(",\"block\":{\"address\":\"0x%zx\",\"size\":%zu,\"offset\":%zd}", std::size_t(r.block->user), r.block->size,
          std::intptr_t(r.address - r.block->user));
  if (r.kind == error_kind::memory_leak) w.put(",\"leaked_blocks\":%zu,\"leaked_bytes\":%zu", r.leak_count, r.leak_bytes);
  w.put(",\"stacks\":{");
  bool first_stack = true;
  for (unsigned i = 0; i < stack_count; ++i) {
    if (!stacks[i].depth) continue;
    w.put("%s\"%s\":[", first_stack ? "" : ",", stacks[i].label);
    first_stack = false;
    for (unsigned f = 0; f < stacks[i].depth; ++f) {
      frame_info info{};
      symbolize(stacks[i].frames[f], info);
      w.put("%s{\"pc\":\"%p\",\"function\":", f ? "," : "", stacks[i].frames[f]);
      w.put_json_string(info.function);
      w.put(",\"file\":");
      w.put_json_string(info.file);
      w.put(",\"line\":%u,\"module\":", info.line);
      w.put_json_string(info.module);
      w.put(",\"module_offset\":\"0x%zx\"}", std::size_t(info.module_offset));
    }
    w.put("]");
  }
  w.put("}}\n");
}

}  // namespace

const char* name_of(error_kind kind) noexcept {
  switch (kind) {
    case error_kind::use_after_free: return "use-after-free";
    case error_kind::use_after_return: return "use-after-return";
    case error_kind::double_free: return "double-free";
    case error_kind::invalid_free: return "invalid-free";
    case error_kind::realloc_of_freed: return "realloc-of-freed";
    case error_kind::heap_buffer_overflow: return "heap-buffer-overflow";
    case error_kind::heap_buffer_underflow: return "heap-buffer-underflow";
    case error_kind::alloc_dealloc_mismatch: return "alloc-dealloc-mismatch";
    case error_kind::sized_delete_mismatch: return "sized-delete-mismatch";
    case error_kind::memory_leak: return "memory-leak";
    case error_kind::cross_thread_use: return "cross-thread-use";
    case error_kind::wild_access: return "wild-access";
  }
  return "error";
}

std::int32_t current_thread() noexcept {
  if (!cached_thread_id) cached_thread_id = std::int32_t(os::thread_id());
  return cached_thread_id;
}

// fork(): a report in progress on another thread must not leave the child
// with report_lock held; the child's one thread has a new id.
void reports_fork_prepare() noexcept { report_lock.lock(); }
void reports_fork_parent() noexcept { report_lock.unlock(); }
void reports_fork_child() noexcept {
  report_lock.reset_after_fork();
  cached_thread_id = 0;
}

namespace {
// The debug library's own code: stacks start at its entry point (malloc,
// operator new, ...), whatever inlining did to the frames inside it.
std::uintptr_t own_text_begin = 0, own_text_end = 0;

int find_own_text(dl_phdr_info* info, std::size_t, void*) {
  auto here = reinterpret_cast<std::uintptr_t>(&find_own_text);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
    std::uintptr_t begin = info->dlpi_addr + ph.p_vaddr, end = begin + ph.p_memsz;
    if (here >= begin && here < end) {
      own_text_begin = begin;
      own_text_end = end;
      return 1;
    }
  }
  return 0;
}
}  // namespace

void find_own_code() noexcept {
  if (!own_text_end) dl_iterate_phdr(find_own_text, nullptr);
}

void prepare_reports() noexcept {
  find_own_code();
  output_fd();
  void* warm_up[4];
  capture(warm_up, 4, 0);   // libunwind's first use in a process may set itself up
}

namespace {
// Unwind into `all` as deep as `limit` frames of the program need, plus this
// library's own frames on top (a handful at malloc; when a report has more,
// unwind again deeper). Returns the depth; *first is the program's call into
// this library (malloc, operator new, ...), or 0 when every frame is ours.
// Always inlined: the frames must be those of its caller (save_here relies on
// frame 0 being its own).
constexpr unsigned unwind_capacity = 128;
[[gnu::always_inline]] inline unsigned unwind_program(void** all, unsigned limit, unsigned* first) noexcept {
  auto inside = [](void* pc) {
    auto a = reinterpret_cast<std::uintptr_t>(pc);
    return a >= own_text_begin && a < own_text_end;
  };
  unsigned want = limit + 4 < unwind_capacity ? limit + 4 : unwind_capacity;
  unsigned depth = capture(all, want, 0);
  unsigned f = 0;
  while (f < depth && inside(all[f])) ++f;
  if (depth == want && f + limit > want && want < unwind_capacity) {
    want = f + limit + 4 < unwind_capacity ? f + limit + 4 : unwind_capacity;
    depth = capture(all, want, 0);
    f = 0;
    while (f < depth && inside(all[f])) ++f;
  }
  *first = f == depth ? 0 : f;
  return depth;
}
}  // namespace

unsigned capture_here(void** frames, unsigned max) noexcept {
  // Unwinding is most of the debug heap's cost: only as deep as will be kept.
  return capture_program(frames, config.stack_depth < max ? config.stack_depth : max);
}

unsigned capture_program(void** frames, unsigned limit) noexcept {
  if (limit == 0) return 0;   // stack_depth:0, no stacks: the cheapest checking
  void* all[unwind_capacity];
  unsigned first;
  unsigned depth = unwind_program(all, limit, &first);
  unsigned n = 0;
  for (unsigned i = first; i < depth && n < limit; ++i) frames[n++] = all[i];
  return n;
}

namespace {
// The last stack saved on this thread, with the stack slot where each return
// address was found. A thread that allocates again from the same place (a
// loop) has its stack pointer at the same place and the same return addresses
// in the same slots: a few loads prove the stack unchanged, instead of an
// unwind and a depot lookup. (Frames laid out by a frame pointer, e.g. with
// alloca, could move while a stale copy stays in an old slot: then a stack of
// the same functions from another path is reused. Rare, and still a true
// stack of the program.)
constexpr unsigned cached_frames = 28;
constexpr std::uintptr_t slot_search_bytes = 64 * 1024;
struct saved_stack_cache {
  std::uintptr_t anchor;   // where save_here's local lies: the same call path puts it at the same place
  std::uint32_t id;        // 0: nothing cached
  unsigned count;
  void* const* slot[cached_frames];
  void* value[cached_frames];
};

// The highest address of this thread's stack that may be read above `anchor`
// (the main thread: where its stack started; other threads: their control block,
// which glibc puts at the top of their stack), or 0 when unknown.
std::uintptr_t stack_top_above(std::uintptr_t anchor) {
  constexpr std::uintptr_t plausible = std::uintptr_t(1) << 26;
  auto main_top = reinterpret_cast<std::uintptr_t>(__libc_stack_end);
  if (anchor < main_top && main_top - anchor < plausible) return main_top;
  auto thread_top = reinterpret_cast<std::uintptr_t>(__builtin_thread_pointer());
  if (anchor < thread_top && thread_top - anchor < plausible) return thread_top;
  return 0;
}
// A few per thread: allocation and free paths alternate.
constexpr unsigned cached_stacks = 4;
__thread saved_stack_cache last_saved[cached_stacks] __attribute__((tls_model("initial-exec")));
__thread unsigned last_replaced __attribute__((tls_model("initial-exec")));
// Finding the slots costs a scan of the stack, as much as the unwind itself
// when frames are large (python3: 16% of its time under the debug heap) and
// pays only when the same path comes back. Counted per window of fill_window
// fills: a thread with fewer than min_hits hits in its last window (varied call
// paths) fills only one miss in sparse_period during the next one.
constexpr unsigned fill_window = 64, min_hits = 16, sparse_period = 16;
struct fill_stats {
  unsigned fills, hits, skipped;
  bool sparse;
};
__thread fill_stats fill_rate __attribute__((tls_model("initial-exec")));
}  // namespace

__attribute__((noinline)) std::uint32_t save_here() noexcept {
  volatile int anchor_local = 0;
  auto anchor = reinterpret_cast<std::uintptr_t>(&anchor_local);
  saved_stack_cache* match = nullptr;
  for (saved_stack_cache& c : last_saved) {
    if (!c.id || c.anchor != anchor) continue;
    unsigned k = 0;
    while (k < c.count && *c.slot[k] == c.value[k]) ++k;
    if (k == c.count) {
      ++fill_rate.hits;
      return c.id;
    }
    match = &c;   // same place, another path: replace this one
  }
  if (!match) match = &last_saved[last_replaced++ % cached_stacks];
  saved_stack_cache& cache = *match;
  unsigned limit = config.stack_depth < max_stack_depth ? config.stack_depth : max_stack_depth;
  if (limit == 0) return 0;
  void* all[unwind_capacity];
  unsigned begin;
  unsigned depth = unwind_program(all, limit, &begin);
  unsigned n = depth - begin < limit ? depth - begin : limit;
  std::uint32_t id = stack_depot_save(all + begin, n);
  // Where frames 1.. came from (frame 0 is in this function: always the same).
  // Return addresses are the frames + 1.
  cache.id = 0;
  if (fill_rate.sparse && ++fill_rate.skipped % sparse_period) return id;
  if (++fill_rate.fills == fill_window) {
    fill_rate.sparse = fill_rate.hits < min_hits;
    fill_rate.fills = fill_rate.hits = 0;
  }
  unsigned last = begin + n;
  std::uintptr_t top = stack_top_above(anchor);
  if (id && top && last - 1 <= cached_frames) {
    // Every return address was read from the stack by the unwinder, except
    // below a signal frame: a value not found ends the search at `top`.
    std::uintptr_t search_end = top - anchor < slot_search_bytes ? top : anchor + slot_search_bytes;
    auto* p = reinterpret_cast<void* const*>((anchor + sizeof(void*) - 1) & ~std::uintptr_t(sizeof(void*) - 1));
    auto* end = reinterpret_cast<void* const*>(search_end & ~std::uintptr_t(sizeof(void*) - 1));
    unsigned k = 0;
    for (unsigned f = 1; f < last; ++f) {
      void* value = static_cast<char*>(all[f]) + 1;
      while (p < end && *p != value) ++p;
      if (p == end) return id;   // not found near: no caching
      cache.slot[k] = p;
      cache.value[k++] = value;
      ++p;
    }
    cache.count = k;
    cache.anchor = anchor;
    cache.id = id;
  }
  return id;
}

std::uint64_t errors_reported() noexcept { return error_total.load(std::memory_order_relaxed); }

void report_note(const char* text, std::size_t length) noexcept {
  lock_guard guard(report_lock);
  int fd = output_fd();
  if (config.report_json) {   // keep the output one JSON object per line
    char copy[512];
    std::size_t n = length < sizeof copy - 1 ? length : sizeof copy - 1;
    std::memcpy(copy, text, n);
    while (n && copy[n - 1] == '\n') --n;
    copy[n] = 0;
    text_writer w(fd, nullptr, 0);
    w.put("{\"note\":");
    w.put_json_string(copy);
    w.put("}\n");
    return;
  }
  os::write_all(fd, text, length);
}


void report(const error_report& r) noexcept {
  if (r.counts) error_total.fetch_add(1, std::memory_order_relaxed);
  stack_view stacks[4];
  stacks[0].label = r.kind == error_kind::memory_leak ? "allocated" : "detected";
  if (r.kind == error_kind::memory_leak && r.block) {
    stacks[0].depth = stack_depot_load(r.block->alloc_stack, stacks[0].frames, max_depth);
  } else if (r.frames) {
    stacks[0].depth = r.depth < max_depth ? r.depth : max_depth;
    for (unsigned i = 0; i < stacks[0].depth; ++i) stacks[0].frames[i] = r.frames[i];
  } else {
    stacks[0].depth = capture_here(stacks[0].frames, max_depth);
  }
  unsigned count = 1;
  if (r.block && r.kind != error_kind::memory_leak) {
    stacks[1].label = "allocated";
    stacks[1].depth = stack_depot_load(r.block->alloc_stack, stacks[1].frames, max_depth);
    count = 2;
    if (r.block->state == block_state::quarantined && r.block->free_stack) {
      stacks[2].label = "freed";
      stacks[2].depth = stack_depot_load(r.block->free_stack, stacks[2].frames, max_depth);
      count = 3;
    }
  }
  if (r.extra_stack) {
    stacks[count].label = r.extra_label ? r.extra_label : "see also";
    stacks[count].depth = stack_depot_load(r.extra_stack, stacks[count].frames, max_depth);
    ++count;
  }
  {
    lock_guard guard(report_lock);
    int fd = output_fd();
    if (config.report_json) print_json(fd, r, stacks, count);
    else print_text(fd, r, stacks, count);
  }
  if (PCM_DEBUG && config.abort_on_error && r.kind != error_kind::memory_leak) {
    os::write_error("pcmalloc-debug: stopping at the first error (abort_on_error)\n", 61);
    os::abort_process();
  }
}

}  // namespace pcm::debug
