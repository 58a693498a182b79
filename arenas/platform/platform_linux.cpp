// Linux implementation of the platform layer (x86-64 and other 64-bit targets).
#include "platform.hpp"

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <csignal>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

extern "C" {
// Weak: absent on glibc < 2.35, where we fall back to per-thread caches.
extern const std::ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));
}

namespace pcm::os {

namespace {
// The hard limit's books: bytes mapped through map()/remap() and not unmapped.
// A reservation is made before the mmap and dropped if it fails, so concurrent
// mappings can never take the total past the limit together.
std::atomic<std::uint64_t> limit_bytes{0}, mapped_total{0};

bool reserve_bytes(std::size_t size) noexcept {
  const std::uint64_t limit = limit_bytes.load(std::memory_order_relaxed);
  std::uint64_t now = mapped_total.load(std::memory_order_relaxed);
  do {
    if (limit && (size > limit || now > limit - size)) { errno = ENOMEM; return false; }
  } while (!mapped_total.compare_exchange_weak(now, now + size, std::memory_order_relaxed));
  return true;
}
void unreserve_bytes(std::size_t size) noexcept { mapped_total.fetch_sub(size, std::memory_order_relaxed); }

void* map_unchecked(std::size_t size, std::size_t alignment) noexcept;
}  // namespace

void set_map_limit(std::uint64_t bytes) noexcept { limit_bytes.store(bytes, std::memory_order_relaxed); }
std::uint64_t mapped_bytes() noexcept { return mapped_total.load(std::memory_order_relaxed); }

void* map(std::size_t size, std::size_t alignment) noexcept {
  if (!reserve_bytes(size)) return nullptr;
  void* p = map_unchecked(size, alignment);
  if (!p) {
    int saved = errno;
    unreserve_bytes(size);
    errno = saved;
  }
  return p;
}

namespace {
void* map_unchecked(std::size_t size, std::size_t alignment) noexcept {
  const int prot = PROT_READ | PROT_WRITE;
  const int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
  if (alignment <= page_size) {
    void* p = mmap(nullptr, size, prot, flags, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  }
  // Over-reserve, then trim both ends to the alignment.
  std::size_t padded = size + alignment - page_size;
  if (padded < size) { errno = ENOMEM; return nullptr; }
  void* raw = mmap(nullptr, padded, prot, flags, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  auto start = reinterpret_cast<std::uintptr_t>(raw);
  auto aligned = (start + alignment - 1) & ~(alignment - 1);
  if (aligned > start) munmap(raw, aligned - start);
  std::size_t tail = (start + padded) - (aligned + size);
  if (tail) munmap(reinterpret_cast<void*>(aligned + size), tail);
  return reinterpret_cast<void*>(aligned);
}
}  // namespace

void* reserve_sparse(std::size_t size) noexcept {
  // Readable zero pages until written: lookups of unused entries cost nothing.
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

void release_sparse(void* p, std::size_t size) noexcept { munmap(p, size); }

void unmap(void* p, std::size_t size) noexcept {
  if (munmap(p, size) == 0) unreserve_bytes(size);
}

void purge(void* p, std::size_t size) noexcept {
  // DONTNEED rather than FREE: RSS drops at once, which users and tests can see.
  madvise(p, size, MADV_DONTNEED);
}

void* remap(void* p, std::size_t old_size, std::size_t new_size) noexcept {
  if (new_size > old_size && !reserve_bytes(new_size - old_size)) return nullptr;
  void* q = mremap(p, old_size, new_size, MREMAP_MAYMOVE);
  if (q == MAP_FAILED) {
    int saved = errno;
    if (new_size > old_size) unreserve_bytes(new_size - old_size);
    errno = saved;
    return nullptr;
  }
  if (new_size < old_size) unreserve_bytes(old_size - new_size);
  return q;
}

bool move_mapping(void* from, std::size_t from_size, void* to, std::size_t to_size) noexcept {
  void* q = mremap(from, from_size, to_size, MREMAP_MAYMOVE | MREMAP_FIXED, to);
  if (q == MAP_FAILED) return false;
  unreserve_bytes(from_size);   // `to` was counted when it was mapped
  return true;
}

bool protect_none(void* p, std::size_t size) noexcept {
  return mprotect(p, size, PROT_NONE) == 0;
}
bool protect_read_write(void* p, std::size_t size) noexcept {
  return mprotect(p, size, PROT_READ | PROT_WRITE) == 0;
}

void hint_huge_pages(void* p, std::size_t size, bool want) noexcept {
  madvise(p, size, want ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
}

const void* map_file(const char* path, std::size_t* size) noexcept {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  struct stat info;
  void* p = MAP_FAILED;
  if (fstat(fd, &info) == 0 && info.st_size > 0) {
    *size = std::size_t(info.st_size);
    p = mmap(nullptr, *size, PROT_READ, MAP_PRIVATE, fd, 0);
  }
  close(fd);
  return p == MAP_FAILED ? nullptr : p;
}

void unmap_file(const void* p, std::size_t size) noexcept { munmap(const_cast<void*>(p), size); }

long run_capture(const char* const argv[], const char* const envp[], char* out, std::size_t size) noexcept {
  int fds[2];
  if (size == 0 || pipe2(fds, O_CLOEXEC) != 0) return -1;
  // A raw fork: no atfork handlers (ours would take allocator locks that the
  // reporting thread may hold).
  long pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
  if (pid < 0) { close(fds[0]); close(fds[1]); return -1; }
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, STDERR_FILENO);
    execve(argv[0], const_cast<char* const*>(argv), const_cast<char* const*>(envp));
    _exit(127);
  }
  close(fds[1]);
  std::size_t used = 0;
  while (used + 1 < size) {
    ssize_t n = read(fds[0], out + used, size - 1 - used);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    used += std::size_t(n);
  }
  out[used] = 0;
  char discard[512];   // drain the rest so the child never blocks on a full pipe
  for (;;) {
    ssize_t n = read(fds[0], discard, sizeof discard);
    if (n > 0 || (n < 0 && errno == EINTR)) continue;
    break;
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid_t(pid), &status, 0) < 0 && errno == EINTR) {}
  return long(used);
}

std::size_t kernel_page_size() noexcept { return static_cast<std::size_t>(sysconf(_SC_PAGESIZE)); }

// A small file of the kernel's into buffer, NUL-terminated, with raw reads
// (no stdio: it may allocate, and this may run inside the first malloc).
// False when it cannot be read or is empty.
static bool read_small_file(const char* path, char* buffer, std::size_t size) noexcept {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = read(fd, buffer, size - 1);
  close(fd);
  if (n <= 0) return false;
  buffer[n] = 0;
  return true;
}

// Parsed from sysfs: glibc's get_nprocs_conf() opens a directory stream,
// which calls malloc, which may be us, still initialising.
// The highest possible CPU id + 1 from sysfs, or 0 when it cannot be read.
static unsigned read_possible_cpus() noexcept {
  char buffer[256];
  if (!read_small_file("/sys/devices/system/cpu/possible", buffer, sizeof buffer)) return 0;
  unsigned highest = 0, value = 0;
  for (const char* s = buffer; *s; ++s) {   // "0-15" or "0,2-5": the last number is the highest id
    if (*s >= '0' && *s <= '9') value = value * 10 + unsigned(*s - '0');
    else { highest = value > highest ? value : highest; value = 0; }
  }
  highest = value > highest ? value : highest;
  return highest + 1;
}

// sysfs's possible CPU range, read once (0: unreadable).
static unsigned possible_cpus() noexcept {
  static std::atomic<unsigned> cached{~0u};
  unsigned n = cached.load(std::memory_order_relaxed);
  if (n == ~0u) {
    n = read_possible_cpus();
    cached.store(n, std::memory_order_relaxed);
  }
  return n;
}

unsigned cpu_count() noexcept {
  if (unsigned possible = possible_cpus()) return possible;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return unsigned(CPU_COUNT(&set));
  return 1;
}

unsigned cpu_id_limit() noexcept {
  unsigned n = possible_cpus();
  return n && n < max_cpu_ids ? n : max_cpu_ids;
}

unsigned current_cpu() noexcept {
  int cpu = sched_getcpu();
  return cpu < 0 ? 0u : unsigned(cpu);
}

std::uint64_t now_ms() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1000000u;
}

std::uint64_t random_word() noexcept {
  std::uint64_t word = 0;
  // GRND_NONBLOCK: early in boot the pool may not be ready; never wait for it.
  if (getrandom(&word, sizeof word, GRND_NONBLOCK) == sizeof word && word != 0) return word;
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  word = static_cast<std::uint64_t>(ts.tv_nsec) * 0x9e3779b97f4a7c15u ^ reinterpret_cast<std::uintptr_t>(&ts) ^
         (reinterpret_cast<std::uintptr_t>(&random_word) << 16);
  return word | 1;
}

std::uint64_t resident_bytes() noexcept {
  char buffer[128];
  if (!read_small_file("/proc/self/statm", buffer, sizeof buffer)) return 0;
  const char* s = buffer;
  while (*s && *s != ' ') ++s;  // skip total size, RSS is the second field
  std::uint64_t pages = 0;
  while (*s == ' ') ++s;
  while (*s >= '0' && *s <= '9') pages = pages * 10 + static_cast<std::uint64_t>(*s++ - '0');
  return pages * kernel_page_size();
}

void futex_wait(std::uint32_t* word, std::uint32_t expected) noexcept {
  syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}
void futex_wake(std::uint32_t* word, int count) noexcept {
  syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, count, nullptr, nullptr, 0);
}

static_assert(sizeof(cpu_mask) == sizeof(cpu_set_t));
bool thread_cpus(cpu_mask& out) noexcept {
  return sched_getaffinity(0, sizeof out, reinterpret_cast<cpu_set_t*>(&out)) == 0;
}
bool move_thread_to(unsigned cpu) noexcept {
  if (cpu >= CPU_SETSIZE) return false;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  return sched_setaffinity(0, sizeof one, &one) == 0;   // returns once we run there
}
void set_thread_cpus(const cpu_mask& mask) noexcept {
  sched_setaffinity(0, sizeof mask, reinterpret_cast<const cpu_set_t*>(&mask));
}
long thread_id() noexcept { return syscall(SYS_gettid); }
void yield_cpu() noexcept { sched_yield(); }

bool write_all(int fd, const void* data, std::size_t length) noexcept {
  const char* text = static_cast<const char*>(data);
  while (length > 0) {
    ssize_t n = write(fd, text, length);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) { if (n == 0) errno = EIO; return false; }
    text += n;
    length -= static_cast<std::size_t>(n);
  }
  return true;
}

void write_error(const char* text, std::size_t length) noexcept { write_all(STDERR_FILENO, text, length); }

kept_output::identity kept_output::identify(int fd) noexcept {
  struct stat st {};
  if (fd < 0 || fstat(fd, &st) != 0) return {};
  return {std::uint64_t(st.st_dev), std::uint64_t(st.st_ino), true};
}

void kept_output::keep(const char* path) noexcept {
  int fd = -1;
  if (path && path[0]) fd = ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);   // -1 when fd 2 is closed
  fd_ = fd;
  file_ = identify(fd);
  stderr_ = identify(STDERR_FILENO);
  kept_ = true;
}

int kept_output::fd() noexcept {
  auto same = [](identity a, identity b) { return a.valid && b.valid && a.device == b.device && a.inode == b.inode; };
  if (same(identify(fd_), file_)) return fd_;
  // Closed, or its number reused by the program: fd 2, if it is still ours.
  return same(identify(STDERR_FILENO), stderr_) ? STDERR_FILENO : -1;
}

void abort_process() noexcept { ::abort(); }

bool rseq_available(std::ptrdiff_t* offset) noexcept {
  if (&__rseq_size == nullptr || &__rseq_offset == nullptr) return false;
  if (__rseq_size < 20) return false;  // 0 when glibc's registration is off or failed
  *offset = __rseq_offset;
  return true;
}

}  // namespace pcm::os
