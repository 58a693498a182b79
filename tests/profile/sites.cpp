// The program tests/profile/profile_test.py profiles. Modes:
//   accuracy  three allocation sites with known byte totals and live bytes
//             (blocks are never touched, so gigabytes cost address space only)
//   threads   threads allocate and free while another thread dumps with
//             pcm_profile_dump and the main thread sends profile_signal
//   fork      a thread dumps in a loop while the main thread forks; each child
//             dumps and exits
#include <pcmalloc/pcmalloc.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {
constexpr std::size_t kib = 1024, mib = 1024 * kib;
void** slots;   // every block of every site, for frees by index (calloc'd by main)

// Not tail calls (the block is stored after malloc returns), so each site is a frame.
__attribute__((noinline)) void site_large(std::size_t i) { slots[i] = std::malloc(64 * kib); }
__attribute__((noinline)) void site_pages(std::size_t i) { slots[i] = std::malloc(4 * kib); }
__attribute__((noinline)) void site_small(std::size_t i) { slots[i] = new char[512]; }

// Truth (bytes): large 2 GiB allocated, all live; pages 2.5 GiB, every other
// block freed; small 1.5 GiB, two of three freed. Interleaved in rounds so
// that the peak and the sampling see the sites mixed.
int accuracy() {
  const std::size_t large = 2048 * mib / (64 * kib), pages = 2560 * mib / (4 * kib), small = 1536 * mib / 512;
  slots = static_cast<void**>(std::calloc(large + pages + small, sizeof(void*)));
  void** s_large = slots;
  const std::size_t rounds = 64;
  for (std::size_t r = 0; r < rounds; ++r) {
    for (std::size_t i = r * large / rounds; i < (r + 1) * large / rounds; ++i) site_large(i);
    for (std::size_t i = r * pages / rounds; i < (r + 1) * pages / rounds; ++i) {
      site_pages(large + i);
      if (i % 2) { std::free(slots[large + i]); slots[large + i] = nullptr; }
    }
    for (std::size_t i = r * small / rounds; i < (r + 1) * small / rounds; ++i) {
      site_small(large + pages + i);
      if (i % 3) { delete[] static_cast<char*>(slots[large + pages + i]); slots[large + pages + i] = nullptr; }
    }
  }
  std::printf("allocated %zu blocks, first %p\n", large + pages + small, s_large[0]);
  return 0;   // everything still held is live at exit
}

std::atomic<bool> stop{false};
__attribute__((noinline)) void churn_site(std::vector<void*>& held, unsigned& x) {
  x = x * 1103515245u + 12345u;
  std::size_t n = 16 + (x >> 8) % 8192;
  void* p = std::malloc(n);
  std::memset(p, 1, n < 64 ? n : 64);
  held.push_back(p);
}
void churn() {
  std::vector<void*> held;
  held.reserve(4096);
  unsigned x = unsigned(reinterpret_cast<std::uintptr_t>(&held));
  while (!stop.load(std::memory_order_relaxed)) {
    churn_site(held, x);
    if (held.size() >= 4000) { for (void* p : held) std::free(p); held.clear(); }
  }
  for (void* p : held) std::free(p);
}

int threads(const char* prefix) {
  std::vector<std::thread> workers;
  for (int i = 0; i < 3; ++i) workers.emplace_back(churn);
  std::thread dumper([prefix] {
    for (int i = 0; i < 5; ++i) {
      std::string name = std::string(prefix) + ".thread" + std::to_string(i);
      if (pcm_profile_dump(name.c_str()) != 0) { std::perror("pcm_profile_dump"); std::exit(3); }
      usleep(50000);
    }
  });
  for (int i = 0; i < 3; ++i) { usleep(100000); kill(getpid(), SIGUSR2); }
  usleep(200000);
  dumper.join();
  stop = true;
  for (auto& t : workers) t.join();
  return 0;
}

int forks(const char* prefix) {
  std::thread worker(churn);
  std::thread dumper([prefix] {
    for (int i = 0; !stop.load(); ++i) {
      std::string name = std::string(prefix) + ".loop" + std::to_string(i % 4);
      pcm_profile_dump(name.c_str());
    }
  });
  for (int i = 0; i < 20; ++i) {
    usleep(20000);
    pid_t child = fork();
    if (child == 0) {
      void* p = std::malloc(1 << 20);   // the child's heap and profiler work
      std::string name = std::string(prefix) + ".child" + std::to_string(i);
      int r = pcm_profile_dump(name.c_str());
      std::free(p);
      _exit(r == 0 ? 0 : 4);
    }
    int status = 0;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) { std::fprintf(stderr, "child %d failed: %d\n", i, status); return 5; }
  }
  stop = true;
  dumper.join();
  worker.join();
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "accuracy";
  const char* prefix = argc > 2 ? argv[2] : "/tmp/pcm-profile-test";
  if (!std::strcmp(mode, "accuracy")) return accuracy();
  if (!std::strcmp(mode, "threads")) return threads(prefix);
  if (!std::strcmp(mode, "fork")) return forks(prefix);
  std::fprintf(stderr, "unknown mode %s\n", mode);
  return 2;
}
