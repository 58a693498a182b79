// Hash maps on every memory strategy: "requests" (per request a string map of
// five headers, one lookup, dropped) and "churn" (a long-lived map<u64,u64>
// under random inserts and erases). One variant runs per process, because
// new/delete differs by process: this file is built twice, as `maps` (never
// linked to pcmalloc: glibc, or mimalloc under LD_PRELOAD) and `maps_pcm`
// (linked to pcmalloc, which then is its malloc, with pcmalloc's variants).
// Other maps on the same workloads: pcm::node_map, and where meson found them
// boost::unordered_flat_map and absl::node_hash_map (MAPS_WITH_BOOST/_ABSL).
// maps_driver.cpp runs the variants interleaved and prints the tables.
#include "maps.hpp"

#include <array>
#include <barrier>
#include <cstring>
#include <ctime>
#include <memory_resource>
#include <string>
#include <string_view>
#include <unordered_map>

#ifdef MAPS_WITH_BOOST
#include <boost/unordered/unordered_flat_map.hpp>
#endif
#ifdef MAPS_WITH_ABSL
#include <absl/container/node_hash_map.h>
#endif
#ifdef MAPS_WITH_PCM
#include <pcmalloc/allocator.hpp>
#include <pcmalloc/map_pool.hpp>
#include <pcmalloc/node_map.hpp>
#include <pcmalloc/pmr.hpp>
#endif

namespace maps {
namespace {

// ---- the request data -------------------------------------------------------

constexpr std::size_t value_length = 40;
constexpr std::array<std::string_view, 5> header_names = {"host", "user-agent", "accept-encoding", "content-type",
                                                          "x-request-identifier"};
constexpr std::size_t value_count = 4096;

// Values are drawn from a table made before the clock starts: the generator
// should not cost more than the map. Every variant reads the same values.
struct request_values {
  std::array<char, value_length> text[value_count];
  request_values() {
    bench::rng random(0xF00D);
    for (auto& value : text)
      for (char& c : value) c = static_cast<char>('a' + random.below(26));
  }
  std::string_view pick(bench::rng& random) const { return {text[random.below(value_count)].data(), value_length}; }
};
const request_values& values() {
  static const request_values table;
  return table;
}

// The same hash and equality for every variant, on string_view: any string type
// of any allocator hashes alike, and the lookup by header name allocates nothing.
// Not noexcept on purpose: libstdc++ then caches each node's hash code, as it
// does for std::hash<std::string> (a map that does not rehashes keys while it
// walks a bucket, and extract() hashes again).
struct text_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
struct text_equal {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const noexcept { return a == b; }
};

// One request on a fresh (or recycled, empty) map: five pairs built from the
// request's data, one lookup. Returns a byte of the value found.
template <class Map>
std::uint64_t handle_request(Map& headers, bench::rng& random, std::uint64_t r) {
  const request_values& data = values();
  for (std::string_view name : header_names) headers.emplace(name, data.pick(random));
  auto found = headers.find(header_names[random.below(header_names.size())]);
  return found == headers.end() ? 0 : static_cast<unsigned char>(found->second[r % value_length]);
}

// ---- variants ---------------------------------------------------------------

using std_map = std::unordered_map<std::string, std::string, text_hash, text_equal>;
using pmr_map = std::pmr::unordered_map<std::pmr::string, std::pmr::string, text_hash, text_equal>;
using std_numbers = std::unordered_map<std::uint64_t, std::uint64_t>;
using pmr_numbers = std::pmr::unordered_map<std::uint64_t, std::uint64_t>;
#ifdef MAPS_WITH_BOOST
using boost_flat_map = boost::unordered_flat_map<std::string, std::string, text_hash, text_equal>;
using boost_flat_numbers = boost::unordered_flat_map<std::uint64_t, std::uint64_t>;
#endif
#ifdef MAPS_WITH_ABSL
using absl_node_map = absl::node_hash_map<std::string, std::string, text_hash, text_equal>;
using absl_node_numbers = absl::node_hash_map<std::uint64_t, std::uint64_t>;
#endif
#ifdef MAPS_WITH_PCM
using node_map_strings = pcm::node_map<std::pmr::string, std::pmr::string, text_hash, text_equal>;
using node_map_numbers = pcm::node_map<std::uint64_t, std::uint64_t>;
#endif

// What a variant needs shared between its threads (built once per process).
struct shared_state {
  std::pmr::synchronized_pool_resource synchronized_pool;
#ifdef MAPS_WITH_PCM
  pcm::pmr::arena_resource arena_resource;   // the global heap through its per-CPU caches
  pcm::map_pool<pcm::recycling_map<pmr_map>> pool;
  pcm::map_pool<pmr_map> plain_pool;
  pcm::map_pool<pmr_numbers> number_pool;
  pcm::map_pool<node_map_strings> node_pool;
  pcm::map_pool<node_map_numbers> node_number_pool;
#endif
};

// A per-thread loop: `serve(count)` handles `count` requests (or runs the churn).
using worker = std::function<std::uint64_t(std::uint64_t count)>;

template <class MakeMap>
worker request_loop(bench::rng& random, MakeMap make) {
  return [&random, make](std::uint64_t count) {
    std::uint64_t sum = 0;
    for (std::uint64_t r = 0; r < count; ++r) sum += make(r);
    return sum;
  };
}

// A new map per request, built from `args` (a resource, or nothing).
template <class Map, class... Args>
worker fresh_map_loop(bench::rng& random, Args... args) {
  return request_loop(random, [&random, args...](std::uint64_t r) {
    Map headers(args...);
    return handle_request(headers, random, r);
  });
}

// A new map per request on a monotonic buffer over a buffer on the stack,
// reused by every request (4 KiB: never reaches upstream with std's map).
template <class Map>
worker monotonic_loop(bench::rng& random) {
  return request_loop(random, [&random](std::uint64_t r) {
    alignas(64) std::byte buffer[4096];
    std::pmr::monotonic_buffer_resource request_memory(buffer, sizeof buffer);
    Map headers(&request_memory);
    return handle_request(headers, random, r);
  });
}

// One map per thread for all its requests, clear()ed after each (it keeps
// its buckets; the strings go back to new/delete).
template <class Map>
worker reused_map_loop(bench::rng& random) {
  return request_loop(random, [&random, headers = std::make_shared<Map>()](std::uint64_t r) {
    std::uint64_t found = handle_request(*headers, random, r);
    headers->clear();
    return found;
  });
}

// A map from a shared map_pool per request.
template <class Pool>
worker pool_loop(bench::rng& random, Pool& pool) {
  return request_loop(random, [&random, pool = &pool](std::uint64_t r) {
    auto headers = pool->acquire();
    return handle_request(*headers, random, r);
  });
}

// Builds the per-thread request loop of `variant`; `random` and `local` outlive it.
struct thread_context {
  bench::rng random;
  std::unique_ptr<std::pmr::unsynchronized_pool_resource> unsynchronized_pool;
#ifdef MAPS_WITH_PCM
  std::unique_ptr<pcm::pmr::local_resource> local;
  std::unique_ptr<pcm::pmr::scoped_resource> scoped;
#endif
  explicit thread_context(std::uint64_t seed) : random(seed) {}
};

#ifdef MAPS_WITH_PCM
template <class T>
using pcm_string = std::basic_string<char, std::char_traits<char>, T>;
using pcm_allocator_map =
    std::unordered_map<pcm_string<pcm::allocator<char>>, pcm_string<pcm::allocator<char>>, text_hash, text_equal,
                       pcm::allocator<std::pair<const pcm_string<pcm::allocator<char>>, pcm_string<pcm::allocator<char>>>>>;
using map_allocator_map =
    std::unordered_map<pcm_string<pcm::map_allocator<char>>, pcm_string<pcm::map_allocator<char>>, text_hash,
                       text_equal,
                       pcm::map_allocator<std::pair<const pcm_string<pcm::map_allocator<char>>,
                                                    pcm_string<pcm::map_allocator<char>>>>>;
using pcm_allocator_numbers = std::unordered_map<std::uint64_t, std::uint64_t, std::hash<std::uint64_t>,
                                                 std::equal_to<std::uint64_t>,
                                                 pcm::allocator<std::pair<const std::uint64_t, std::uint64_t>>>;
#endif

worker requests_worker(variant v, shared_state& shared, thread_context& t) {
  bench::rng& random = t.random;
  switch (v) {
    case variant::new_delete: return fresh_map_loop<std_map>(random);
    case variant::unsynchronized_pool:
      t.unsynchronized_pool = std::make_unique<std::pmr::unsynchronized_pool_resource>();
      return fresh_map_loop<pmr_map>(random, static_cast<std::pmr::memory_resource*>(t.unsynchronized_pool.get()));
    case variant::synchronized_pool:
      return fresh_map_loop<pmr_map>(random, static_cast<std::pmr::memory_resource*>(&shared.synchronized_pool));
    case variant::monotonic:
      // The fastest std option (never reaches upstream here).
      return monotonic_loop<pmr_map>(random);
    case variant::floor:
      // What every variant does besides keeping a map: draw the data, hash
      // the five names and the one looked up, copy the five values. Not a way
      // to serve requests; the bound on what a faster map could gain.
      return request_loop(random, [&random](std::uint64_t r) {
        const request_values& data = values();
        char copies[header_names.size()][value_length];
        std::size_t hashes = 0;
        for (std::size_t i = 0; i < header_names.size(); ++i) {
          hashes += text_hash()(header_names[i]);
          std::memcpy(copies[i], data.pick(random).data(), value_length);
        }
        std::size_t wanted = random.below(header_names.size());
        hashes += text_hash()(header_names[wanted]);
        bench::escape(&hashes);
        bench::escape(&copies);
        return std::uint64_t(static_cast<unsigned char>(copies[wanted][r % value_length]));
      });
#ifdef MAPS_WITH_BOOST
    case variant::boost_flat: return reused_map_loop<boost_flat_map>(random);
#endif
#ifdef MAPS_WITH_ABSL
    case variant::absl_node: return fresh_map_loop<absl_node_map>(random);
#endif
#ifdef MAPS_WITH_PCM
    case variant::map_pool: return pool_loop(random, shared.pool);
    case variant::map_pool_plain: return pool_loop(random, shared.plain_pool);
    case variant::node_map:
      // Map against map on the same storage as monotonic.
      return monotonic_loop<node_map_strings>(random);
    case variant::node_map_pool: return pool_loop(random, shared.node_pool);
    case variant::local_resource:
      t.local = std::make_unique<pcm::pmr::local_resource>();
      return fresh_map_loop<pmr_map>(random, static_cast<std::pmr::memory_resource*>(t.local.get()));
    case variant::arena_resource:
      return fresh_map_loop<pmr_map>(random, static_cast<std::pmr::memory_resource*>(&shared.arena_resource));
    case variant::scoped_resource:
      t.scoped = std::make_unique<pcm::pmr::scoped_resource>();
      return request_loop(random, [&random, resource = t.scoped.get()](std::uint64_t r) {
        std::uint64_t found;
        {
          pmr_map headers(resource);
          found = handle_request(headers, random, r);
        }
        resource->release();
        return found;
      });
    case variant::pcm_allocator: return fresh_map_loop<pcm_allocator_map>(random);
    case variant::map_allocator:
      // Nodes and strings on the global heap (strings through the default
      // resource, which main() made pcmalloc's); bucket arrays cache-aligned.
      return fresh_map_loop<map_allocator_map>(random, static_cast<std::pmr::memory_resource*>(pcm::pmr::global_resource()));
#endif
    default:
      return {};
  }
}

template <class Map, class... Args>
worker churn_loop(bench::rng& random, std::uint64_t keys, Args... args) {
  return [&random, keys, args...](std::uint64_t ops) {
    Map map(args...);
    return bench::churn_map(map, random, ops, keys);
  };
}

// One map from `pool` per thread for the whole run.
template <class Pool>
worker pooled_churn_loop(bench::rng& random, std::uint64_t keys, Pool& pool) {
  return [&random, keys, pool = &pool](std::uint64_t ops) {
    auto map = pool->acquire();
    return bench::churn_map(*map, random, ops, keys);
  };
}

worker churn_worker(variant v, shared_state& shared, thread_context& t, std::uint64_t keys) {
  bench::rng& random = t.random;
  switch (v) {
    case variant::new_delete: return churn_loop<std_numbers>(random, keys);
    case variant::unsynchronized_pool:
      t.unsynchronized_pool = std::make_unique<std::pmr::unsynchronized_pool_resource>();
      return churn_loop<pmr_numbers>(random, keys, static_cast<std::pmr::memory_resource*>(t.unsynchronized_pool.get()));
    case variant::synchronized_pool:
      return churn_loop<pmr_numbers>(random, keys, static_cast<std::pmr::memory_resource*>(&shared.synchronized_pool));
#ifdef MAPS_WITH_BOOST
    case variant::boost_flat: return churn_loop<boost_flat_numbers>(random, keys);
#endif
#ifdef MAPS_WITH_ABSL
    case variant::absl_node: return churn_loop<absl_node_numbers>(random, keys);
#endif
#ifdef MAPS_WITH_PCM
    case variant::map_pool: return pooled_churn_loop(random, keys, shared.number_pool);
    case variant::node_map:
      return churn_loop<node_map_numbers>(random, keys,
                                          static_cast<std::pmr::memory_resource*>(pcm::pmr::global_resource()));
    case variant::node_map_pool: return pooled_churn_loop(random, keys, shared.node_number_pool);
    case variant::local_resource:
      t.local = std::make_unique<pcm::pmr::local_resource>();
      return churn_loop<pmr_numbers>(random, keys, static_cast<std::pmr::memory_resource*>(t.local.get()));
    case variant::arena_resource:
      return churn_loop<pmr_numbers>(random, keys, static_cast<std::pmr::memory_resource*>(&shared.arena_resource));
    case variant::pcm_allocator: return churn_loop<pcm_allocator_numbers>(random, keys);
    case variant::map_allocator:
      return churn_loop<pcm::unordered_map<std::uint64_t, std::uint64_t>>(
          random, keys, static_cast<std::pmr::memory_resource*>(pcm::pmr::global_resource()));
#endif
    default:
      return {};
  }
}

#ifdef MAPS_WITH_PCM
template <class Pool>
std::string pool_fields(const Pool& pool, const pcm::map_pool_statistics& before) {
  pcm::map_pool_statistics now = pool.statistics();
  std::uint64_t acquires = now.acquires - before.acquires, misses = now.misses - before.misses;
  char text[320];
  std::snprintf(text, sizeof text,
                "steady_hit_rate=%.6f hit_rate=%.6f fragmentation=%.4f live_bytes=%zu held_bytes=%zu idle=%zu "
                "misses=%llu fallbacks=%llu",
                acquires ? double(acquires - misses) / double(acquires) : 1.0, now.hit_rate(), now.fragmentation(),
                now.live_bytes, now.held_bytes, now.idle, static_cast<unsigned long long>(now.misses),
                static_cast<unsigned long long>(now.fallbacks));
  return text;
}

// Calls f(pool) with the map_pool that variant v takes its maps from under
// workload w; not at all for a variant without a pool.
template <class F>
void with_pool(variant v, workload w, shared_state& shared, F f) {
  const bool requests = w == workload::requests;
  if (v == variant::map_pool) requests ? f(shared.pool) : f(shared.number_pool);
  if (v == variant::map_pool_plain) f(shared.plain_pool);
  if (v == variant::node_map_pool) requests ? f(shared.node_pool) : f(shared.node_number_pool);
}
#endif

// CPU time of all threads: on a shared machine it leaves out the time the
// threads waited for a core, which wall time does not.
double process_cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + double(t.tv_nsec) * 1e-9;
}

}  // namespace

std::string not_built(variant v) {
  switch (variant_info(v).library) {
#ifndef MAPS_WITH_BOOST
    case baseline_library::boost: return "meson did not find boost (libboost1.81-dev)";
#endif
#ifndef MAPS_WITH_ABSL
    case baseline_library::absl: return "meson did not find abseil (libabsl-dev)";
#endif
    default: return {};
  }
}

bool available(variant v) {
#ifdef MAPS_WITH_PCM
  constexpr bool with_pcm = true;
#else
  constexpr bool with_pcm = false;
#endif
  return (with_pcm || !variant_info(v).needs_pcm) && not_built(v).empty();
}

// One measured run: each thread warms up on its own data (requests: a twentieth
// of its share, at most 20k; churn: none), then all start the clock together.
int run_one(workload w, variant v, unsigned threads, std::uint64_t total, std::uint64_t keys) {
  if (std::string why = not_built(v); !why.empty()) {
    std::fprintf(stderr, "maps: variant %s was not built: %s\n", variant_info(v).name, why.c_str());
    return 2;
  }
  if (!available(v)) {
    std::fprintf(stderr, "maps: variant %s needs maps_pcm (the build linked to pcmalloc)\n", variant_info(v).name);
    return 2;
  }
  if (w == workload::churn && !variant_info(v).churn) {
    std::fprintf(stderr, "maps: variant %s does not run churn\n", variant_info(v).name);
    return 2;
  }
#ifdef MAPS_WITH_PCM
  if (v == variant::map_allocator) pcm::pmr::make_default();
#endif
  shared_state shared;
  std::vector<std::uint64_t> sums(threads);
  std::uint64_t warmup_each = w == workload::requests ? std::min<std::uint64_t>(total / threads / 20, 20000) : 0;
#ifdef MAPS_WITH_PCM
  pcm::map_pool_statistics before{};
#endif
  bench::stopwatch* clock = nullptr;
  double seconds = 0, cpu_start = 0, cpu_seconds = 0;
  std::barrier start(threads, [&]() noexcept {
#ifdef MAPS_WITH_PCM
    with_pool(v, w, shared, [&](auto& pool) { before = pool.statistics(); });
#endif
    cpu_start = process_cpu_seconds();
    clock = new bench::stopwatch;
  });
  std::barrier finish(threads, [&]() noexcept {
    seconds = clock->seconds();
    cpu_seconds = process_cpu_seconds() - cpu_start;
  });
  bench::run_threads(threads, [&](unsigned i) {
    thread_context context(0x5EEDull + i);
    worker work = w == workload::requests ? requests_worker(v, shared, context)
                                          : churn_worker(v, shared, context, keys);
    if (warmup_each) {
      // Warm-up draws from its own generator so the measured part is the same
      // sequence whatever the warm-up size.
      bench::rng measured = context.random;
      context.random = bench::rng(0xBADull + i);
      std::uint64_t unused = work(warmup_each);
      bench::escape(&unused);
      context.random = measured;
    }
    start.arrive_and_wait();
    sums[i] = work(bench::share(total, threads, i));
    finish.arrive_and_wait();
  });
  delete clock;
  std::uint64_t checksum = 0;
  for (std::uint64_t s : sums) checksum += s;
  std::string extra = std::string("variant=") + variant_info(v).name;
  char ns[64];
  std::snprintf(ns, sizeof ns, " ns_per_op=%.2f cpu_ns_per_op=%.2f", seconds * 1e9 / double(total ? total : 1),
                cpu_seconds * 1e9 / double(total ? total : 1));
  extra += ns;
#ifdef MAPS_WITH_PCM
  with_pool(v, w, shared, [&](auto& pool) { extra += " " + pool_fields(pool, before); });
#endif
  bench::report(w == workload::requests ? "maps-requests" : "maps-churn", threads, seconds, total, checksum, extra);
  return 0;
}

}  // namespace maps
