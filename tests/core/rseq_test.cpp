// rseq.hpp's per-CPU stack operations on a local array of cache sets (laid out
// as heap.cpp's), over glibc's own rseq registration: a stack per CPU, bounds,
// and no object lost or duplicated by two threads under forced migrations and
// signals. Run with GLIBC_TUNABLES=glibc.pthread.rseq=0 too: then rseq must
// read as unavailable and every operation fail (the per-thread fallback's cue).
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <pthread.h>
#include <random>
#include <sched.h>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "platform/platform.hpp"
#include "rseq.hpp"

using namespace pcm;

extern "C" {
extern const std::ptrdiff_t __rseq_offset __attribute__((weak));
}

namespace {

constexpr unsigned test_class = first_class + 3;
alignas(64) cache_set sets[rseq::max_cpus];   // as heap.cpp's cpu_caches
std::vector<void*> slot_storage;

// Bins of test_class with `capacity` slots for CPUs below `cpus`; every other bin empty.
void set_up(unsigned capacity, unsigned cpus) {
  slot_storage.assign(std::size_t(cpus) * capacity, nullptr);
  for (unsigned cpu = 0; cpu < rseq::max_cpus; ++cpu)
    for (unsigned cls = 0; cls < cache_bins; ++cls) {
      bool real = cpu < cpus && cls == test_class;
      sets[cpu].bins[cls] = cache_bin{0, real ? capacity : 0, real ? &slot_storage[std::size_t(cpu) * capacity] : nullptr, 0, 0};
    }
}
cache_bin* bin0() { return &sets[0].bins[test_class]; }
std::uint64_t total_count() {
  std::uint64_t n = 0;
  for (const cache_set& s : sets) for (const cache_bin& b : s.bins) n += b.count;
  return n;
}

bool rseq_expected() {
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  return !(tunables && std::strstr(tunables, "rseq=0"));
}

void* token(std::uintptr_t i) { return reinterpret_cast<void*>(0x20000 + 16 * i); }

// The calling thread's CPUs, to pin to and to restore.
cpu_set_t own_affinity() {
  cpu_set_t set;
  CPU_ZERO(&set);
  sched_getaffinity(0, sizeof set, &set);
  return set;
}
bool pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0;
}

// struct rseq as the kernel reads it; enough to point the operations at a fake.
struct alignas(32) fake_rseq_area {
  std::uint32_t cpu_id_start = 0;
  std::uint32_t cpu_id = 0;
  std::uint64_t rseq_cs = 0;
  std::uint32_t flags = 0;
};
struct rseq_descriptor {   // struct rseq_cs
  std::uint32_t version, flags;
  std::uint64_t start_ip, post_commit_offset, abort_ip;
};

}  // namespace

TEST_CASE("glibc's rseq area is registered unless GLIBC_TUNABLES turns it off") {
  std::ptrdiff_t offset = 0;
  const bool available = os::rseq_available(&offset);
  MESSAGE("rseq available: " << available << " (expected " << rseq_expected() << ")");
  CHECK(rseq::supported);
  CHECK(available == rseq_expected());
  if (available) {
    const cpu_set_t saved = own_affinity();
    REQUIRE(pin_to(sched_getcpu()));
    CHECK(rseq::current_cpu(rseq::area(offset)) == sched_getcpu());
    CHECK(unsigned(rseq::current_cpu(rseq::area(offset))) < os::cpu_count());
    sched_setaffinity(0, sizeof saved, &saved);
  } else if (&__rseq_offset != nullptr) {
    // The area exists but holds no CPU: every operation fails and the caller falls back.
    char* area = rseq::area(__rseq_offset);
    CHECK(rseq::current_cpu(area) == -1);
    set_up(8, os::cpu_count());
    CHECK_FALSE(rseq::push(area, bin0(), token(1)));
    CHECK(rseq::pop(area, bin0()) == nullptr);
    CHECK(total_count() == 0);
  }
}

// A fake area makes the CPU any number we like: the critical sections run
// straight through (no kernel restarts), which checks the indexing and bounds.
TEST_CASE("operations index the CPU's set and refuse CPU ids outside [0, max_cpus)") {
  set_up(4, rseq::max_cpus);
  fake_rseq_area fake;
  char* area = reinterpret_cast<char*>(&fake);
  for (std::uint32_t cpu : {0u, 1u, 5u, rseq::max_cpus - 1}) {
    CAPTURE(cpu);
    fake.cpu_id = cpu;
    const cache_bin& bin = sets[cpu].bins[test_class];
    for (unsigned i = 0; i < 4; ++i) CHECK(rseq::push(area, bin0(), token(cpu * 10 + i)));
    CHECK_FALSE(rseq::push(area, bin0(), token(999)));   // full
    CHECK(bin.count == 4);
    CHECK(bin.frees == 4);
    CHECK(total_count() == 4);   // no other CPU's bin moved
    for (unsigned i = 4; i-- > 0;) CHECK(rseq::pop(area, bin0()) == token(cpu * 10 + i));
    CHECK(rseq::pop(area, bin0()) == nullptr);   // empty
    CHECK(bin.hits == 4);
    CHECK(rseq::current_cpu(area) == int(cpu));
  }
  for (std::uint32_t cpu : {rseq::max_cpus, rseq::max_cpus + 1, 0xffffffffu, 0xfffffffeu}) {
    CAPTURE(cpu);
    fake.cpu_id = cpu;
    CHECK_FALSE(rseq::push(area, bin0(), token(1)));
    CHECK(rseq::pop(area, bin0()) == nullptr);
    CHECK(total_count() == 0);
    CHECK(rseq::current_cpu(area) == -1);
  }
}

TEST_CASE("the critical-section descriptors are well formed, with glibc's signature before each abort handler") {
  set_up(4, rseq::max_cpus);
  fake_rseq_area fake;
  char* area = reinterpret_cast<char*>(&fake);
  std::vector<std::uint64_t> seen;
  for (int op = 0; op < 2; ++op) {
    fake.rseq_cs = 0;
    if (op == 0) rseq::push(area, bin0(), token(1)); else rseq::pop(area, bin0());
    REQUIRE(fake.rseq_cs != 0);
    seen.push_back(fake.rseq_cs);
    CHECK(fake.rseq_cs % 32 == 0);
    const auto* cs = reinterpret_cast<const rseq_descriptor*>(fake.rseq_cs);
    CHECK(cs->version == 0);
    CHECK(cs->flags == 0);
    CHECK(cs->post_commit_offset > 0);
    CHECK(cs->post_commit_offset < 128);
    const bool abort_inside = cs->abort_ip >= cs->start_ip && cs->abort_ip < cs->start_ip + cs->post_commit_offset;
    CHECK_FALSE(abort_inside);   // the kernel kills a thread whose abort handler is inside
    std::uint32_t signature;
    std::memcpy(&signature, reinterpret_cast<const void*>(cs->abort_ip - 4), 4);
    CHECK(signature == os::rseq_signature);
  }
  CHECK(seen[0] != seen[1]);
}

TEST_CASE("on this CPU, pinned: a bounded stack") {
  std::ptrdiff_t offset = 0;
  if (!os::rseq_available(&offset)) return;   // covered by the first test case
  char* area = rseq::area(offset);
  const cpu_set_t saved = own_affinity();
  const int cpu = sched_getcpu();
  REQUIRE(pin_to(cpu));
  set_up(16, os::cpu_count());
  const cache_bin& bin = sets[cpu].bins[test_class];
  for (unsigned i = 0; i < 16; ++i) CHECK(rseq::push(area, bin0(), token(i)));
  CHECK_FALSE(rseq::push(area, bin0(), token(99)));
  CHECK(bin.count == 16);
  CHECK(total_count() == 16);
  for (unsigned i = 16; i-- > 0;) CHECK(rseq::pop(area, bin0()) == token(i));
  CHECK(rseq::pop(area, bin0()) == nullptr);
  CHECK(bin.frees >= 16);   // an aborted section may count twice: statistics only
  CHECK(bin.hits >= 16);
  sched_setaffinity(0, sizeof saved, &saved);
}

// Two threads push and pop one pool of objects through the per-CPU bins while
// they hop between CPUs (sched_setaffinity: alone, together on one CPU, free)
// and a third thread interrupts them with signals, so sections are restarted
// and bins are shared. Every object must end up in exactly one place.
TEST_CASE("two threads, migrations and signals: no object lost or duplicated over 1e6 operations") {
  std::ptrdiff_t offset = 0;
  if (!os::rseq_available(&offset)) return;
  constexpr unsigned objects = 600, capacity = 64, operations_per_thread = 500000;
  const unsigned cpus = os::cpu_count();
  set_up(capacity, cpus);
  const cpu_set_t allowed = own_affinity();
  std::vector<int> allowed_cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) if (CPU_ISSET(c, &allowed)) allowed_cpus.push_back(c);
  REQUIRE(!allowed_cpus.empty());

  struct worker_state {
    std::vector<void*> held;
    std::uint64_t pushes = 0, pops = 0, cpu_changes = 0, affinity_switches = 0;
    std::vector<bool> cpus_seen = std::vector<bool>(rseq::max_cpus);
  };
  worker_state state[2];
  for (unsigned i = 0; i < objects; ++i) state[i % 2].held.push_back(token(i));

  struct sigaction action {};
  action.sa_handler = [](int) {};
  sigaction(SIGUSR1, &action, nullptr);
  std::atomic<unsigned> running{2};

  auto work = [&](unsigned id) {
    worker_state& me = state[id];
    char* area = rseq::area(offset);
    std::mt19937 random(77 + id);
    int last_cpu = -1;
    unsigned until_switch = 0;
    for (unsigned op = 0; op < operations_per_thread; ++op) {
      if (until_switch-- == 0) {
        until_switch = 500 + random() % 1000;
        ++me.affinity_switches;
        cpu_set_t set;
        CPU_ZERO(&set);
        switch (random() % 3) {
          case 0: CPU_SET(allowed_cpus[random() % allowed_cpus.size()], &set); break;   // somewhere alone
          case 1: CPU_SET(allowed_cpus[0], &set); break;                                // both on one CPU
          default: set = allowed; break;                                               // unpinned
        }
        sched_setaffinity(0, sizeof set, &set);
      }
      if (random() % 2 && !me.held.empty()) {
        if (rseq::push(area, bin0(), me.held.back())) { me.held.pop_back(); ++me.pushes; }
      } else if (void* p = rseq::pop(area, bin0())) {
        me.held.push_back(p);
        ++me.pops;
      }
      int cpu = rseq::current_cpu(area);
      if (cpu >= 0) me.cpus_seen[unsigned(cpu)] = true;
      if (cpu != last_cpu) { ++me.cpu_changes; last_cpu = cpu; }
    }
    running.fetch_sub(1);
  };
  std::thread first(work, 0), second(work, 1);
  const pthread_t workers[2] = {first.native_handle(), second.native_handle()};
  std::uint64_t signals = 0;
  std::thread signaller([&] {
    while (running.load() != 0) {
      for (pthread_t t : workers) if (pthread_kill(t, SIGUSR1) == 0) ++signals;
    }
  });
  first.join();
  second.join();
  signaller.join();

  std::vector<void*> everywhere;
  std::uint64_t in_bins = 0, hits = 0, frees = 0;
  for (unsigned cpu = 0; cpu < cpus; ++cpu) {
    const cache_bin& bin = sets[cpu].bins[test_class];
    CHECK(bin.count <= capacity);
    everywhere.insert(everywhere.end(), bin.slots, bin.slots + bin.count);
    in_bins += bin.count;
    hits += bin.hits;
    frees += bin.frees;
  }
  for (const worker_state& w : state) everywhere.insert(everywhere.end(), w.held.begin(), w.held.end());
  std::sort(everywhere.begin(), everywhere.end());
  CHECK(everywhere.size() == objects);
  CHECK(std::adjacent_find(everywhere.begin(), everywhere.end()) == everywhere.end());
  std::vector<void*> expected;
  for (unsigned i = 0; i < objects; ++i) expected.push_back(token(i));
  CHECK(everywhere == expected);

  const std::uint64_t pushes = state[0].pushes + state[1].pushes, pops = state[0].pops + state[1].pops;
  CHECK(in_bins == pushes - pops);
  CHECK(hits >= pops);
  CHECK(frees >= pushes);
  unsigned distinct = 0;
  for (unsigned c = 0; c < rseq::max_cpus; ++c) distinct += state[0].cpus_seen[c] || state[1].cpus_seen[c];
  MESSAGE("pushes " << pushes << ", pops " << pops << ", signals " << signals << ", CPU changes seen "
          << state[0].cpu_changes + state[1].cpu_changes << " on " << distinct << " CPUs, restarted sections counted twice: "
          << (hits - pops) + (frees - pushes));
  if (allowed_cpus.size() > 1) CHECK(distinct > 1);
}
