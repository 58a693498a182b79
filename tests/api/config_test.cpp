// Configuration: which cache the allocator chose (per-CPU through glibc's rseq
// area, or per-thread) must follow the environment, and unknown or malformed
// PCMALLOC_CONF entries are reported by name. Children re-run this binary
// (main.cpp's --child=report-config) to start with a fresh environment.
#include <cstdlib>
#include <cstring>
#include <sys/rseq.h>
#include <sys/wait.h>

#include <doctest/doctest.h>

#include "support.hpp"

using namespace api_test;

namespace {
const std::string per_cpu = "per-cpu (rseq)", per_thread = "per-thread";

// True when this PCMALLOC_CONF turns per-CPU caches off (the last percpu key wins).
bool conf_disables_percpu(const char* conf) {
  bool disabled = false;
  for (const char* s = conf; s && (s = std::strstr(s, "percpu:")); s += 7) {
    if (s != conf && s[-1] != ',') continue;
    const char* value = s + 7;
    std::size_t length = std::strcspn(value, ",");
    if ((length == 5 && !std::strncmp(value, "false", 5)) || (length == 1 && *value == '0')) disabled = true;
    if ((length == 4 && !std::strncmp(value, "true", 4)) || (length == 1 && *value == '1')) disabled = false;
  }
  return disabled;
}

bool tunables_disable_rseq(const char* tunables) {
  return tunables && std::strstr(tunables, "glibc.pthread.rseq=0");
}

// glibc >= 2.35 publishes the size of the rseq area it registered; 0 when it did not.
bool glibc_registered_rseq() { return __rseq_size >= 20; }

struct child_config {
  std::string mode;
  unsigned arenas = 0;
  std::string err;
};

child_config run_child(const std::vector<std::string>& env) {
  spawn_result r = spawn_self("--child=report-config", env);
  CAPTURE(r.err);
  CHECK(WIFEXITED(r.wait_status));
  CHECK(WEXITSTATUS(r.wait_status) == 0);
  child_config c;
  c.err = r.err;
  std::size_t newline = r.out.find('\n');
  REQUIRE(newline != std::string::npos);
  c.mode = r.out.substr(0, newline);
  c.arenas = unsigned(std::strtoul(r.out.c_str() + newline + 1, nullptr, 10));
  return c;
}
}  // namespace

TEST_CASE("pcm_cache_mode follows this process's environment") {
  const char* conf = std::getenv("PCMALLOC_CONF");
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  CAPTURE(conf ? conf : "(unset)");
  CAPTURE(tunables ? tunables : "(unset)");
  CAPTURE(__rseq_size);
  if (conf_disables_percpu(conf) || tunables_disable_rseq(tunables)) {
    CHECK(std::string(pcm_cache_mode()) == per_thread);
  } else {
    // glibc 2.36 on a kernel with rseq registers it for every thread.
    CHECK(glibc_registered_rseq());
    CHECK(std::string(pcm_cache_mode()) == per_cpu);
  }
}

TEST_CASE("pcm_cache_mode in fresh processes") {
  // Children start without PCMALLOC_CONF and GLIBC_TUNABLES: by default, per-CPU.
  child_config c = run_child({});
  CHECK(c.mode == per_cpu);
  CHECK(c.err.empty());
  c = run_child({"PCMALLOC_CONF=percpu:false"});
  CHECK(c.mode == per_thread);
  CHECK(c.err.empty());
  c = run_child({"PCMALLOC_CONF=percpu:0"});
  CHECK(c.mode == per_thread);
  c = run_child({"GLIBC_TUNABLES=glibc.pthread.rseq=0"});
  CHECK(c.mode == per_thread);
  CHECK(c.err.empty());
}

TEST_CASE("PCMALLOC_CONF: unknown keys and bad values are reported by name and ignored") {
  child_config c = run_child({"PCMALLOC_CONF=bogus_key:1"});
  CAPTURE(c.err);
  CHECK(c.err.find("pcmalloc") != std::string::npos);
  CHECK(c.err.find("bogus_key") != std::string::npos);
  CHECK(c.mode == per_cpu);   // nothing else changed

  c = run_child({"PCMALLOC_CONF=arenas:3,another_unknown:x,percpu:false"});
  CAPTURE(c.err);
  CHECK(c.err.find("another_unknown") != std::string::npos);
  CHECK(c.arenas == 3);   // the keys around it still apply
  CHECK(c.mode == per_thread);

  c = run_child({"PCMALLOC_CONF=percpu:maybe"});
  CAPTURE(c.err);
  CHECK(c.err.find("percpu") != std::string::npos);
  CHECK(c.err.find("maybe") != std::string::npos);
}

TEST_CASE("PCMALLOC_CONF: valid keys apply without a word") {
  child_config c = run_child({"PCMALLOC_CONF=arenas:2,decay_ms:100,cache_max_objects:32,huge_pages:false"});
  CHECK(c.err.empty());
  CHECK(c.arenas == 2);
}
