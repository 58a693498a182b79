// The maps benchmark's memory mode (`maps memory [--sizes 1000,1000000]`, and
// part of the comparison): how many bytes per element a node-based map of
// <uint64_t, uint64_t> asks its allocator for, pcm::node_map against
// absl::node_hash_map and std::unordered_map. Built into maps_pcm only (it
// needs node_map); absl only where meson found it.
//
// Requested bytes are the sizes each map passes to its allocator (nodes and
// bucket or control arrays), counted live after the inserts: no malloc
// rounding, no block headers, not the map object itself. That compares the
// maps' layouts, not the allocators under them.
#include "maps.hpp"

#include <algorithm>
#include <cstdio>
#include <memory_resource>
#include <unordered_map>

#ifdef MAPS_WITH_ABSL
#include <absl/container/node_hash_map.h>
#include <absl/hash/hash.h>
#endif
#include <pcmalloc/node_map.hpp>

namespace maps {
namespace {

// Counts what passes through it to std::pmr::new_delete_resource().
class counting_resource final : public std::pmr::memory_resource {
public:
  std::size_t live_bytes = 0, live_blocks = 0, peak_bytes = 0;

private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    void* p = std::pmr::new_delete_resource()->allocate(bytes, alignment);
    live_bytes += bytes;
    ++live_blocks;
    peak_bytes = std::max(peak_bytes, live_bytes);
    return p;
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    live_bytes -= bytes;
    --live_blocks;
    std::pmr::new_delete_resource()->deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }
};

// A std-style allocator over a counting_resource, for maps that take no
// std::pmr::memory_resource (every rebound copy counts into the same one).
template <class T>
class counting_allocator {
public:
  using value_type = T;
  explicit counting_allocator(counting_resource* resource) noexcept : resource_(resource) {}
  template <class U>
  counting_allocator(const counting_allocator<U>& other) noexcept : resource_(other.resource()) {}

  T* allocate(std::size_t n) { return static_cast<T*>(resource_->allocate(n * sizeof(T), alignof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { resource_->deallocate(p, n * sizeof(T), alignof(T)); }
  counting_resource* resource() const noexcept { return resource_; }

  template <class U>
  bool operator==(const counting_allocator<U>& other) const noexcept {
    return resource_ == other.resource();
  }

private:
  counting_resource* resource_;
};

using number_pair = std::pair<const std::uint64_t, std::uint64_t>;
using counted_std_map = std::unordered_map<std::uint64_t, std::uint64_t, std::hash<std::uint64_t>,
                                           std::equal_to<std::uint64_t>, counting_allocator<number_pair>>;
#ifdef MAPS_WITH_ABSL
using counted_absl_map = absl::node_hash_map<std::uint64_t, std::uint64_t, absl::Hash<std::uint64_t>, std::equal_to<>,
                                             counting_allocator<number_pair>>;
#endif

// Inserts n distinct keys (value = key) into a map built on `counter`, no
// reserve(), and prints its result line. The keys are splitmix64 outputs of
// one generator: a bijection of distinct states, so never a repeat.
template <class Map, class Allocator>
bool measure(const char* name, std::uint64_t n, Allocator make_allocator) {
  counting_resource counter;
  bool complete = true;
  {
    Map map(make_allocator(&counter));
    bench::rng random(0x3E3041);
    std::uint64_t inserted = 0, found = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
      std::uint64_t key = random.next();
      map.emplace(key, key);
      inserted += key;
    }
    for (const auto& [key, value] : map) {
      found += key;
      complete = complete && value == key;
    }
    complete = complete && map.size() == n && found == inserted;
    std::printf("maps-memory map=%s elements=%llu bytes_per_element=%.2f live_bytes=%zu live_blocks=%zu "
                "peak_bytes=%zu\n",
                name, static_cast<unsigned long long>(n), n ? double(counter.live_bytes) / double(n) : 0.0,
                counter.live_bytes, counter.live_blocks, counter.peak_bytes);
  }
  if (!complete) std::fprintf(stderr, "maps: memory: %s does not hold the %llu keys inserted\n", name,
                              static_cast<unsigned long long>(n));
  if (counter.live_bytes != 0) std::fprintf(stderr, "maps: memory: %s leaked %zu bytes\n", name, counter.live_bytes);
  return complete && counter.live_bytes == 0;
}

}  // namespace

int memory_report(const std::vector<std::uint64_t>& sizes) {
  std::printf("# memory: N distinct random uint64 keys (value = key) inserted, no reserve(); bytes_per_element =\n"
              "# live requested bytes / N: what the map asked its allocator for (nodes, bucket arrays), no malloc\n"
              "# rounding or headers, not the map object itself; peak_bytes includes the last rehash's old array\n");
  const auto resource = [](counting_resource* counter) { return static_cast<std::pmr::memory_resource*>(counter); };
  const auto allocator = [](counting_resource* counter) { return counting_allocator<number_pair>(counter); };
  bool ok = true;
  for (std::uint64_t n : sizes) {
    ok = measure<pcm::node_map<std::uint64_t, std::uint64_t>>("pcm::node_map", n, resource) && ok;
#ifdef MAPS_WITH_ABSL
    ok = measure<counted_absl_map>("absl::node_hash_map", n, allocator) && ok;
#endif
    ok = measure<counted_std_map>("std::unordered_map", n, allocator) && ok;
  }
  if (std::string why = not_built(variant::absl_node); !why.empty())
    std::printf("# absl::node_hash_map: not built, %s\n", why.c_str());
  std::fflush(stdout);
  return ok ? 0 : 1;
}

}  // namespace maps
