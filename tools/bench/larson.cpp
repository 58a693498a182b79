// Server simulation in the manner of Larson and Krishnan: each of T chains owns an
// array of live blocks and keeps replacing a random one; every OPS/(T*GENERATIONS)
// replacements the array passes to a fresh thread, so blocks die on another thread
// than the one that made them. Main fills the arrays first and frees what is left.
#include "bench_common.hpp"

#include <condition_variable>
#include <mutex>

namespace {

struct chain {
  unsigned index = 0;
  unsigned generation = 0;
  std::vector<char*> slots;  // the vector itself is made once, outside the timed churn
  uint64_t ops_left = 0;
  uint64_t checksum = 0;
  std::thread worker;
};

struct settings {
  uint64_t generations, min_size, max_size;
};

// A block records its tag in its first word; the tag is a function of the chain's
// own sequence, so the sum of freed tags does not depend on scheduling.
char* make_block(bench::rng& random, uint64_t stamp, const settings& config) {
  size_t size = random.between(config.min_size, config.max_size);
  char* block = static_cast<char*>(std::malloc(size));
  uint64_t tag = stamp * 0x9E3779B97F4A7C15ull + size;
  std::memcpy(block, &tag, sizeof tag);
  block[size - 1] = static_cast<char>(tag);
  return block;
}

uint64_t drop_block(char* block) {
  uint64_t tag;
  std::memcpy(&tag, block, sizeof tag);
  std::free(block);
  return tag;
}

void run_generation(chain& state, const settings& config) {
  bench::rng random(state.index * 1000003ull + state.generation);
  uint64_t ops = bench::share(state.ops_left, static_cast<unsigned>(config.generations - state.generation), 0);
  uint64_t stamp = (static_cast<uint64_t>(state.generation) << 40) | (static_cast<uint64_t>(state.index) << 56);
  for (uint64_t i = 0; i < ops; ++i) {
    size_t victim = random.below(state.slots.size());
    state.checksum += drop_block(state.slots[victim]);
    state.slots[victim] = make_block(random, stamp + i, config);
  }
  state.ops_left -= ops;
}

}  // namespace

int main(int argc, char** argv) {
  auto args = bench::parse_args(argc, argv, "THREADS OPS [SLOTS=1000] [GENERATIONS=10] [MIN=16] [MAX=1000]", 2,
                                {1, 0, 1000, 10, 16, 1000});
  unsigned threads = static_cast<unsigned>(args[0]);
  uint64_t total_ops = args[1];
  size_t slot_count = args[2] ? args[2] : 1;
  settings config{args[3] ? args[3] : 1, args[4] < 8 ? 8 : args[4], 0};
  config.max_size = args[5] < config.min_size ? config.min_size : args[5];

  std::vector<chain> chains(threads);
  bench::stopwatch clock;
  for (unsigned c = 0; c < threads; ++c) {
    chains[c].index = c;
    chains[c].ops_left = bench::share(total_ops, threads, c);
    chains[c].slots.resize(slot_count);
    bench::rng random(0xC0FFEEull + c);
    for (size_t s = 0; s < slot_count; ++s) chains[c].slots[s] = make_block(random, s, config);
  }

  // A finished generation reports here; main joins its thread and starts the next,
  // so every thread has exited (and flushed what it caches) before the run ends.
  std::mutex lock;
  std::condition_variable changed;
  std::vector<unsigned> finished;
  auto start = [&](chain& state) {
    state.worker = std::thread([&state, &config, &lock, &changed, &finished] {
      run_generation(state, config);
      std::lock_guard guard(lock);
      finished.push_back(state.index);
      changed.notify_one();
    });
  };
  for (auto& state : chains) start(state);
  for (unsigned running = threads; running > 0;) {
    std::unique_lock guard(lock);
    changed.wait(guard, [&] { return !finished.empty(); });
    unsigned index = finished.back();
    finished.pop_back();
    guard.unlock();
    chain& state = chains[index];
    state.worker.join();
    if (++state.generation < config.generations) start(state);
    else --running;
  }

  uint64_t checksum = 0;
  for (auto& state : chains) {
    checksum += state.checksum;
    for (char* block : state.slots) checksum += drop_block(block);
  }
  bench::report("larson", threads, clock.seconds(), total_ops, checksum);
  return 0;
}
