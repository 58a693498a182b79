// Programs for tests/guard (guard_test.py): each case does one thing to blocks
// of the release library with guarded sampling on (PCMALLOC_CONF set by the
// driver) and either dies of the fault it provokes or prints what it checked.
// Loops that repeat a bug write their iteration count to the file named by
// GUARD_TEST_COUNTER (a shared mapping: it outlives the crash), so that the
// driver can check how soon the bug was stopped.
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

extern "C" void free_sized(void*, size_t) __attribute__((weak));

namespace {

// Named frames the reports must show (noinline: they stay in the stacks).
__attribute__((noinline)) char* guarded_alloc_site(std::size_t n) {
  char* p = static_cast<char*>(std::malloc(n));
  asm volatile("" ::: "memory");
  return p;
}
__attribute__((noinline)) void guarded_free_site(char* p) {
  std::free(p);
  asm volatile("" ::: "memory");
}
__attribute__((noinline)) void touch_write(char* p, long offset) {
  p[offset] = 7;
  asm volatile("" ::: "memory");
}
__attribute__((noinline)) char touch_read(const char* p, long offset) {
  char c = *static_cast<const volatile char*>(p + offset);
  asm volatile("" ::: "memory");
  return c;
}

volatile std::uint64_t* counter = nullptr;
void open_counter() {
  const char* path = std::getenv("GUARD_TEST_COUNTER");
  if (!path) return;
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || ftruncate(fd, 4096) != 0) { std::perror("counter"); std::exit(2); }
  void* m = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) { std::perror("mmap"); std::exit(2); }
  counter = static_cast<volatile std::uint64_t*>(m);
}

constexpr long max_rounds = 1000000;
int not_stopped(long rounds) {
  std::printf("not stopped after %ld rounds\n", rounds);
  return 0;
}

// Each round allocates exactly one block, frees it and touches it. The
// accesses that land in a plain block are harmless: reads, and a write past
// the free list's link and mark (free_object.hpp: the first 16 bytes).
// The loops' plain blocks must be safe to read just outside: not the first
// (underflow) or last (overflow) block of a slab, whose neighbour may be an
// unmapped page. Two plain blocks next to each other (a guarded block's usable
// size is its size rounded to 16, a plain one's its class size) are found; the
// one on the side that is read stays allocated, the other is freed to the top
// of the cache, where the loop's plain allocations find it again.
void place_block(std::size_t size, std::size_t class_size, bool keep_lower) {
  char* previous = nullptr;
  for (int i = 0; i < 10000; ++i) {
    char* p = static_cast<char*>(std::malloc(size));
    if (malloc_usable_size(p) != class_size) continue;   // guarded: kept, out of the way
    if (previous && (p == previous + class_size || p + class_size == previous)) {
      char* lower = p < previous ? p : previous;
      char* upper = p < previous ? previous : p;
      std::free(keep_lower ? upper : lower);
      return;
    }
    previous = p;
  }
  std::printf("no adjacent plain blocks\n");
  std::exit(2);
}

int loop(const std::string& what) {
  if (what == "underflow-read") place_block(4000, 4096, true);
  if (what == "overflow-read") place_block(64, 64, false);
  open_counter();
  long rounds = 0;
  for (; rounds < max_rounds; ++rounds) {
    if (counter) *counter = std::uint64_t(rounds + 1);
    if (what == "uaf-write") {
      char* p = guarded_alloc_site(48);
      guarded_free_site(p);
      touch_write(p, 24);
    } else if (what == "uaf-read") {
      char* p = guarded_alloc_site(48);
      guarded_free_site(p);
      touch_read(p, 24);
    } else if (what == "overflow-read") {
      char* p = guarded_alloc_site(64);   // a multiple of 16: the block ends on the guard page
      touch_read(p, 64);
      guarded_free_site(p);
    } else {   // underflow-read: 4000 bytes end on the guard page and start 96 bytes into a page
      char* p = guarded_alloc_site(4000);
      touch_read(p, -97);   // the page below: inaccessible in a guarded slot
      guarded_free_site(p);
    }
  }
  return not_stopped(rounds);
}

// rate 1: every allocation after the thread's first is guarded.
// (The barrier keeps the compiler from eliding the pair.)
void warm_up() {
  void* p = std::malloc(1);
  asm volatile("" : : "r"(p) : "memory");
  std::free(p);
}

int overflow_write() {
  warm_up();
  char* p = guarded_alloc_site(32);
  touch_write(p, 32);
  return not_stopped(1);
}

int double_free() {
  warm_up();
  char* p = guarded_alloc_site(100);
  guarded_free_site(p);
  guarded_free_site(p);
  return not_stopped(1);
}

// Allocated on one thread, freed on another, used on the main thread.
int threads() {
  warm_up();
  char* p = nullptr;
  long allocator = 0, freer = 0;
  std::thread a([&] {
    warm_up();
    p = guarded_alloc_site(80);
    allocator = gettid();
  });
  a.join();
  std::thread b([&] {
    guarded_free_site(p);
    freer = gettid();
  });
  b.join();
  std::printf("expect-threads: detected in T%ld\n", long(gettid()));
  std::printf("expect-threads: allocated by T%ld\n", allocator);
  std::printf("expect-threads: freed by T%ld\n", freer);
  std::fflush(stdout);
  touch_read(p, 0);
  return not_stopped(1);
}

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      std::printf("check failed: %s (line %d)\n", #cond, __LINE__);          \
      std::exit(1);                                                          \
    }                                                                        \
  } while (0)

// The malloc family on guarded blocks (rate 1). A 130-byte block's usable size
// tells a guarded block (144: 130 rounded to 16) from a plain one (160, its class).
int api() {
  warm_up();
  char* g = static_cast<char*>(std::malloc(130));
  CHECK(malloc_usable_size(g) == 144);
  std::free(g);
  for (int round = 0; round < 3000; ++round) {   // past the 1024 slots: some blocks are plain
    std::size_t n = 1 + std::size_t(round * 37) % 9000;
    char* p = static_cast<char*>(std::malloc(n));
    CHECK(p && reinterpret_cast<std::uintptr_t>(p) % 16 == 0 && malloc_usable_size(p) >= n);
    std::memset(p, round & 0xff, n);
    std::size_t m = 1 + std::size_t(round * 53) % 20000;
    char* q = static_cast<char*>(std::realloc(p, m));
    CHECK(q && malloc_usable_size(q) >= m);
    for (std::size_t i = 0; i < (n < m ? n : m); ++i) CHECK(q[i] == char(round & 0xff));
    char* z = static_cast<char*>(std::calloc(n, 3));
    CHECK(z);
    for (std::size_t i = 0; i < n * 3; ++i) CHECK(z[i] == 0);
    std::memset(z, 0xab, n * 3);   // dirty it: the slot's next block must read zeros again
    std::size_t alignment = std::size_t(32) << (round % 8);   // 32 .. 4096
    char* a = static_cast<char*>(std::aligned_alloc(alignment, alignment * 2));
    CHECK(a && reinterpret_cast<std::uintptr_t>(a) % alignment == 0 && malloc_usable_size(a) >= alignment * 2);
    std::memset(a, 1, alignment * 2);
    void* mp = nullptr;
    CHECK(posix_memalign(&mp, 64, n) == 0 && reinterpret_cast<std::uintptr_t>(mp) % 64 == 0);
    auto* object = new std::uint64_t[n / 8 + 1];
    object[n / 8] = 1;
    delete[] object;
    auto* scalar = new std::uint64_t(5);
    ::operator delete(scalar, sizeof(std::uint64_t));
    if (free_sized) free_sized(z, n * 3); else std::free(z);
    std::free(mp);
    std::free(a);
    if (round % 2) std::free(q);
    else CHECK(std::realloc(q, 0) == nullptr);
  }
  std::printf("api ok\n");
  return 0;
}

// A fork child goes on allocating and freeing guarded blocks, and its own use
// after free is reported (by the child) and kills it; the parent goes on.
int fork_case() {
  warm_up();
  std::vector<char*> kept;
  for (int i = 0; i < 100; ++i) kept.push_back(guarded_alloc_site(200));
  pid_t child = fork();
  if (child == 0) {
    for (char* p : kept) guarded_free_site(p);
    for (int i = 0; i < 2000; ++i) guarded_free_site(guarded_alloc_site(std::size_t(1 + i % 5000)));
    std::printf("child allocated\n");
    std::fflush(stdout);
    char* p = guarded_alloc_site(64);
    guarded_free_site(p);
    touch_write(p, 16);
    std::_Exit(0);
  }
  int status = 0;
  CHECK(waitpid(child, &status, 0) == child);
  for (char* p : kept) guarded_free_site(p);
  for (int i = 0; i < 2000; ++i) guarded_free_site(guarded_alloc_site(std::size_t(1 + i % 5000)));
  std::printf("child status: %s %d\n", WIFSIGNALED(status) ? "signal" : "exit",
              WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
  std::printf("parent ok\n");
  return 0;
}

// Many threads allocating and freeing guarded and plain blocks at once.
int stress_threads() {
  std::vector<std::thread> workers;
  for (int t = 0; t < 8; ++t)
    workers.emplace_back([t] {
      std::vector<char*> live;
      for (int i = 0; i < 20000; ++i) {
        std::size_t n = 1 + std::size_t(i * 31 + t) % 3000;
        char* p = static_cast<char*>(std::malloc(n));
        std::memset(p, t, n);
        live.push_back(p);
        if (live.size() > 64) {
          std::size_t k = std::size_t(i * 7) % live.size();
          CHECK(live[k][0] == char(t));   // every block holds at least one byte
          std::free(live[k]);
          live[k] = live.back();
          live.pop_back();
        }
      }
      for (char* p : live) std::free(p);
    });
  for (auto& w : workers) w.join();
  std::printf("threads ok\n");
  return 0;
}

// Which SIGSEGV handler the process has, and that a fault that is not ours
// still ends the process by SIGSEGV.
int handler() {
  struct sigaction current {};
  sigaction(SIGSEGV, nullptr, &current);
  bool installed = (current.sa_flags & SA_SIGINFO) ? current.sa_sigaction != nullptr : current.sa_handler != SIG_DFL;
  std::printf("handler: %s\n", installed ? "installed" : "default");
  std::fflush(stdout);
  touch_write(reinterpret_cast<char*>(std::uintptr_t(4096)), 8);   // not ours
  return not_stopped(1);
}


// A SIGSEGV sent (raise, kill, sigqueue) is not a fault: it must end the
// process as it would without guarded sampling.
int raise_case() {
  warm_up();
  raise(SIGSEGV);
  return not_stopped(1);
}

// While the handler reports a use after free, another thread makes the page
// readable again (as a slot's reuse would): the faulting access must not go on.
// The thread watches the report file (PCMALLOC_CONF report_file) for the report.
int resumed() {
  warm_up();
  char* p = guarded_alloc_site(64);
  guarded_free_site(p);
  const char* path = std::getenv("GUARD_TEST_REPORT");
  std::thread reuser([p, path] {
    char buffer[64];
    for (;;) {
      int fd = open(path, O_RDONLY);
      ssize_t n = fd >= 0 ? read(fd, buffer, sizeof buffer) : 0;
      if (fd >= 0) close(fd);
      if (n > 0) break;
    }
    auto page = reinterpret_cast<std::uintptr_t>(p) & ~std::uintptr_t(4095);
    mprotect(reinterpret_cast<void*>(page), 4096, PROT_READ | PROT_WRITE);
  });
  reuser.detach();
  touch_read(p, 0);
  std::printf("resumed after the report\n");
  return 0;
}

// A block that starts on its slot's first data page (16384 bytes: the whole
// slot; 12288 at 4096: from the second page) read one byte before its start:
// the fault is in the guard page after the previous slot, whose block is live.
int underflow_page(bool aligned) {
  warm_up();
  char* previous = guarded_alloc_site(100);
  char* p = aligned ? static_cast<char*>(std::aligned_alloc(4096, 12288)) : guarded_alloc_site(16384);
  std::printf("blocks %p %p\n", static_cast<void*>(previous), static_cast<void*>(p));
  std::fflush(stdout);
  touch_read(p, -1);
  return not_stopped(1);
}

// realloc of a freed guarded block, the realloc itself sampled (rate 1).
__attribute__((noinline)) char* realloc_site(char* p, std::size_t n) {
  char* q = static_cast<char*>(std::realloc(p, n));
  asm volatile("" ::: "memory");
  return q;
}
int realloc_freed() {
  warm_up();
  char* p = guarded_alloc_site(100);
  guarded_free_site(p);
  realloc_site(p, 200);
  return not_stopped(1);
}

// operator delete(p, n) with n smaller than the plain operator new asked for.
__attribute__((noinline)) void* new_site(std::size_t n) {
  void* p = ::operator new(n);
  asm volatile("" ::: "memory");
  return p;
}
__attribute__((noinline)) void sized_delete_site(void* p, std::size_t n) {
  ::operator delete(p, n);
  asm volatile("" ::: "memory");
}
int sized_delete() {
  warm_up();
  void* p = new_site(130);
  CHECK(malloc_usable_size(p) == 144);   // guarded (a plain block: its class, 160)
  sized_delete_site(p, 100);
  return not_stopped(1);
}

// Which of `count` 130-byte allocations were guarded (usable size 144, not
// the class's 160), as a string of 0 and 1.
std::string guarded_pattern(int count) {
  std::vector<char*> blocks;
  std::string bits;
  for (int i = 0; i < count; ++i) {
    blocks.push_back(static_cast<char*>(std::malloc(130)));
    bits += malloc_usable_size(blocks.back()) == 144 ? '1' : '0';
  }
  for (char* p : blocks) std::free(p);
  return bits;
}

// After fork, parent and child draw their own guarded allocations.
int fork_pattern() {
  guarded_pattern(50);   // the thread's state is seeded and in use
  pid_t child = fork();
  std::string bits = guarded_pattern(400);
  std::printf("%s: %s\n", child == 0 ? "child" : "parent", bits.c_str());
  std::fflush(stdout);
  if (child == 0) std::_Exit(0);
  int status = 0;
  CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status));
  return 0;
}

// How many of `argv` 130-byte allocations were guarded (each freed at once).
int fraction(long count) {
  warm_up();
  long guarded = 0;
  for (long i = 0; i < count; ++i) {
    char* p = static_cast<char*>(std::malloc(130));
    guarded += malloc_usable_size(p) == 144;
    std::free(p);
  }
  std::printf("guarded %ld of %ld\n", guarded, count);
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  std::string what = argc > 1 ? argv[1] : "";
  if (what == "uaf-write" || what == "uaf-read" || what == "overflow-read" || what == "underflow-read") return loop(what);
  if (what == "overflow-write") return overflow_write();
  if (what == "double-free") return double_free();
  if (what == "threads") return threads();
  if (what == "api") return api();
  if (what == "fork") return fork_case();
  if (what == "stress") return stress_threads();
  if (what == "handler") return handler();
  if (what == "raise") return raise_case();
  if (what == "resumed") return resumed();
  if (what == "underflow-page" || what == "underflow-aligned") return underflow_page(what == "underflow-aligned");
  if (what == "realloc-freed") return realloc_freed();
  if (what == "sized-delete") return sized_delete();
  if (what == "fork-pattern") return fork_pattern();
  if (what == "fraction") return fraction(argc > 2 ? std::atol(argv[2]) : 200000);
  std::fprintf(stderr, "usage: guard_cases CASE\n");
  return 2;
}
