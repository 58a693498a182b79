// Out of memory: every entry point fails cleanly while memory is exhausted,
// the heap stays consistent, and allocation recovers when memory comes back.
//
//   oom_test rlimit   the program caps its own address space (RLIMIT_AS, a
//                     little above what it uses), exhausts it, checks, then
//                     frees, purges and finally lifts the cap again
//   oom_test limit    the same under PCMALLOC_CONF=limit_bytes:N (set by the
//                     caller, meson.build): pcmalloc's own cap on bytes mapped
//
// How memory is exhausted: for each probe (entry point, size), the probe is
// called until it fails, keeping every block it got ("fillers"); the next
// calls must fail too, with ENOMEM / std::bad_alloc / nullptr. Exhausting per
// probe matters: a free object cached for one size class may legitimately
// satisfy a request of that class while every other class is out of memory.
// Blocks allocated before ("keepers") carry a pattern checked at every phase.
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <malloc.h>
#include <new>
#include <sys/resource.h>
#include <unistd.h>
#include <vector>

#include <pcmalloc/pcmalloc.h>

namespace {

constexpr std::size_t KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB;
int failures = 0;

#define CHECK(condition)                                                                   \
  do {                                                                                     \
    if (!(condition)) {                                                                    \
      ++failures;                                                                          \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s [%s]\n", __FILE__, __LINE__, #condition, \
                   current_step);                                                          \
    }                                                                                      \
  } while (0)

const char* current_step = "start";
char step_text[160];
void step(const char* format, std::size_t n) {
  std::snprintf(step_text, sizeof step_text, format, n);
  current_step = step_text;
}

template <class T>
[[gnu::always_inline]] inline T opaque(T value) {   // no folding of malloc(SIZE_MAX)
  asm volatile("" : "+r"(value));
  return value;
}

// ---- patterned keepers --------------------------------------------------------------
unsigned char pattern(std::size_t seed, std::size_t i) { return (unsigned char)((seed * 131 + i * 7 + (i >> 12)) ^ (seed >> 3)); }
void fill(void* p, std::size_t n, std::size_t seed) {
  auto* b = static_cast<unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) b[i] = pattern(seed, i);
}
bool intact(const void* p, std::size_t n, std::size_t seed) {
  auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i)
    if (b[i] != pattern(seed, i)) return false;
  return true;
}

struct keeper { void* p; std::size_t size; };
std::vector<keeper> keepers;

void make_keepers() {
  const std::size_t sizes[] = {16, 48, 100, 512, 3000, 20 * KiB, 40 * KiB, 300 * KiB, 1 * MiB + 5, 3 * MiB, 9 * MiB};
  keepers.reserve(4 * std::size(sizes));
  for (int round = 0; round < 4; ++round)
    for (std::size_t n : sizes) {
      void* p = std::malloc(n);
      if (!p) { std::fprintf(stderr, "cannot allocate keepers\n"); std::exit(1); }
      fill(p, n, keepers.size());
      keepers.push_back({p, n});
    }
}

void check_keepers(const char* when) {
  current_step = when;
  for (std::size_t i = 0; i < keepers.size(); ++i) {
    if (!keepers[i].p) continue;
    CHECK(intact(keepers[i].p, keepers[i].size, i));
    CHECK(pcm_owns(keepers[i].p) == 1);
    CHECK(malloc_usable_size(keepers[i].p) >= keepers[i].size);
  }
}

// ---- fillers: blocks taken while exhausting, chained through their first bytes --------
enum class release_by : std::uint32_t { free_, delete_, delete_array, delete_aligned };
struct filler {
  filler* next;
  release_by how;
  std::uint32_t alignment;
};
filler* fillers = nullptr;
std::size_t filler_count = 0, filler_bytes = 0;

void keep_filler(void* p, std::size_t n, release_by how, std::size_t alignment = 0) {
  auto* f = static_cast<filler*>(p);
  f->next = fillers;
  f->how = how;
  f->alignment = std::uint32_t(alignment);
  fillers = f;
  ++filler_count;
  filler_bytes += n;
}

void release_fillers() {
  while (filler* f = fillers) {
    fillers = f->next;
    switch (f->how) {
      case release_by::free_: std::free(f); break;
      case release_by::delete_: ::operator delete(f); break;
      case release_by::delete_array: ::operator delete[](f); break;
      case release_by::delete_aligned: ::operator delete(f, std::align_val_t(f->alignment)); break;
    }
  }
  filler_count = filler_bytes = 0;
}

// Call `attempt` (which returns a block or nullptr) until it fails; keep the
// blocks. Returns false if it never failed within the bound.
template <class Attempt>
bool exhaust(Attempt attempt, std::size_t n, release_by how, std::size_t alignment = 0) {
  for (std::size_t i = 0; i < (std::size_t(64) << 20); ++i) {
    void* p = attempt();
    if (!p) return true;
    keep_filler(p, n, how, alignment);
  }
  return false;
}

// ---- the probes -----------------------------------------------------------------------
// C entry points: exhaust with the call, then three more calls must fail with ENOMEM.
template <class Call>
void probe_c(const char* name, std::size_t n, Call call) {
  char text[96];
  std::snprintf(text, sizeof text, "%s(%%zu) while exhausted", name);
  step(text, n);
  CHECK(exhaust(call, n, release_by::free_));
  for (int i = 0; i < 3; ++i) {
    errno = 0;
    void* p = call();
    CHECK(p == nullptr);
    CHECK(errno == ENOMEM);
    if (p) keep_filler(p, n, release_by::free_);
  }
}

void probe_size(std::size_t n) {
  probe_c("malloc", n, [n] { return std::malloc(opaque(n)); });
  probe_c("calloc", n, [n] { return std::calloc(opaque(n), 1); });
  probe_c("calloc(3, n/3)", n, [n] { return std::calloc(3, opaque(n / 3 + 1)); });
  probe_c("realloc(NULL)", n, [n] { return std::realloc(nullptr, opaque(n)); });
  probe_c("aligned_alloc(64)", n, [n] { return aligned_alloc(64, opaque((n + 63) & ~std::size_t(63))); });
  probe_c("aligned_alloc(4096)", n, [n] { return aligned_alloc(4096, opaque((n + 4095) & ~std::size_t(4095))); });
  probe_c("memalign(256 KiB)", n, [n] { return memalign(256 * KiB, opaque(n)); });

  step("posix_memalign(128, %zu) while exhausted", n);
  int saved_errno = 4321;
  auto attempt_posix = [&] {
    void* p = nullptr;
    errno = saved_errno;
    int error = posix_memalign(&p, 128, opaque(n));
    CHECK(errno == saved_errno);   // posix_memalign reports, never sets errno
    if (error) { CHECK(error == ENOMEM); CHECK(p == nullptr); return static_cast<void*>(nullptr); }
    return p;
  };
  CHECK(exhaust(attempt_posix, n, release_by::free_));
  CHECK(attempt_posix() == nullptr);

  // realloc growing a keeper into this size: NULL, and the keeper is untouched.
  step("realloc(keeper, %zu) while exhausted", n);
  CHECK(exhaust([n] { return std::malloc(opaque(n)); }, n, release_by::free_));
  for (std::size_t i = 0; i < keepers.size(); ++i) {
    if (keepers[i].size >= n) continue;
    errno = 0;
    void* q = std::realloc(keepers[i].p, opaque(n));
    if (q) { keepers[i].p = q; continue; }   // grown in place or into a cached block: allowed
    CHECK(errno == ENOMEM);
    CHECK(intact(keepers[i].p, keepers[i].size, i));
  }

  // C++: throwing forms throw std::bad_alloc, nothrow forms return nullptr.
  step("operator new(%zu) while exhausted", n);
  auto new_nothrow = [n] { return ::operator new(opaque(n), std::nothrow); };
  CHECK(exhaust(new_nothrow, n, release_by::delete_));
  CHECK(new_nothrow() == nullptr);
  bool threw = false;
  try { keep_filler(::operator new(opaque(n)), n, release_by::delete_); } catch (const std::bad_alloc&) { threw = true; }
  CHECK(threw);

  step("operator new[](%zu) while exhausted", n);
  CHECK(exhaust([n] { return ::operator new[](opaque(n), std::nothrow); }, n, release_by::delete_array));
  threw = false;
  try { keep_filler(::operator new[](opaque(n)), n, release_by::delete_array); } catch (const std::bad_alloc&) { threw = true; }
  CHECK(threw);

  step("operator new(%zu, align 512) while exhausted", n);
  CHECK(exhaust([n] { return ::operator new(opaque(n), std::align_val_t(512), std::nothrow); }, n,
                release_by::delete_aligned, 512));
  threw = false;
  try {
    keep_filler(::operator new(opaque(n), std::align_val_t(512)), n, release_by::delete_aligned, 512);
  } catch (const std::bad_alloc&) { threw = true; }
  CHECK(threw);
  CHECK(::operator new(opaque(n), std::align_val_t(512), std::nothrow) == nullptr);
}

// Impossible sizes fail the same way when memory is also exhausted.
void probe_impossible() {
  current_step = "impossible sizes while exhausted";
  for (std::size_t n : {SIZE_MAX, SIZE_MAX / 2, SIZE_MAX - 4095}) {
    errno = 0; CHECK(std::malloc(opaque(n)) == nullptr); CHECK(errno == ENOMEM);
    errno = 0; CHECK(std::calloc(1, opaque(n)) == nullptr); CHECK(errno == ENOMEM);
    errno = 0; CHECK(aligned_alloc(4096, opaque(n & ~std::size_t(4095))) == nullptr); CHECK(errno == ENOMEM);
    CHECK(::operator new(opaque(n), std::nothrow) == nullptr);
    bool threw = false;
    try { ::operator delete(::operator new(opaque(n))); } catch (const std::bad_alloc&) { threw = true; }
    CHECK(threw);
  }
  errno = 0; CHECK(std::calloc(opaque(SIZE_MAX / 2), 3) == nullptr); CHECK(errno == ENOMEM);
  errno = 0; CHECK(reallocarray(nullptr, opaque(SIZE_MAX / 2), 3) == nullptr); CHECK(errno == ENOMEM);
}

// Address space in use now (VmSize), from /proc/self/statm.
std::size_t address_space_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  unsigned long pages = 0;
  if (f) {
    if (std::fscanf(f, "%lu", &pages) != 1) pages = 0;
    std::fclose(f);
  }
  return std::size_t(pages) * std::size_t(sysconf(_SC_PAGESIZE));
}

// Everything the allocator can be asked for, from huge to tiny: big requests
// first, so the small ones see an address space already full.
const std::size_t probe_sizes[] = {1 * GiB, 64 * MiB, 8 * MiB, 2 * MiB, 600 * KiB, 100 * KiB,
                                   32 * KiB, 5000, 1000, 200, 64, 16};

// One block of each size can be had and used (then freed); false at the first failure.
bool allocate_each(const std::size_t* sizes, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    void* p = std::malloc(sizes[i]);
    if (!p) return false;
    std::memset(p, 0x5a, sizes[i] < 64 * KiB ? sizes[i] : 64 * KiB);
    std::free(p);
  }
  return true;
}

void run_exhausted_phase() {
  for (std::size_t n : probe_sizes) probe_size(n);
  probe_impossible();
  std::printf("exhausted: %zu filler blocks, %.1f MiB; every probe failed cleanly\n", filler_count,
              double(filler_bytes) / double(MiB));
  check_keepers("keepers while exhausted");
  // Frees work without memory: give back a quarter of the keepers, and a
  // realloc shrinking a keeper keeps its prefix.
  current_step = "frees and shrinking reallocs while exhausted";
  for (std::size_t i = 0; i < keepers.size(); i += 4) { std::free(keepers[i].p); keepers[i].p = nullptr; }
  for (std::size_t i = 1; i < keepers.size(); i += 4) {
    std::size_t half = keepers[i].size / 2 ? keepers[i].size / 2 : 1;
    void* q = std::realloc(keepers[i].p, half);
    if (!q) continue;   // moving to a smaller class may need memory: allowed to fail
    keepers[i].p = q;
    keepers[i].size = half;
    CHECK(intact(q, half, i));
  }
  check_keepers("keepers after frees while exhausted");
}

// Memory comes back in three steps: freeing (small and large blocks reuse the
// freed pages at once; huge blocks were unmapped), purging (empty chunks are
// unmapped), and for rlimit, lifting the cap.
void run_recovery_phase(bool huge_needs_more) {
  release_fillers();
  current_step = "small and large requests after freeing the fillers";
  const std::size_t reusable[] = {16, 64, 200, 1000, 5000, 32 * KiB, 100 * KiB, 600 * KiB};
  CHECK(allocate_each(reusable, std::size(reusable)));
  const std::size_t huge[] = {8 * MiB, 64 * MiB};
  bool huge_before_purge = allocate_each(huge, std::size(huge));
  pcm_purge();
  current_step = "huge requests after freeing the fillers and pcm_purge";
  CHECK(allocate_each(huge, std::size(huge)));
  std::printf("recovered: small and large at once, 8 and 64 MiB %s\n",
              huge_before_purge ? "at once too" : "after pcm_purge");
  current_step = "1 GiB while still limited";
  if (huge_needs_more) {
    errno = 0;
    CHECK(std::malloc(opaque(1 * GiB)) == nullptr);
    CHECK(errno == ENOMEM);
  }
  check_keepers("keepers after recovery");
}

// A huge block grown by realloc moves to a new place far below the others,
// whose page-map leaf (a 32 MiB reservation) may not fit under the cap. The
// realloc may fail (NULL, old block intact) or succeed, but the block it
// returns must still be ours: freeable, its contents kept.
void huge_realloc_into_a_new_leaf() {
  current_step = "realloc of a huge block to 20 GiB with no room for a page-map leaf";
  const std::size_t old_size = 8 * MiB + 100, new_size = 20 * GiB;
  void* p = std::malloc(old_size);
  CHECK(p != nullptr);
  if (!p) return;
  fill(p, 64 * KiB, 77);
  rlimit original;
  getrlimit(RLIMIT_AS, &original);
  rlimit capped = original;
  capped.rlim_cur = address_space_bytes() + new_size + 4 * MiB;
  if (original.rlim_cur != RLIM_INFINITY && original.rlim_cur < capped.rlim_cur) {
    std::free(p);
    return;
  }
  setrlimit(RLIMIT_AS, &capped);
  errno = 0;
  void* q = std::realloc(p, new_size);
  setrlimit(RLIMIT_AS, &original);
  if (q) {
    CHECK(pcm_owns(q) == 1);
    CHECK(intact(q, 64 * KiB, 77));
    if (pcm_owns(q) == 1) std::free(q);
  } else {
    CHECK(errno == ENOMEM);
    CHECK(pcm_owns(p) == 1);
    CHECK(intact(p, 64 * KiB, 77));
    std::free(p);
  }
  std::printf("realloc 8 MiB -> 20 GiB with no room for a page-map leaf: %s\n",
              !q ? "NULL, old block kept" : pcm_owns(q) == 1 ? "moved, still ours" : "moved, LOST from the page map");
}

int run_rlimit() {
  huge_realloc_into_a_new_leaf();
  make_keepers();
  check_keepers("keepers before the cap");
  rlimit original;
  if (getrlimit(RLIMIT_AS, &original) != 0) { std::perror("getrlimit"); return 1; }
  rlimit capped = original;
  capped.rlim_cur = address_space_bytes() + 96 * MiB;
  if (original.rlim_cur != RLIM_INFINITY && original.rlim_cur < capped.rlim_cur) {
    std::printf("RLIMIT_AS already below what this test needs; skipped\n");
    return 77;
  }
  if (setrlimit(RLIMIT_AS, &capped) != 0) { std::perror("setrlimit"); return 1; }
  std::printf("RLIMIT_AS capped at %.0f MiB (in use: %.0f MiB)\n", double(capped.rlim_cur) / double(MiB),
              double(address_space_bytes()) / double(MiB));
  run_exhausted_phase();
  run_recovery_phase(true);
  if (setrlimit(RLIMIT_AS, &original) != 0) { std::perror("setrlimit"); return 1; }
  current_step = "1 GiB after lifting the cap";
  void* big = std::malloc(opaque(1 * GiB));
  CHECK(big != nullptr);
  if (big) {
    for (std::size_t i = 0; i < GiB; i += 64 * MiB) static_cast<char*>(big)[i] = 1;
    std::free(big);
  }
  check_keepers("keepers at the end");
  for (keeper& k : keepers) std::free(k.p);
  return 0;
}

// limit_bytes counts chunks while they are mapped: small blocks freed go back
// to their chunks, which stay mapped (and counted) until a purge unmaps the
// wholly free ones. With decay_ms long, nothing purges behind the test's back.
void freed_chunks_count_until_purged() {
  current_step = "limit_bytes: chunks freed by small blocks count until pcm_purge";
  CHECK(exhaust([] { return std::malloc(opaque(std::size_t(1000))); }, 1000, release_by::free_));
  const std::size_t count = filler_count;
  release_fillers();
  errno = 0;
  void* p = std::malloc(opaque(64 * MiB));
  CHECK(p == nullptr);   // the chunks are free but still mapped
  CHECK(errno == ENOMEM);
  std::free(p);
  pcm_purge();
  p = std::malloc(opaque(64 * MiB));
  CHECK(p != nullptr);   // unmapped by the purge
  std::free(p);
  std::printf("limit_bytes: %zu blocks of 1000 B freed; 64 MiB failed until pcm_purge, then succeeded\n", count);
}

int run_limit() {
  const char* conf = std::getenv("PCMALLOC_CONF");
  if (!conf || !std::strstr(conf, "limit_bytes:")) {
    std::fprintf(stderr, "oom_test limit: set PCMALLOC_CONF=limit_bytes:N\n");
    return 1;
  }
  make_keepers();
  check_keepers("keepers under the limit");
  std::printf("PCMALLOC_CONF=%s\n", conf);
  if (std::strstr(conf, "decay_ms:60000")) freed_chunks_count_until_purged();
  run_exhausted_phase();
  run_recovery_phase(true);
  check_keepers("keepers at the end");
  for (keeper& k : keepers) std::free(k.p);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::printf("oom_test: cache mode %s\n", pcm_cache_mode());   // stdio's buffers exist before the cap
  int status;
  if (argc == 2 && !std::strcmp(argv[1], "rlimit")) status = run_rlimit();
  else if (argc == 2 && !std::strcmp(argv[1], "limit")) status = run_limit();
  else { std::fprintf(stderr, "usage: oom_test rlimit|limit\n"); return 2; }
  if (status != 0) return status;
  std::printf("oom_test: %d check(s) failed\n", failures);
  return failures ? 1 : 0;
}
