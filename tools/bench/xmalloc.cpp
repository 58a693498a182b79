// Producer/consumer in the manner of xmalloc-test: producers allocate blocks in
// batches and push the batches into bounded queues; consumers free them, so nearly
// every free is remote. T/2 producers and T-T/2 consumers; with one thread the
// producer and consumer phases alternate, a queue-full at a time.
#include "bench_common.hpp"

#include <condition_variable>
#include <mutex>

namespace {

constexpr size_t batch_size = 64, queue_capacity = 16;
constexpr size_t min_size = 8, max_size = 512;

struct batch {
  size_t count;
  char* blocks[batch_size];
};

// A bounded ring of batches; a null batch tells a consumer one producer is done.
class queue {
public:
  void push(batch* item) {
    std::unique_lock guard(lock_);
    not_full_.wait(guard, [&] { return size_ < queue_capacity; });
    ring_[(head_ + size_++) % queue_capacity] = item;
    not_empty_.notify_one();
  }
  batch* pop() {
    std::unique_lock guard(lock_);
    not_empty_.wait(guard, [&] { return size_ > 0; });
    batch* item = ring_[head_];
    head_ = (head_ + 1) % queue_capacity;
    --size_;
    not_full_.notify_one();
    return item;
  }

private:
  std::mutex lock_;
  std::condition_variable not_full_, not_empty_;
  batch* ring_[queue_capacity] = {};
  size_t head_ = 0, size_ = 0;
};

// The batch header is itself a heap block, freed by the consumer too.
batch* produce(bench::rng& random, size_t count) {
  auto* item = static_cast<batch*>(std::malloc(sizeof(batch)));
  item->count = count;
  for (size_t i = 0; i < count; ++i) {
    size_t size = random.between(min_size, max_size);
    char* block = static_cast<char*>(std::malloc(size));
    uint64_t tag = random.next() ^ size;
    std::memcpy(block, &tag, sizeof tag);
    item->blocks[i] = block;
  }
  return item;
}

uint64_t consume(batch* item) {
  uint64_t sum = 0;
  for (size_t i = 0; i < item->count; ++i) {
    uint64_t tag;
    std::memcpy(&tag, item->blocks[i], sizeof tag);
    sum += tag;
    std::free(item->blocks[i]);
  }
  std::free(item);
  return sum;
}

uint64_t single_thread(uint64_t blocks) {
  bench::rng random(0x5EEDull);
  batch* pending[queue_capacity];
  uint64_t sum = 0;
  while (blocks > 0) {
    size_t filled = 0;
    for (; filled < queue_capacity && blocks > 0; ++filled) {
      size_t count = blocks < batch_size ? blocks : batch_size;
      pending[filled] = produce(random, count);
      blocks -= count;
    }
    for (size_t i = 0; i < filled; ++i) sum += consume(pending[i]);
  }
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  auto args = bench::parse_args(argc, argv, "THREADS BLOCKS", 2, {1, 0});
  unsigned threads = static_cast<unsigned>(args[0]);
  uint64_t total = args[1];
  bench::stopwatch clock;
  uint64_t checksum = 0;
  if (threads == 1) {
    checksum = single_thread(total);
  } else {
    unsigned producers = threads / 2, consumers = threads - producers;
    std::vector<queue> queues(consumers);
    std::vector<uint64_t> sums(consumers);
    bench::run_threads(threads, [&](unsigned index) {
      if (index < producers) {
        // Seeded per producer, and each producer's blocks are counted whichever
        // consumer frees them: the checksum is a sum, so scheduling cannot change it.
        bench::rng random(0x5EEDull + index);
        uint64_t blocks = bench::share(total, producers, index);
        for (size_t turn = index; blocks > 0; ++turn) {
          size_t count = blocks < batch_size ? blocks : batch_size;
          queues[turn % consumers].push(produce(random, count));
          blocks -= count;
        }
        for (auto& target : queues) target.push(nullptr);
      } else {
        unsigned consumer = index - producers;
        uint64_t sum = 0;
        for (unsigned done = 0; done < producers;) {
          batch* item = queues[consumer].pop();
          if (item) sum += consume(item);
          else ++done;
        }
        sums[consumer] = sum;
      }
    });
    for (uint64_t sum : sums) checksum += sum;
  }
  bench::report("xmalloc", threads, clock.seconds(), total, checksum);
  return 0;
}
