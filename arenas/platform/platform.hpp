// Platform layer: the only door to the operating system. Everything above asks
// these functions for address space, pages, time, futexes and the rseq area;
// nothing above this file calls mmap, madvise, munmap, mprotect or syscall.
// Stateless except for cached constants, so safe from any thread at any time.
#pragma once
#include <cstddef>
#include <cstdint>

namespace pcm::os {

inline constexpr std::size_t page_size = 4096;   // checked against the kernel at init
inline constexpr unsigned page_shift = 12;
// n rounded up to whole pages (wraps to a small number past SIZE_MAX - 4095:
// callers that take sizes from users compare the result with n).
constexpr std::size_t round_to_pages(std::size_t n) noexcept { return (n + page_size - 1) & ~(page_size - 1); }
constexpr std::uintptr_t page_start(std::uintptr_t address) noexcept { return address & ~std::uintptr_t(page_size - 1); }

// Reserve and commit `size` bytes aligned to `alignment` (a power of two >= page).
// Returns nullptr (errno ENOMEM) when the kernel refuses, or when the mapping
// would take the bytes mapped past the limit (set_map_limit).
void* map(std::size_t size, std::size_t alignment = page_size) noexcept;
// Reserve address space with no commit charge (for sparse tables); exempt from
// the limit, and given back with release_sparse, never unmap.
void* reserve_sparse(std::size_t size) noexcept;
void release_sparse(void* p, std::size_t size) noexcept;
void unmap(void* p, std::size_t size) noexcept;
// The hard limit (PCMALLOC_CONF limit_bytes): bytes mapped by map() and remap()
// and not yet unmapped may not exceed it; 0 means no limit. Purged pages stay
// mapped and still count; only unmapping lowers the count.
void set_map_limit(std::uint64_t bytes) noexcept;
std::uint64_t mapped_bytes() noexcept;
// Give the pages' physical memory back; the range stays mapped and reads as zero.
void purge(void* p, std::size_t size) noexcept;
// Grow or shrink a mapping, moving it if needed (huge blocks). Growth counts
// against the limit; on failure the old mapping is untouched.
void* remap(void* p, std::size_t old_size, std::size_t new_size) noexcept;
// Move the pages of [from, from + from_size) into `to`, a mapping of `to_size`
// bytes from map() that they replace (no copy; to_size may be larger). On
// success `from` is unmapped; on failure `to` must still be given to unmap().
bool move_mapping(void* from, std::size_t from_size, void* to, std::size_t to_size) noexcept;
// Make a range inaccessible / accessible again (guard pages).
bool protect_none(void* p, std::size_t size) noexcept;
bool protect_read_write(void* p, std::size_t size) noexcept;
void hint_huge_pages(void* p, std::size_t size, bool want) noexcept;

// Map a whole file read-only (symbol tables for debug reports); nullptr on failure.
const void* map_file(const char* path, std::size_t* size) noexcept;
void unmap_file(const void* p, std::size_t size) noexcept;

// Run a program and capture its standard output (at most size - 1 bytes, NUL
// terminated), without touching the heap and without fork handlers: usable
// from a crash report. envp: the child's environment. Returns bytes read, or -1.
long run_capture(const char* const argv[], const char* const envp[], char* out, std::size_t size) noexcept;

std::size_t kernel_page_size() noexcept;
unsigned cpu_count() noexcept;            // CPUs configured (sizes the arena table)
// Every CPU id is below this: sysfs's possible range, or max_cpu_ids when it
// cannot be read (then cpu_count() counts the affinity mask, whose ids may be
// higher, e.g. a process started on CPU 1 only). What arrays indexed by CPU id
// are sized by.
inline constexpr unsigned max_cpu_ids = 1024;
unsigned cpu_id_limit() noexcept;
unsigned current_cpu() noexcept;          // getcpu(); 0 when unknown
std::uint64_t now_ms() noexcept;          // coarse monotonic clock
// 64 bits from the kernel's random pool (getrandom), or from the clock and the
// address space layout when that fails: secrets that need not be perfect.
std::uint64_t random_word() noexcept;
std::uint64_t resident_bytes() noexcept;  // this process's RSS from /proc/self/statm

void futex_wait(std::uint32_t* word, std::uint32_t expected) noexcept;
void futex_wake(std::uint32_t* word, int count) noexcept;
void yield_cpu() noexcept;
// Which CPUs the calling thread may run on (ids below max_cpu_ids), saved and restored
// around a visit to every CPU: draining per-CPU caches must run on each CPU.
struct cpu_mask { unsigned long bits[max_cpu_ids / (8 * sizeof(unsigned long))]; };
bool thread_cpus(cpu_mask& out) noexcept;
bool move_thread_to(unsigned cpu) noexcept;          // pin the calling thread to one CPU
void set_thread_cpus(const cpu_mask& mask) noexcept;
long thread_id() noexcept;

// Raw writes that never allocate: reporting must work with a broken heap.
// write_all retries short writes and EINTR; false (errno set) on an error.
bool write_all(int fd, const void* data, std::size_t length) noexcept;
void write_error(const char* text, std::size_t length) noexcept;   // to fd 2

// A descriptor for the library's own output (reports, statistics at exit),
// taken at start-up: programs close stderr before their exit, and daemons
// close every descriptor above 2 and open files of their own, which can take
// its number. keep() duplicates fd 2, or opens `path` for appending when one is
// given (failing that, duplicates fd 2); fd() checks before each use that the
// descriptor is still that file (device and inode), else gives fd 2 if fd 2 is
// still the stderr of start-up, else -1: nothing is written rather than
// written into a file of the program's.
// Synchronisation: keep() before other threads use it (start-up, or under
// the caller's lock); fd() from any thread.
class kept_output {
 public:
  void keep(const char* path = nullptr) noexcept;
  bool kept() const noexcept { return kept_; }
  int fd() noexcept;

 private:
  struct identity { std::uint64_t device = 0, inode = 0; bool valid = false; };
  static identity identify(int fd) noexcept;
  bool kept_ = false;
  int fd_ = -1;                // written by keep(), then only read
  identity file_, stderr_;     // what fd_ and fd 2 were when kept
};
[[noreturn]] void abort_process() noexcept;

// glibc >= 2.35 registers an rseq area for every thread; we share it rather than
// registering our own (a second registration fails and would silently cost the
// per-CPU caches). Returns the area's offset from the thread pointer, or
// nullopt-like false when glibc did not register one (old glibc, old kernel,
// GLIBC_TUNABLES=glibc.pthread.rseq=0).
bool rseq_available(std::ptrdiff_t* offset) noexcept;
inline constexpr std::uint32_t rseq_signature = 0x53053053;  // x86-64 RSEQ_SIG, as glibc's

}  // namespace pcm::os
