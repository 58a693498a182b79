// A bounded-time, multi-threaded, content-checked stress program for any
// malloc: it uses only the standard malloc family and operator new, so it runs
// linked against libpcmalloc.so (as meson builds it) or under LD_PRELOAD of any
// allocator. Every live block carries a pattern derived from its id and each
// byte's offset; the pattern is verified before every free, after every
// realloc (the preserved prefix) and in forked children. Any mismatch, null
// from an allocation, or failed child ends the run with exit status 1.
//
//   stress [--seconds S] [--threads N] [--seed X] [--fork-ms M] [--cap-mib C] [--oom-ok]
//
// --oom-ok: run out of memory on purpose (e.g. under PCMALLOC_CONF=limit_bytes:N
// or ulimit -v): failed allocations (NULL with ENOMEM, std::bad_alloc) are
// counted, not errors; a failed realloc must leave its block intact. Every
// other check stays.
//
// Workers come and go: each runs a random number of operations, gives half its
// blocks to shared mailboxes (freed or adopted by other threads) and exits; the
// main thread starts a new one in its slot. Now and then a worker forks; the
// child checks and frees the worker's blocks, allocates for a while, _exits.
// The checksum sums (id, size) of every block verified and freed: it shows the
// work was done, but depends on scheduling, so it differs between runs.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <malloc.h>
#include <mutex>
#include <new>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

constexpr std::size_t KiB = 1024, MiB = 1024 * KiB;

// ---- settings and shared counters -------------------------------------------------
struct settings {
  double seconds = 5;
  unsigned threads = 4;
  std::uint64_t seed = 1;
  unsigned fork_ms = 300;          // 0: never fork
  std::size_t cap_bytes = 16 * MiB;   // live bytes per worker before it only frees
  bool oom_ok = false;
} opt;

std::atomic<bool> stopping{false};
std::atomic<std::uint64_t> operations{0}, checksum{0}, forks{0}, threads_started{0}, out_of_memory{0};
std::atomic<std::int64_t> live_bytes{0}, peak_live_bytes{0};
std::atomic<std::uint64_t> next_fork_ms{0};
std::chrono::steady_clock::time_point start_time;

std::uint64_t elapsed_ms() {
  return std::uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start_time).count());
}

// Heap-free reporting (usable in a forked child and with a broken heap).
[[noreturn]] void fail(const char* format, ...) {
  char text[512];
  va_list args;
  va_start(args, format);
  int n = std::vsnprintf(text, sizeof text - 1, format, args);
  va_end(args);
  if (n < 0) n = 0;
  if (n > int(sizeof text) - 2) n = int(sizeof text) - 2;
  text[n++] = '\n';
  ssize_t ignored = write(STDERR_FILENO, text, std::size_t(n));
  (void)ignored;
  _exit(1);
}

void add_live(std::int64_t delta) {
  std::int64_t now = live_bytes.fetch_add(delta, std::memory_order_relaxed) + delta;
  std::int64_t peak = peak_live_bytes.load(std::memory_order_relaxed);
  while (now > peak && !peak_live_bytes.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {}
}

// ---- random numbers -------------------------------------------------------------
struct rng {
  std::uint64_t state;
  std::uint64_t next() {   // splitmix64
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  std::uint64_t below(std::uint64_t n) { return next() % n; }
  std::size_t between(std::size_t lo, std::size_t hi) { return lo + below(hi - lo + 1); }
};

// Skewed to small: most requests are tiny, a few reach several MiB.
std::size_t random_size(rng& r) {
  std::uint64_t pick = r.below(10000);
  if (pick < 6500) return r.between(1, 128);
  if (pick < 9000) return r.between(129, 4 * KiB);
  if (pick < 9800) return r.between(4 * KiB + 1, 64 * KiB);
  if (pick < 9980) return r.between(64 * KiB + 1, 1 * MiB);
  return r.between(1 * MiB + 1, 6 * MiB);
}

// ---- patterns ---------------------------------------------------------------------
// Up to 256 KiB every byte is patterned; above, the first 4 KiB and the first
// 64 bytes of every page (still touching every page). Which bytes are checked
// depends on the offset only, so a realloc's preserved prefix can be verified.
constexpr std::size_t full_limit = 256 * KiB;

inline std::uint64_t pattern_word(std::uint64_t id, std::size_t word) {
  std::uint64_t x = (id + 1) * 0x9E3779B97F4A7C15ull + word;
  x ^= x >> 29;
  return x * 0xBF58476D1CE4E5B9ull;
}

// Visit the checked ranges [from, to) of a block of `size` bytes.
template <class Visit>
void for_checked_ranges(std::size_t size, Visit visit) {
  if (size <= full_limit) { visit(0, size); return; }
  visit(0, 4 * KiB);
  for (std::size_t page = 4 * KiB; page < size; page += 4 * KiB) visit(page, std::min(page + 64, size));
}

void fill_range(unsigned char* p, std::size_t from, std::size_t to, std::uint64_t id) {
  std::size_t i = from;
  for (; i < to && (i & 7); ++i) p[i] = (unsigned char)(pattern_word(id, i >> 3) >> ((i & 7) * 8));
  for (; i + 8 <= to; i += 8) {
    std::uint64_t w = pattern_word(id, i >> 3);
    std::memcpy(p + i, &w, 8);
  }
  for (; i < to; ++i) p[i] = (unsigned char)(pattern_word(id, i >> 3) >> ((i & 7) * 8));
}

// Offset of the first wrong byte in [from, to), or `to`.
std::size_t check_range(const unsigned char* p, std::size_t from, std::size_t to, std::uint64_t id) {
  std::size_t i = from;
  for (; i < to && (i & 7); ++i)
    if (p[i] != (unsigned char)(pattern_word(id, i >> 3) >> ((i & 7) * 8))) return i;
  for (; i + 8 <= to; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    if (w != pattern_word(id, i >> 3)) break;
  }
  for (; i < to; ++i)
    if (p[i] != (unsigned char)(pattern_word(id, i >> 3) >> ((i & 7) * 8))) return i;
  return to;
}

// ---- blocks -------------------------------------------------------------------------
enum class kind : std::uint8_t { malloc_, calloc_, aligned_alloc_, posix_memalign_, memalign_,
                                 new_, new_array, new_aligned };
const char* const kind_names[] = {"malloc", "calloc", "aligned_alloc", "posix_memalign", "memalign",
                                  "new", "new[]", "new(align)"};

struct block {
  unsigned char* p;
  std::size_t size;
  std::uint64_t id;
  std::size_t alignment;   // 0: default
  kind how;
};

bool c_family(kind k) { return k <= kind::memalign_; }

void fill(const block& b) {
  for_checked_ranges(b.size, [&](std::size_t from, std::size_t to) { fill_range(b.p, from, to, b.id); });
}

void verify(const block& b, std::size_t size, const char* when) {
  for_checked_ranges(size, [&](std::size_t from, std::size_t to) {
    std::size_t bad = check_range(b.p, from, to, b.id);
    if (bad != to)
      fail("stress: MISMATCH %s: block id %#llx (%s, %zu bytes at %p) byte %zu is %#x, expected %#x",
           when, (unsigned long long)b.id, kind_names[int(b.how)], b.size, (void*)b.p, bad, b.p[bad],
           unsigned((unsigned char)(pattern_word(b.id, bad >> 3) >> ((bad & 7) * 8))));
  });
}

std::size_t random_alignment(rng& r) {
  std::uint64_t pick = r.below(100);
  if (pick < 60) return std::size_t(16) << r.below(3);     // 16..64
  if (pick < 90) return std::size_t(128) << r.below(6);    // 128..4096
  if (pick < 99) return std::size_t(8 * KiB) << r.below(4);  // 8..64 KiB
  return std::size_t(1) * MiB;
}

block allocate(rng& r, std::uint64_t id) {
  block b{nullptr, random_size(r), id, 0, kind::malloc_};
  std::uint64_t pick = r.below(100);
  void* p = nullptr;
  if (pick < 45) {
    p = std::malloc(b.size);
  } else if (pick < 55) {
    b.how = kind::calloc_;
    std::size_t count = r.between(1, 8);
    b.size = (b.size + count - 1) / count * count;
    p = std::calloc(count, b.size / count);
    if (p)
      for (std::size_t i = 0; i < b.size; ++i)
        if (static_cast<unsigned char*>(p)[i] != 0)
          fail("stress: calloc(%zu, %zu) = %p: byte %zu is %#x, not zero", count, b.size / count, p, i,
               static_cast<unsigned char*>(p)[i]);
  } else if (pick < 70) {
    b.alignment = random_alignment(r);
    std::uint64_t which = r.below(3);
    if (which == 0) {
      b.how = kind::aligned_alloc_;
      b.size = (b.size + b.alignment - 1) / b.alignment * b.alignment;   // C11 wants a multiple
      p = aligned_alloc(b.alignment, b.size);
    } else if (which == 1) {
      b.how = kind::posix_memalign_;
      int error = posix_memalign(&p, b.alignment, b.size);
      if (error == ENOMEM && opt.oom_ok) errno = ENOMEM;
      else if (error) fail("stress: posix_memalign(%zu, %zu) failed: %s", b.alignment, b.size, std::strerror(error));
    } else {
      b.how = kind::memalign_;
      p = memalign(b.alignment, b.size);
    }
  } else {
    try {
      if (pick < 85) {
        b.how = kind::new_;
        p = ::operator new(b.size);
      } else if (pick < 93) {
        b.how = kind::new_array;
        p = ::operator new[](b.size);
      } else {
        b.how = kind::new_aligned;
        b.alignment = random_alignment(r);
        p = ::operator new(b.size, std::align_val_t(b.alignment));
      }
    } catch (const std::bad_alloc&) {
      if (!opt.oom_ok) fail("stress: %s of %zu bytes threw std::bad_alloc", kind_names[int(b.how)], b.size);
      errno = ENOMEM;
    }
  }
  if (!p && opt.oom_ok && errno == ENOMEM) {
    out_of_memory.fetch_add(1, std::memory_order_relaxed);
    return b;   // b.p == nullptr: nothing to keep
  }
  if (!p) fail("stress: %s of %zu bytes returned null (errno %d)", kind_names[int(b.how)], b.size, errno);
  if (b.alignment && reinterpret_cast<std::uintptr_t>(p) % b.alignment)
    fail("stress: %s(%zu, %zu) = %p is not aligned", kind_names[int(b.how)], b.alignment, b.size, p);
  if (reinterpret_cast<std::uintptr_t>(p) % 16 && b.size >= 16)
    fail("stress: %s(%zu) = %p is not 16-byte aligned", kind_names[int(b.how)], b.size, p);
  if (malloc_usable_size(p) < b.size)
    fail("stress: malloc_usable_size(%p) = %zu < %zu", p, malloc_usable_size(p), b.size);
  b.p = static_cast<unsigned char*>(p);
  fill(b);
  add_live(std::int64_t(b.size));
  return b;
}

std::uint64_t release(const block& b, const char* when) {
  verify(b, b.size, when);
  add_live(-std::int64_t(b.size));
  switch (b.how) {
    case kind::new_: ::operator delete(b.p, b.size); break;
    case kind::new_array: ::operator delete[](b.p); break;
    case kind::new_aligned: ::operator delete(b.p, std::align_val_t(b.alignment)); break;
    default: std::free(b.p); break;
  }
  return pattern_word(b.id, b.size);
}

// A chain of reallocs on one C-family block: grow and shrink, each time the
// common prefix must survive; the block then carries its pattern in full again.
void realloc_chain(rng& r, block& b) {
  unsigned steps = unsigned(r.between(1, 6));
  for (unsigned i = 0; i < steps; ++i) {
    std::size_t n;
    std::uint64_t pick = r.below(4);
    if (pick == 0) n = random_size(r);
    else if (pick == 1) n = b.size + r.between(1, b.size < 64 * KiB ? b.size : 64 * KiB);   // grow
    else if (pick == 2) n = b.size > 1 ? r.between(1, b.size - 1) : 1;                    // shrink
    else n = std::max<std::size_t>(1, b.size + r.between(0, 32) - 16);                     // wiggle
    if (n > 8 * MiB) n = 8 * MiB;
    void* q = std::realloc(b.p, n);
    if (!q && opt.oom_ok && errno == ENOMEM) {   // the block must be as it was
      out_of_memory.fetch_add(1, std::memory_order_relaxed);
      verify(b, b.size, "after a failed realloc");
      return;
    }
    if (!q) fail("stress: realloc(%p, %zu) returned null (errno %d)", (void*)b.p, n, errno);
    const std::size_t old = b.size;
    b.p = static_cast<unsigned char*>(q);
    b.how = kind::malloc_;
    b.alignment = 0;
    // The bytes checked for the old size, clipped to the new one.
    std::size_t keep = std::min(old, n);
    for_checked_ranges(old, [&](std::size_t from, std::size_t to) {
      if (from >= keep) return;
      to = std::min(to, keep);
      std::size_t bad = check_range(b.p, from, to, b.id);
      if (bad != to)
        fail("stress: MISMATCH after realloc %zu -> %zu: block id %#llx at %p byte %zu", old, n,
             (unsigned long long)b.id, q, bad);
    });
    b.size = n;
    if (malloc_usable_size(q) < n) fail("stress: malloc_usable_size(%p) = %zu < %zu after realloc", q, malloc_usable_size(q), n);
    fill(b);
    add_live(std::int64_t(n) - std::int64_t(old));
  }
}

// ---- mailboxes: blocks handed from one thread to another ---------------------------
constexpr unsigned mailbox_count = 16;
constexpr std::size_t mailbox_limit = 512;
struct mailbox {
  std::mutex lock;
  std::vector<block> blocks;
};
mailbox mailboxes[mailbox_count];

bool post(rng& r, const block& b) {
  mailbox& m = mailboxes[r.below(mailbox_count)];
  std::lock_guard guard(m.lock);
  if (m.blocks.size() >= mailbox_limit) return false;
  m.blocks.push_back(b);
  return true;
}

// Take up to `n` blocks from a random mailbox.
void collect(rng& r, std::vector<block>& out, std::size_t n) {
  mailbox& m = mailboxes[r.below(mailbox_count)];
  std::lock_guard guard(m.lock);
  while (n-- && !m.blocks.empty()) {
    out.push_back(m.blocks.back());
    m.blocks.pop_back();
  }
}

// ---- workers ------------------------------------------------------------------------
struct worker_state {
  rng r{0};
  std::uint64_t serial = 0;
  std::uint64_t next_id = 0;
  std::vector<block> own;
  std::size_t own_bytes = 0;
  std::uint64_t ops = 0, sum = 0;

  std::uint64_t new_id() { return (serial << 36) | next_id++; }
  void adopt(const block& b) { own.push_back(b); own_bytes += b.size; }
  block remove_at(std::size_t i) {
    block b = own[i];
    own[i] = own.back();
    own.pop_back();
    own_bytes -= b.size;
    return b;
  }
};

// In a forked child: verify and free half the blocks, allocate and free for a
// while (single-threaded now), verify the rest. Never returns.
[[noreturn]] void child_after_fork(worker_state& w) {
  for (std::size_t i = 0; i < w.own.size(); ++i) verify(w.own[i], w.own[i].size, "in forked child");
  for (std::size_t i = w.own.size() / 2; i-- > 0;) release(w.remove_at(i), "free in forked child");
  std::vector<block> mine;
  try { mine.reserve(2048); } catch (const std::bad_alloc&) { _exit(0); }   // --oom-ok only
  for (unsigned round = 0; round < 1500; ++round) {
    if (mine.size() < 2048 && w.r.below(3) != 0) {
      block b = allocate(w.r, w.new_id());
      if (!b.p) continue;   // out of memory (--oom-ok)
      if (c_family(b.how) && w.r.below(4) == 0) realloc_chain(w.r, b);
      mine.push_back(b);
    } else if (!mine.empty()) {
      std::size_t i = w.r.below(mine.size());
      release(mine[i], "free in forked child");
      mine[i] = mine.back();
      mine.pop_back();
    }
  }
  for (const block& b : mine) release(b, "free in forked child");
  for (const block& b : w.own) verify(b, b.size, "in forked child (end)");
  _exit(0);
}

void maybe_fork(worker_state& w) {
  if (!opt.fork_ms) return;
  // One child at a time: the next fork is due fork_ms after the last child ended.
  static std::atomic<bool> forking{false};
  std::uint64_t now = elapsed_ms(), due = next_fork_ms.load(std::memory_order_relaxed);
  if (now < due || forking.exchange(true, std::memory_order_acquire)) return;
  pid_t pid = fork();
  if (pid < 0) fail("stress: fork failed: %s", std::strerror(errno));
  if (pid == 0) child_after_fork(w);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) fail("stress: waitpid failed: %s", std::strerror(errno));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail("stress: forked child failed (%s %d)", WIFEXITED(status) ? "exit status" : "signal",
         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
  forks.fetch_add(1, std::memory_order_relaxed);
  next_fork_ms.store(elapsed_ms() + opt.fork_ms, std::memory_order_relaxed);
  forking.store(false, std::memory_order_release);
}

void worker(std::uint64_t serial, std::atomic<bool>* finished) {
  worker_state w;
  w.r = rng{opt.seed * 0x2545F4914F6CDD1Dull + serial};
  w.serial = serial;
  const std::uint64_t lifetime = w.r.between(200, 10000);   // operations before this thread exits
  std::vector<block> incoming;
  // Vectors never grow inside the loop: under --oom-ok a growth could throw.
  try {
    w.own.reserve(8192 + 64);
    incoming.reserve(32);
  } catch (const std::bad_alloc&) {
    if (!opt.oom_ok) fail("stress: no memory for a worker's lists");
    finished->store(true, std::memory_order_release);
    return;
  }
  while (w.ops < lifetime && !stopping.load(std::memory_order_relaxed)) {
    ++w.ops;
    std::uint64_t pick = w.r.below(100);
    const bool full = w.own_bytes > opt.cap_bytes || w.own.size() >= 8192;
    if (pick < 45 && !full) {
      block b = allocate(w.r, w.new_id());
      if (b.p) w.adopt(b);
    } else if (pick < 80 || (pick < 90 && full)) {
      if (!w.own.empty()) w.sum += release(w.remove_at(w.r.below(w.own.size())), "free");
    } else if (pick < 90) {
      if (w.own.empty()) continue;
      std::size_t i = w.r.below(w.own.size());
      if (!c_family(w.own[i].how)) continue;
      w.own_bytes -= w.own[i].size;
      realloc_chain(w.r, w.own[i]);
      w.own_bytes += w.own[i].size;
    } else if (pick < 96) {
      if (w.own.empty()) continue;
      std::size_t i = w.r.below(w.own.size());
      if (post(w.r, w.own[i])) w.remove_at(i);
    } else {
      incoming.clear();
      collect(w.r, incoming, 32);
      for (const block& b : incoming) {
        if (w.r.below(2) || full) w.sum += release(b, "free of a block from another thread");
        else { verify(b, b.size, "adopting a block from another thread"); w.adopt(b); }
      }
    }
    if ((w.ops & 1023) == 0) maybe_fork(w);
  }
  // Leaving: half the blocks go to other threads, the rest are freed here.
  while (!w.own.empty()) {
    block b = w.remove_at(w.own.size() - 1);
    if (w.r.below(2) == 0 && post(w.r, b)) continue;
    w.sum += release(b, "free at thread exit");
  }
  operations.fetch_add(w.ops, std::memory_order_relaxed);
  checksum.fetch_add(w.sum, std::memory_order_relaxed);
  finished->store(true, std::memory_order_release);
}

// ---- main -------------------------------------------------------------------------
void usage() {
  std::fprintf(stderr, "usage: stress [--seconds S] [--threads N] [--seed X] [--fork-ms M] [--cap-mib C] [--oom-ok]\n");
  std::exit(2);
}

void parse(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    auto value = [&]() -> const char* { if (i + 1 >= argc) usage(); return argv[++i]; };
    if (!std::strcmp(argv[i], "--seconds")) opt.seconds = std::atof(value());
    else if (!std::strcmp(argv[i], "--threads")) opt.threads = unsigned(std::atoi(value()));
    else if (!std::strcmp(argv[i], "--seed")) opt.seed = std::strtoull(value(), nullptr, 0);
    else if (!std::strcmp(argv[i], "--fork-ms")) opt.fork_ms = unsigned(std::atoi(value()));
    else if (!std::strcmp(argv[i], "--cap-mib")) opt.cap_bytes = std::size_t(std::atoi(value())) * MiB;
    else if (!std::strcmp(argv[i], "--oom-ok")) opt.oom_ok = true;
    else usage();
  }
  if (opt.threads == 0 || opt.threads > 1024 || opt.seconds <= 0) usage();
}

}  // namespace

int main(int argc, char** argv) {
  parse(argc, argv);
  start_time = std::chrono::steady_clock::now();
  next_fork_ms = opt.fork_ms;
  const std::uint64_t end_ms = std::uint64_t(opt.seconds * 1000);

  struct slot {
    std::thread thread;
    std::atomic<bool> finished{false};
  };
  std::vector<slot> slots(opt.threads);
  std::uint64_t serial = 0;
  for (mailbox& m : mailboxes) m.blocks.reserve(mailbox_limit);
  auto launch = [&](slot& s) {
    s.finished.store(false);
    try {
      s.thread = std::thread(worker, ++serial, &s.finished);
      threads_started.fetch_add(1, std::memory_order_relaxed);
    } catch (const std::exception&) {   // no memory for the thread (--oom-ok): try again later
      if (!opt.oom_ok) fail("stress: cannot start a thread");
      s.finished.store(true);
    }
  };
  for (slot& s : slots) launch(s);
  // Threads come and go: whenever one has finished its lifetime, start another.
  while (elapsed_ms() < end_ms) {
    for (slot& s : slots)
      if (s.finished.load(std::memory_order_acquire)) {
        if (s.thread.joinable()) s.thread.join();
        launch(s);
      }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  stopping.store(true);
  for (slot& s : slots)
    if (s.thread.joinable()) s.thread.join();

  // Blocks still in mailboxes: verify and free them here.
  std::uint64_t sum = 0;
  for (mailbox& m : mailboxes) {
    for (const block& b : m.blocks) sum += release(b, "free of a mailbox block at the end");
    m.blocks.clear();
  }
  checksum.fetch_add(sum);
  if (live_bytes.load() != 0) fail("stress: %lld live bytes unaccounted for at the end", (long long)live_bytes.load());

  std::printf("stress: %.1f s, %u threads (%llu started), seed %llu: %llu operations, %llu forks, "
              "%llu out of memory, peak live %.1f MiB, checksum %016llx\n",
              double(elapsed_ms()) / 1000.0, opt.threads, (unsigned long long)threads_started.load(),
              (unsigned long long)opt.seed, (unsigned long long)operations.load(),
              (unsigned long long)forks.load(), (unsigned long long)out_of_memory.load(), double(peak_live_bytes.load()) / double(MiB),
              (unsigned long long)checksum.load());
  return 0;
}
