// The stack depot: dedup, stable ids, loads, concurrent saves from 8 threads;
// and the cost of capture and of a depot hit, printed for the record.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "no_malloc.hpp"
#include "trace/stack_trace.hpp"
#include "trace/symbolize.hpp"

using debug_symbols_test::heap_forbidden_scope;
using pcm::debug::stack_depot_load;
using pcm::debug::stack_depot_save;

unsigned allocate_line;

namespace {

constexpr unsigned stack_kinds = 2000;

// Synthetic stack k: stacks share prefixes (k and k + 1 often differ only in depth).
unsigned make_stack(unsigned k, void** frames) {
  unsigned depth = 1 + k % 40;
  for (unsigned j = 0; j < depth; ++j)
    frames[j] = reinterpret_cast<void*>(std::uintptr_t(0x400000) + (k / 40) * 0x10000 + j * 8);
  return depth;
}

__attribute__((noinline)) std::uint32_t save_here() {
  void* frames[64];
  heap_forbidden_scope forbidden;
  unsigned depth = pcm::debug::capture(frames, 64);
  return stack_depot_save(frames, depth);
}

__attribute__((noinline)) unsigned recurse_then_capture(unsigned levels, void** frames, unsigned max_frames) {
  if (levels == 0) return pcm::debug::capture(frames, max_frames);
  unsigned depth = recurse_then_capture(levels - 1, frames, max_frames);
  __asm__ volatile("" ::: "memory");   // no tail call
  return depth;
}

double nanoseconds_since(std::chrono::steady_clock::time_point start, unsigned count) {
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count() / count;
}

}  // namespace

TEST_CASE("the depot dedups, names stacks by nonzero ids and loads them back") {
  void* a[8] = {(void*)0x1001, (void*)0x1002, (void*)0x1003};
  void* b[8] = {(void*)0x1001, (void*)0x1002, (void*)0x1004};
  void* out[8];
  std::uint32_t id_a, id_a_again, id_b, id_prefix, id_empty;
  unsigned loaded, loaded_short, loaded_unknown, loaded_zero;
  {
    heap_forbidden_scope forbidden;
    id_a = stack_depot_save(a, 3);
    id_a_again = stack_depot_save(a, 3);
    id_b = stack_depot_save(b, 3);
    id_prefix = stack_depot_save(a, 2);
    id_empty = stack_depot_save(a, 0);
    loaded = stack_depot_load(id_b, out, 8);
    loaded_short = stack_depot_load(id_a, out + 4, 2);
    loaded_unknown = stack_depot_load(0x7fffffffu, out, 8);
    loaded_zero = stack_depot_load(0, out, 8);
  }
  CHECK(id_a != 0);
  CHECK(id_a == id_a_again);
  CHECK(id_b != id_a);
  CHECK(id_prefix != id_a);
  CHECK(id_empty == 0);
  CHECK(loaded == 3);
  CHECK(std::memcmp(out, b, 3 * sizeof(void*)) == 0);
  CHECK(loaded_short == 2);
  CHECK(out[4] == a[0]);
  CHECK(out[5] == a[1]);
  CHECK(loaded_unknown == 0);
  CHECK(loaded_zero == 0);
}

TEST_CASE("stacks deeper than max_stack_depth are kept truncated") {
  static void* deep[pcm::debug::max_stack_depth + 10];
  static void* out[pcm::debug::max_stack_depth + 10];
  for (unsigned i = 0; i < pcm::debug::max_stack_depth + 10; ++i) deep[i] = reinterpret_cast<void*>(0x9000 + i);
  heap_forbidden_scope forbidden;
  std::uint32_t id = stack_depot_save(deep, pcm::debug::max_stack_depth + 10);
  CHECK(id == stack_depot_save(deep, pcm::debug::max_stack_depth));
  CHECK(stack_depot_load(id, out, pcm::debug::max_stack_depth + 10) == pcm::debug::max_stack_depth);
}

TEST_CASE("8 threads saving overlapping stacks get the same ids") {
  constexpr unsigned threads = 8, rounds = 4;
  static std::uint32_t ids[threads][stack_kinds];
  static std::uint32_t captured_ids[threads];
  std::atomic<unsigned> mismatches{0};
  std::atomic<bool> go{false};
  const std::size_t before = pcm::debug::stack_depot_stats().stacks;
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([t, &mismatches, &go] {
      while (!go.load()) std::this_thread::yield();
      heap_forbidden_scope forbidden;
      void* frames[64];
      for (unsigned round = 0; round < rounds; ++round) {
        for (unsigned i = 0; i < stack_kinds; ++i) {
          // Each thread walks the kinds in its own order (strides coprime with
          // stack_kinds), so first saves race.
          constexpr unsigned strides[threads] = {1, 3, 7, 9, 11, 13, 17, 19};
          unsigned k = (i * strides[t] + t * 97) % stack_kinds;
          std::uint32_t id = stack_depot_save(frames, make_stack(k, frames));
          if (round == 0) ids[t][k] = id;
          else if (ids[t][k] != id) mismatches.fetch_add(1);
        }
      }
      captured_ids[t] = save_here();
    });
  }
  go.store(true);
  for (auto& w : workers) w.join();
  CHECK(mismatches.load() == 0);
  for (unsigned k = 0; k < stack_kinds; ++k) {
    CHECK(ids[0][k] != 0);
    for (unsigned t = 1; t < threads; ++t) CHECK(ids[t][k] == ids[0][k]);
  }
  // Distinct stacks, distinct ids; loads give the frames back.
  std::vector<std::uint32_t> sorted(ids[0], ids[0] + stack_kinds);
  std::sort(sorted.begin(), sorted.end());
  CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
  for (unsigned k = 0; k < stack_kinds; ++k) {
    void* expected[64];
    void* loaded[64];
    unsigned depth = make_stack(k, expected);
    REQUIRE(stack_depot_load(ids[0][k], loaded, 64) == depth);
    CHECK(std::memcmp(loaded, expected, depth * sizeof(void*)) == 0);
  }
  // The same call path in every thread is one stack (thread entry code is shared).
  for (unsigned t = 1; t < threads; ++t) CHECK(captured_ids[t] == captured_ids[0]);
  CHECK(pcm::debug::stack_depot_stats().stacks - before == stack_kinds + 1);
}

__attribute__((noinline)) void* allocate_here() {
  void* p = std::malloc(24); allocate_line = __LINE__;
  return p;
}

TEST_CASE("a thread's first capture can happen inside malloc") {
  std::uint32_t id = 0;
  void* block = nullptr;
  std::thread([&] {
    debug_symbols_test::capture_in_malloc = 1;   // before this thread's first capture
    block = allocate_here();
    debug_symbols_test::capture_in_malloc = 0;
    id = debug_symbols_test::last_malloc_stack;
  }).join();
  std::free(block);
  REQUIRE(id != 0);
  void* frames[64];
  unsigned depth = stack_depot_load(id, frames, 64);
  REQUIRE(depth >= 3);
  pcm::debug::frame_info info[2];
  {
    heap_forbidden_scope forbidden;
    pcm::debug::symbolize_stack(frames, 2, info);
  }
  INFO("frame 0 '", info[0].function, "', frame 1 '", info[1].function, "'");
  if (expect_names) {
    CHECK(std::strcmp(info[0].function, "malloc") == 0);
    CHECK(std::strstr(info[1].function, "allocate_here") != nullptr);
  }
  if (expect_lines) CHECK(info[1].line == allocate_line);
}

TEST_CASE("capture and depot costs") {
  void* frames[64];
  unsigned depth = recurse_then_capture(6, frames, 64);
  constexpr unsigned count = 200000;
  auto start = std::chrono::steady_clock::now();
  for (unsigned i = 0; i < count; ++i) recurse_then_capture(6, frames, 64);
  double full = nanoseconds_since(start, count);
  start = std::chrono::steady_clock::now();
  for (unsigned i = 0; i < count; ++i) recurse_then_capture(6, frames, 10);
  double ten = nanoseconds_since(start, count);
  std::uint32_t id = stack_depot_save(frames, depth);
  start = std::chrono::steady_clock::now();
  for (unsigned i = 0; i < count; ++i) id ^= stack_depot_save(frames, depth) ^ id;
  double hit = nanoseconds_since(start, count);
  MESSAGE("capture of a ", depth, "-frame stack: ", full, " ns; capped at 10 frames: ", ten,
          " ns; depot hit for it: ", hit, " ns");
  CHECK(depth >= 10);
  CHECK(id != 0);
  // Loose bounds: catch a slow path taken on every call (locks, syscalls), not noise.
  CHECK(full < 20000);
  CHECK(hit < 5000);
}
