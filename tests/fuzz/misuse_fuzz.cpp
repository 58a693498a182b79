// libFuzzer target: valid operations interleaved with one misuse that the
// release library must stop (README, "Hardening"). Each input runs in a
// forked child: its bytes decode into up to 64 operations on the prefixed API
// (malloc, calloc, realloc, aligned_alloc and free, sizes from 0 to 8 MiB
// that cover slab objects, page runs and mappings of their own), then one
// misuse of a live block: a double free, or a free of the block's address
// plus 8 (inside it, and off every object start). The parent requires the
// child to die of SIGABRT after one "pcmalloc: error:" line naming the
// misuse; anything else (it went on, died otherwise, said something else)
// is a crash of this target.
#include <fuzzer/FuzzedDataProvider.h>
#include <pcmalloc/pcmalloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <string>

namespace {

constexpr unsigned max_live = 32, max_operations = 64;

std::size_t pick_size(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 9)) {
    case 0: return in.ConsumeIntegralInRange<std::size_t>(0, 16);
    case 1: return in.ConsumeIntegralInRange<std::size_t>(32 * 1024, 2 * 1024 * 1024);   // page runs
    case 2: return in.ConsumeIntegralInRange<std::size_t>(2 * 1024 * 1024 + 1, 8 * 1024 * 1024);   // own mappings
    default: return in.ConsumeIntegralInRange<std::size_t>(1, 32 * 1024);   // slab objects
  }
}

[[noreturn]] void child(FuzzedDataProvider& in) {
  void* live[max_live] = {};
  unsigned count = 0;
  for (unsigned op = 0; op < max_operations && in.remaining_bytes() > 1; ++op) {
    unsigned slot = in.ConsumeIntegralInRange<unsigned>(0, max_live - 1);
    switch (in.ConsumeIntegralInRange<int>(0, 4)) {
      case 0: case 1:
        if (!live[slot]) {
          live[slot] = pcm_malloc(pick_size(in));
          count += live[slot] != nullptr;
        }
        break;
      case 2:
        if (!live[slot]) {
          live[slot] = in.ConsumeBool() ? pcm_calloc(1, pick_size(in)) : pcm_aligned_alloc(64, pick_size(in));
          count += live[slot] != nullptr;
        }
        break;
      case 3:
        if (live[slot])
          if (void* q = pcm_realloc(live[slot], pick_size(in) + 1)) live[slot] = q;
        break;
      default:
        if (live[slot]) {
          pcm_free(live[slot]);
          live[slot] = nullptr;
          --count;
        }
    }
  }
  void* victim = nullptr;
  for (unsigned i = 0; i < max_live && !victim; ++i) victim = live[i];
  if (!victim) victim = pcm_malloc(48);
  if (in.ConsumeBool()) {
    pcm_free(victim);
    pcm_free(victim);   // the misuse: nothing ran in between, so nobody owns it again
  } else {
    pcm_free(static_cast<char*>(victim) + 8);
  }
  _exit(0);   // not stopped
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return 0;
  pid_t pid = fork();
  if (pid < 0) { close(pipe_fds[0]); close(pipe_fds[1]); return 0; }
  if (pid == 0) {
    std::signal(SIGABRT, SIG_DFL);   // libFuzzer's handler would turn the abort into exit(1)
    dup2(pipe_fds[1], STDERR_FILENO);
    close(pipe_fds[0]);
    FuzzedDataProvider in(data, size);
    child(in);
  }
  close(pipe_fds[1]);
  std::string err;
  char buffer[512];
  // libFuzzer's -timeout alarm interrupts reads: stopping at EINTR closed the
  // pipe early and the child died of SIGPIPE while reporting.
  for (ssize_t n; (n = read(pipe_fds[0], buffer, sizeof buffer)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    err.append(buffer, std::size_t(n));
  }
  close(pipe_fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  bool stopped = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
  bool named = err.find("pcmalloc: error: ") != std::string::npos &&
               (err.find("double free") != std::string::npos || err.find("invalid pointer") != std::string::npos);
  if (!stopped || !named) {
    std::fprintf(stderr, "misuse not stopped: status %d, stderr: %s\n", status, err.c_str());
    __builtin_trap();
  }
  return 0;
}
