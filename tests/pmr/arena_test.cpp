// pcm::arena: every size and alignment, free() routing back to the arena,
// reset, destruction with abandoned containers, a caller's buffer as the only
// memory, misuse across arenas, and four threads sharing one arena.
#include <doctest/doctest.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory_resource>
#include <mutex>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <thread>
#include <unordered_map>
#include <vector>

#include <pcmalloc/arena.hpp>
#include <pcmalloc/pmr.hpp>

#include "support.hpp"

namespace {

using namespace pmr_test;

// Objects and bytes of the arena in the program's hands (objects in the
// arena's per-CPU caches are free).
std::uint64_t live_objects(const pcm::arena& a) {
  pcm::arena_statistics s = a.statistics();
  return s.small_objects - s.cached_objects;
}

std::vector<std::size_t> test_sizes() {
  std::vector<std::size_t> sizes;
  for (std::size_t n = 1; n <= 512; ++n) sizes.push_back(n);
  for (std::size_t power = 512; power <= 8 * MiB; power *= 2)
    for (std::size_t n : {power - 1, power, power + 1, power + power / 4, power + power / 2})
      if (n <= 8 * MiB) sizes.push_back(n);
  return sizes;
}

struct block {
  void* pointer;
  std::size_t size;
  std::uint64_t seed;
};

}  // namespace

TEST_SUITE("pmr") {

TEST_CASE("pcm::arena: sizes 1 B to 8 MiB, alignments 16 B to 64 KiB") {
  pcm::arena a;
  const std::vector<std::size_t> sizes = test_sizes();
  for (std::size_t alignment = 16; alignment <= 64 * KiB; alignment *= 2) {
    CAPTURE(alignment);
    std::vector<block> blocks;
    int failed = 0, misaligned = 0, foreign = 0, short_blocks = 0;
    for (std::size_t size : sizes) {
      void* p = a.allocate(size, alignment);
      if (!p) { ++failed; continue; }
      misaligned += !is_aligned(p, alignment);
      foreign += !a.owns(p) || pcm_owns(p) != 1;
      short_blocks += pcm_usable_size(p) < size;
      std::uint64_t seed = blocks.size() * 131 + alignment;
      stamp(p, size, seed);
      blocks.push_back({p, size, seed});
    }
    CHECK(failed == 0);
    CHECK(misaligned == 0);
    CHECK(foreign == 0);
    CHECK(short_blocks == 0);
    int overwritten = 0;
    for (const block& b : blocks) overwritten += !stamped(b.pointer, b.size, b.seed);
    CHECK(overwritten == 0);
    for (const block& b : blocks) a.deallocate(b.pointer);
    if (debug_library()) continue;   // freed blocks wait in quarantine
    pcm::arena_statistics s = a.statistics();
    CHECK(s.small_objects == s.cached_objects);
    CHECK(s.large_bytes == 0);
    CHECK(s.huge_blocks == 0);
  }
  // The default alignment, a zero-byte request, and bad alignments.
  void* p = a.allocate(24);
  CHECK(is_aligned(p, alignof(std::max_align_t)));
  a.deallocate(p);
  p = a.allocate(0);
  CHECK(p != nullptr);
  a.deallocate(p);
  a.deallocate(nullptr);
  errno = 0;
  CHECK(a.allocate(64, 0) == nullptr);
  CHECK(errno == EINVAL);
  errno = 0;
  CHECK(a.allocate(64, 48) == nullptr);
  CHECK(errno == EINVAL);
  errno = 0;
  CHECK(a.allocate(std::size_t(1) << 62) == nullptr);
  CHECK(errno == ENOMEM);
}

TEST_CASE("pcm::arena: free() of an arena block goes back to its arena") {
  pcm::arena a;
  constexpr int count = 10000;
  std::vector<void*> blocks;
  for (int i = 0; i < count; ++i) blocks.push_back(a.allocate(100));
  pcm::arena_statistics full = a.statistics();
  CHECK(live_objects(a) == count);
  CHECK(full.small_objects >= std::uint64_t(count));
  for (void* p : blocks) std::free(p);
  // Under the debug library the blocks wait in quarantine: what counts there
  // is that free() took each one as the arena's (a report aborts otherwise).
  const bool counts = !debug_library();
  pcm::arena_statistics after = a.statistics();
  if (counts) CHECK(live_objects(a) == 0);
  if (counts) CHECK(after.small_objects < full.small_objects);   // more than the caches hold went back to slabs
  // Large and huge blocks, and a block freed by another thread.
  void* large = a.allocate(200 * KiB);
  void* huge = a.allocate(8 * MiB);
  void* small = a.allocate(48);
  CHECK(a.statistics().large_bytes >= 8 * MiB + 200 * KiB);
  CHECK(a.statistics().huge_blocks == 1);
  std::free(large);
  std::free(huge);
  std::thread([small] { std::free(small); }).join();
  if (counts) CHECK(a.statistics().large_bytes == 0);
  if (counts) CHECK(a.statistics().huge_blocks == 0);
  if (counts) CHECK(live_objects(a) == 0);
  // The global heap's own frees are not affected.
  void* global = std::malloc(100);
  CHECK_FALSE(a.owns(global));
  std::free(global);
}

TEST_CASE("pcm::arena: reset frees everything, and the memory is used again") {
  pcm::arena a;
  auto fill = [&a] {
    std::vector<void*> blocks;
    for (int i = 0; i < 5000; ++i) blocks.push_back(a.allocate(16 + std::size_t(i % 64) * 16));
    for (int i = 0; i < 20; ++i) blocks.push_back(a.allocate(64 * KiB + std::size_t(i) * 4096));
    blocks.push_back(a.allocate(6 * MiB));
    int missing = 0;
    for (void* p : blocks) missing += p == nullptr;
    CHECK(missing == 0);
    stamp(blocks.back(), 6 * MiB, 1);
    return blocks;
  };
  std::vector<void*> first = fill();
  CHECK(live_objects(a) > 0);
  CHECK(a.statistics().huge_blocks == 1);
  a.reset();
  // Under the debug library a reset frees each block into quarantine, and the
  // arena gets the memory back from there: its counts and its mapped and
  // resident bytes follow the quarantine, not the reset.
  const bool counts = !debug_library();
  pcm::arena_statistics s = a.statistics();
  if (counts) {
    CHECK(s.small_objects == 0);
    CHECK(s.cached_objects == 0);
    CHECK(s.large_bytes == 0);
    CHECK(s.huge_blocks == 0);
    CHECK(s.slabs == 0);
  }
  CHECK(s.resets == 1);
  int still_owned = 0;
  for (void* p : first) still_owned += a.owns(p);
  CHECK(still_owned == 0);

  fill();
  a.reset();
  const std::uint64_t mapped = a.statistics().mapped_bytes;
  const std::size_t resident = resident_bytes();
  std::uint64_t most_mapped = 0;
  for (int cycle = 0; cycle < 100; ++cycle) {
    fill();
    most_mapped = std::max(most_mapped, a.statistics().mapped_bytes);
    a.reset();
  }
  CHECK(a.statistics().resets == 102);
  if (!counts) return;
  CHECK(a.statistics().mapped_bytes <= mapped);
  CHECK(most_mapped <= mapped);
  CHECK(resident_bytes() <= resident + 8 * MiB);
  CHECK(live_objects(a) == 0);
}

TEST_CASE("pcm::arena: destroying an arena under abandoned containers leaks nothing") {
  // Containers on an arena that is destroyed must be abandoned, never destroyed:
  // they live in raw storage here and their destructors never run.
  using vector = std::pmr::vector<std::uint64_t>;
  using map = std::pmr::unordered_map<int, std::pmr::string>;
  auto cycle = [](int round) {
    pcm::arena a;
    pcm::pmr::arena_resource resource(a);
    alignas(vector) unsigned char vector_storage[sizeof(vector)];
    alignas(map) unsigned char map_storage[sizeof(map)];
    auto* v = new (vector_storage) vector(&resource);
    auto* m = new (map_storage) map(&resource);
    for (int i = 0; i < 50000; ++i) v->push_back(std::uint64_t(i) * round);
    for (int i = 0; i < 2000; ++i) m->emplace(i, "a value long enough to allocate " + std::to_string(i));
    auto* big = static_cast<char*>(resource.allocate(4 * MiB + 1));
    big[0] = big[4 * MiB] = 1;
    CHECK((*v)[49999] == std::uint64_t(49999) * round);
    CHECK(m->at(1999).size() > 32);
  };
  for (int round = 0; round < 10; ++round) cycle(round);
  const std::size_t resident = resident_bytes();
  std::optional<pcm_stats> before = statistics_via_child(5);
  CHECK_MESSAGE(before.has_value(), "pcm_stats_get() did not return within 5 s");
  for (int round = 10; round < 100; ++round) cycle(round);
  CHECK(resident_bytes() <= resident + 16 * MiB);
  if (!before) return;
  std::optional<pcm_stats> after = statistics_via_child(5);
  REQUIRE_MESSAGE(after.has_value(), "pcm_stats_get() did not return within 5 s");
  CAPTURE(before->mapped_bytes);
  CAPTURE(after->mapped_bytes);
  CHECK(after->mapped_bytes <= before->mapped_bytes + 4 * MiB);
  CHECK(after->metadata_bytes <= before->metadata_bytes + MiB);
}

TEST_CASE("pcm::arena: over a caller's buffer it never asks the OS for more") {
  const std::size_t bytes = 8 * MiB;
  void* memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(memory != MAP_FAILED);
  auto* begin = static_cast<char*>(memory);
  auto inside = [begin, bytes](void* p, std::size_t n) {
    return static_cast<char*>(p) >= begin && static_cast<char*>(p) + n <= begin + bytes;
  };
  {
    pcm::arena a(memory, bytes);
    CHECK(a.statistics().mapped_bytes == bytes);
    // Large blocks until the buffer is full.
    std::vector<void*> large;
    int outside = 0;
    for (;;) {
      errno = 0;
      void* p = a.allocate(64 * KiB);
      if (!p) break;
      outside += !inside(p, 64 * KiB);
      stamp(p, 64 * KiB, large.size());
      large.push_back(p);
      REQUIRE(large.size() <= bytes / (64 * KiB));
    }
    CHECK(errno == ENOMEM);
    CHECK(large.size() >= bytes / (64 * KiB) * 9 / 10);
    CHECK(outside == 0);
    // Requests that would need new memory fail at once.
    errno = 0;
    CHECK(a.allocate(16 * MiB) == nullptr);
    CHECK(errno == ENOMEM);
    errno = 0;
    CHECK(a.allocate(64 * KiB, 64 * KiB) == nullptr);
    CHECK(errno == ENOMEM);
    pcm::pmr::arena_resource resource(a);
    CHECK_THROWS_AS((void)resource.allocate(64 * KiB), std::bad_alloc);
    CHECK_THROWS_AS((void)resource.allocate(16 * MiB), std::bad_alloc);
    std::pmr::vector<char> too_big(&resource);
    CHECK_THROWS_AS(too_big.resize(9 * MiB), std::bad_alloc);
    CHECK(a.statistics().mapped_bytes == bytes);
    int overwritten = 0;
    for (std::size_t i = 0; i < large.size(); ++i) overwritten += !stamped(large[i], 64 * KiB, i);
    CHECK(overwritten == 0);
    // A freed block makes room again.
    a.deallocate(large.back());
    large.pop_back();
    void* again = a.allocate(64 * KiB);
    CHECK(again != nullptr);
    CHECK(inside(again, 64 * KiB));
    a.deallocate(again);
    for (void* p : large) a.deallocate(p);

    // Small objects until the buffer is full, then reset and fill again.
    for (int round = 0; round < 3; ++round) {
      std::size_t count = 0;
      outside = 0;
      for (;; ++count) {
        void* p = a.allocate(256);
        if (!p) break;
        outside += !inside(p, 256);
        REQUIRE(count <= bytes / 256);
      }
      CAPTURE(round);
      CHECK(errno == ENOMEM);
      CHECK(outside == 0);
      if (!debug_library()) CHECK(count >= bytes / 256 * 8 / 10);   // debug blocks carry 32+ bytes of canaries
      CHECK(a.statistics().mapped_bytes == bytes);
      a.reset();
    }
  }
  munmap(memory, bytes);
}

TEST_CASE("pcm::arena: over an unaligned std::vector<std::byte>, blocks stay inside it") {
  std::vector<std::byte> buffer(8 * MiB + 100);
  std::byte* begin = buffer.data() + 100;   // not page-aligned: the arena rounds inwards
  const std::size_t bytes = 8 * MiB;
  pcm::arena a(begin, bytes);
  CHECK(a.statistics().mapped_bytes <= bytes);
  CHECK(a.statistics().mapped_bytes >= bytes - 8 * KiB);
  pcm::pmr::arena_resource resource(a);
  int outside = 0;
  std::size_t total = 0;
  try {
    std::pmr::vector<std::pmr::vector<int>> rows(&resource);
    for (int i = 0;; ++i) {
      rows.emplace_back(std::size_t(1 + i % 700), i);
      const auto* p = reinterpret_cast<const std::byte*>(rows.back().data());
      outside += p < begin || p + rows.back().size() * sizeof(int) > begin + bytes;
      total += rows.back().size() * sizeof(int);
    }
  } catch (const std::bad_alloc&) {
  }
  CHECK(outside == 0);
  CHECK(total >= bytes / 4);
}

TEST_CASE("pcm::arena: deallocating another arena's pointer aborts with a clear message") {
  pcm::arena a, b;
  struct misuse {
    const char* name;
    void* pointer;
    const char* why;
  };
  void* small = a.allocate(64);
  void* large = a.allocate(256 * KiB);
  void* global = std::malloc(64);
  int local = 0;
  const misuse cases[] = {
      {"small block of another arena", small, "belongs to another arena"},
      {"large block of another arena", large, "belongs to another arena"},
      {"global heap block", global, "belongs to another arena"},
      {"stack address", &local, "not allocated by pcmalloc"},
  };
  for (const misuse& m : cases) {
    CAPTURE(m.name);
    child_result child = run_in_child([&] { b.deallocate(m.pointer); });
    CAPTURE(child.error_text);
    CHECK(child.signalled);
    CHECK(child.signal == SIGABRT);
    // The debug library reports on the stderr it found at start-up; its last line comes through.
    if (debug_library()) {
      CHECK(child.error_text.find("pcmalloc-debug") != std::string::npos);
      continue;
    }
    CHECK(child.error_text.find("pcm::arena::deallocate(" + pointer_text(m.pointer) + ")") != std::string::npos);
    CHECK(child.error_text.find(m.why) != std::string::npos);
    CHECK(std::count(child.error_text.begin(), child.error_text.end(), '\n') == 1);
  }
  a.deallocate(small);
  a.deallocate(large);
  std::free(global);
}

TEST_CASE("pcm::arena: four threads allocate and free in one arena") {
  pcm::arena a;
  std::mutex handed_lock;
  std::vector<block> handed_over;   // allocated by one thread, freed by another
  std::atomic<int> corrupt{0}, failed{0}, foreign{0};
  auto worker = [&](unsigned id) {
    std::mt19937_64 random(id * 7919 + 1);
    std::vector<block> slots(256, block{nullptr, 0, 0});
    std::uint64_t next_seed = std::uint64_t(id) << 40;
    auto release = [&](const block& b, unsigned how) {
      if (!stamped(b.pointer, b.size, b.seed)) ++corrupt;
      if (how == 0) a.deallocate(b.pointer);
      else std::free(b.pointer);
    };
    for (int op = 0; op < 40000; ++op) {
      block& slot = slots[random() % slots.size()];
      if (slot.pointer) {
        unsigned how = unsigned(random() % 4);
        if (how == 3) {
          std::lock_guard guard(handed_lock);
          handed_over.push_back(slot);
        } else {
          release(slot, how % 2);
        }
        slot.pointer = nullptr;
        continue;
      }
      if (op % 64 == 0) {
        std::vector<block> taken;
        {
          std::lock_guard guard(handed_lock);
          taken.swap(handed_over);
        }
        for (const block& b : taken) release(b, 0);
      }
      std::size_t size = random() % 64 == 0 ? 40 * KiB + random() % (200 * KiB) : 1 + random() % 2048;
      std::size_t alignment = std::size_t(16) << (random() % 9);
      void* p = a.allocate(size, alignment);
      if (!p) { ++failed; continue; }
      if (!is_aligned(p, alignment) || !a.owns(p)) ++foreign;
      slot = {p, size, next_seed++};
      stamp(p, size, slot.seed);
    }
    for (const block& b : slots)
      if (b.pointer) release(b, 0);
  };
  std::vector<std::thread> threads;
  for (unsigned id = 0; id < 4; ++id) threads.emplace_back(worker, id);
  for (auto& t : threads) t.join();
  for (const block& b : handed_over) {
    if (!stamped(b.pointer, b.size, b.seed)) ++corrupt;
    a.deallocate(b.pointer);
  }
  CHECK(corrupt == 0);
  CHECK(failed == 0);
  CHECK(foreign == 0);
  if (debug_library()) return;   // freed blocks wait in quarantine
  CHECK(live_objects(a) == 0);
  CHECK(a.statistics().large_bytes == 0);
}

}  // TEST_SUITE

TEST_CASE("pcm::arena: pcm_purge and decay give an explicit arena's free pages back") {
  RELEASE_LIBRARY_ONLY("freed blocks wait in quarantine");
  pcm::arena a;
  std::vector<void*> blocks;
  for (int i = 0; i < 100; ++i) {
    void* p = a.allocate(100000);   // large runs in the arena's own chunks
    REQUIRE(p);
    std::memset(p, 1, 100000);
    blocks.push_back(p);
  }
  for (void* p : blocks) a.deallocate(p);
  CHECK(a.statistics().dirty_bytes > 0);
  pcm_purge();
  CHECK(a.statistics().dirty_bytes == 0);
}

TEST_CASE("pcm::arena: fork while another thread works in an explicit arena; the child can use it") {
  // Each fork lands at a random point of the other thread's allocate/free;
  // the child must find no lock of the arena held (a hang ends by SIGALRM).
  pcm::arena a;
  std::atomic<bool> stop{false};
  std::thread worker([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      void* large = a.allocate(100000);
      void* small = a.allocate(48);
      a.deallocate(small);
      a.deallocate(large);
    }
  });
  int failed = 0;
  for (int i = 0; i < 200 && !failed; ++i) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      alarm(5);
      void* large = a.allocate(100000);
      void* small = a.allocate(48);
      a.deallocate(small);
      a.deallocate(large);
      _exit(large && small ? 0 : 1);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed = status;
  }
  stop = true;
  worker.join();
  CHECK(failed == 0);
}

TEST_CASE("pcm::arena: over a buffer pcmalloc handed out (1, 3 and 8 MiB), the buffer is still freed as a block") {
  // A std::vector's buffer is a large or huge pcmalloc block, which the page map
  // names by its first page only: the arena must leave that page alone, or
  // the vector's free() no longer finds its block (it aborted) and the arena
  // could hand out memory the vector still holds.
  for (std::size_t bytes : {1 * MiB, 3 * MiB, 8 * MiB}) {
    CAPTURE(bytes);
    auto* buffer = new std::vector<std::byte>(bytes);
    {
      pcm::arena a(buffer->data(), bytes);
      std::vector<void*> blocks;
      for (int i = 0; i < 1000; ++i) {
        void* p = a.allocate(16 + std::size_t(i % 50) * 16);
        if (!p) break;
        CHECK((p >= static_cast<void*>(buffer->data()) && p < static_cast<void*>(buffer->data() + bytes)));
        std::memset(p, 0x5A, 16);
        blocks.push_back(p);
      }
      CHECK(blocks.size() >= 100);
      CHECK(pcm_owns(buffer->data()) == 1);   // still the vector's block while the arena lives
      for (void* p : blocks) a.deallocate(p);
    }
    CHECK(pcm_owns(buffer->data()) == 1);
    delete buffer;   // aborted here when the arena had replaced the block's page-map entry
  }
}

TEST_CASE("pcm::arena: refuses a region inside a small block (every page of it named by the page map)") {
  void* small = std::malloc(16 * KiB);
  CHECK_THROWS_AS(pcm::arena(small, 16 * KiB), std::bad_alloc);
  std::free(small);
}

TEST_CASE("pcm::arena: alignments up to a whole chunk (4 MiB) hold on fresh chunks") {
  std::vector<void*> spacers;
  for (int i = 0; i < 8; ++i) {
    // A 2 MiB reservation between arenas shifts where the next chunk lands:
    // chunks are 2 MiB-aligned, so about half are not 4 MiB-aligned.
    if (i & 1) spacers.push_back(mmap(nullptr, 2 * MiB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    pcm::arena a;
    void* p = a.allocate(0, 4 * MiB);
    REQUIRE(p);
    CHECK(is_aligned(p, 4 * MiB));
    a.deallocate(p);
    void* q = a.allocate(100, 2 * MiB);
    REQUIRE(q);
    CHECK(is_aligned(q, 2 * MiB));
    a.deallocate(q);
  }
  for (void* spacer : spacers)
    if (spacer != MAP_FAILED) munmap(spacer, 2 * MiB);
}
