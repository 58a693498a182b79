// Tunables, read once from PCMALLOC_CONF ("key:value,key:value", jemalloc style)
// at initialisation, before any other thread can allocate. Read-only after.
// The parser lives in the core because the core needs its values before any
// front end runs; it touches no heap memory (getenv and raw writes only).
#pragma once
#include <cstddef>
#include <cstdint>

namespace pcm {

struct options {
  unsigned arenas = 0;                    // 0: four per CPU
  bool percpu = true;                     // per-CPU rseq caches when glibc provides rseq
  std::uint32_t cache_class_bytes = 64 * 1024;  // per CPU/thread and class
  std::uint32_t cache_max_objects = 256;  // per CPU/thread and class
  std::uint64_t decay_ms = 500;           // dirty pages live this long before purging
  bool huge_pages = false;                // MADV_HUGEPAGE on arena chunks
  bool stats_print = false;               // print statistics at exit
  bool stats_json = false;                // ... as JSON
  std::uint64_t limit_bytes = 0;          // hard cap on bytes mapped (os::set_map_limit); 0: none
  // Release library, hardened mode (hardened.hpp): canaries on every block,
  // freed small blocks zeroed and checked, their reuse delayed.
  bool hardened = false;
  std::uint32_t hardened_delay = 64;      // freed small blocks held per thread before reuse (max 64)
  bool hardened_zero = true;              // zero freed small blocks; check they stay zero

  // Heap profiling (release library; src/profile).
  bool profile = false;                   // sample allocations, write profiles at exit
  std::uint64_t profile_rate = 512 * 1024;   // mean bytes between samples (exponential)
  char profile_file[256] = {};            // prefix of the exit profiles (default "pcmalloc-profile")
  std::uint32_t profile_signal = 0;       // dump the profiles on this signal (0: none)
  bool profile_symbols = true;            // file:line through addr2line in dumps (false: ELF symbols only)
  // Guarded sampling (release library; src/guard): about one allocation in
  // this many on its own pages between guard pages (0: off). README: the default.
  std::uint64_t guard_sample_rate = 0;

  // Debug library only (libpcmalloc-debug.so); ignored by the release library.
  bool guard = false;                     // every block on its own pages between guard pages
  std::uint64_t quarantine_bytes = 64ull << 20;   // freed blocks held back, poisoned
  bool abort_on_error = true;             // stop at the first report (README: why)
  std::uint32_t error_exit_code = 23;     // exit status when errors were reported
  bool leaks = true;                      // scan at exit: a summary line; given as leaks:true, every leak's report
  bool report_json = false;               // reports as JSON lines instead of text
  std::uint32_t stack_depth = 16;         // frames kept per allocation and free
  char report_file[256] = {};             // reports go here (appended) instead of stderr
  std::uint64_t given = 0;                // bit i: the i-th key (options.cpp) was set by the text parsed
};

extern options config;

// Parse `text` into `out`; unknown keys and bad values are reported on stderr
// (naming the key) and ignored. Returns the number of problems found.
unsigned parse_options(const char* text, options& out) noexcept;
// Whether PCMALLOC_CONF set `key` (a default and an explicit equal value differ
// where the meaning does: leaks).
bool option_given(const options& o, const char* key) noexcept;
void load_options_from_environment() noexcept;

}  // namespace pcm
