// Memory goes back to the OS after a spike: at once with pcm_purge(), and by
// itself through decay (default 500 ms, ticked on slow paths) once the
// application allocates again.
#include <chrono>
#include <cstring>
#include <thread>

#include <doctest/doctest.h>

#include "support.hpp"

using namespace api_test;

namespace {
constexpr std::size_t slack = 64 * MiB;

// ~512 MiB in mixed blocks: 256 x 1 MiB, 2048 x 64 KiB, ~128 MiB of small ones.
// Every byte is written so that every page is resident.
struct spike {
  std::vector<void*> blocks;
  std::vector<std::size_t> sizes;

  spike() {
    blocks.reserve(200000);
    sizes.reserve(200000);
  }
  void allocate() {
    auto add = [this](std::size_t n) {
      void* p = malloc(n);
      REQUIRE(p);
      std::memset(p, 0x77, n);
      blocks.push_back(p);
      sizes.push_back(n);
    };
    std::size_t small_total = 0, medium = 0, big = 0;
    for (std::size_t i = 1; small_total < 128 * MiB; ++i) {   // the three kinds interleaved
      std::size_t n = 16 + (i * 7919) % 2032;
      add(n);
      small_total += n;
      if (i % 64 == 0 && medium < 2048) add(64 * KiB), ++medium;
      if (i % 512 == 0 && big < 256) add(1 * MiB), ++big;
    }
    for (; medium < 2048; ++medium) add(64 * KiB);
    for (; big < 256; ++big) add(1 * MiB);
  }
  void free_all() {
    for (std::size_t i = 0; i < blocks.size(); i += 2) free(blocks[i]);   // interleaved, not LIFO
    for (std::size_t i = 1; i < blocks.size(); i += 2) free(blocks[i]);
    blocks.clear();
    sizes.clear();
  }
};

void report(const char* what, std::size_t before, std::size_t peak, std::size_t after) {
  MESSAGE(std::string(what) << ": RSS before " << before / MiB << " MiB, peak " << peak / MiB << " MiB, after "
               << after / MiB << " MiB");
}
}  // namespace

TEST_CASE("RSS falls after a freed spike and pcm_purge") {
  RELEASE_LIBRARY_ONLY("freed blocks wait in quarantine");
  spike s;
  const std::size_t before = resident_bytes();
  s.allocate();
  const std::size_t peak = resident_bytes();
  CHECK(peak >= before + 400 * MiB);   // the spike really was resident
  s.free_all();
  pcm_purge();
  const std::size_t after = resident_bytes();
  report("pcm_purge", before, peak, after);
  CHECK(after <= before + slack);
}

TEST_CASE("RSS falls after a freed spike by decay alone") {
  RELEASE_LIBRARY_ONLY("freed blocks wait in quarantine");
  spike s;
  const std::size_t before = resident_bytes();
  s.allocate();
  const std::size_t peak = resident_bytes();
  CHECK(peak >= before + 400 * MiB);
  s.free_all();
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));   // > decay (500 ms) + one tick
  for (int i = 0; i < 4; ++i) {   // slow paths tick the decay clock: large blocks, and small ones
    free(opaque(malloc(100 * KiB)));
    for (int j = 0; j < 100; ++j) free(opaque(malloc(64)));
  }
  const std::size_t after = resident_bytes();
  report("decay", before, peak, after);
  CHECK(after <= before + slack);
}
