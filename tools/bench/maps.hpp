// tools/bench/maps: shared between the workload runner (maps.cpp) and the
// driver (maps_driver.cpp). The variants are data: their names are what the
// command line and the result lines use.
#pragma once
#include "bench_common.hpp"

#include <cstdint>
#include <functional>
#include <memory>

namespace maps {

enum class workload { requests, churn };

enum class variant {
  new_delete,            // std::unordered_map<std::string, std::string>: the process's operator new
  unsynchronized_pool,   // std::pmr::unsynchronized_pool_resource, one per thread
  synchronized_pool,     // std::pmr::synchronized_pool_resource, shared
  monotonic,             // a std::pmr::monotonic_buffer_resource per request over a reused stack buffer
  map_pool,              // pcm::map_pool of pcm::recycling_map (nodes and strings kept)
  map_pool_plain,        // pcm::map_pool of a plain std::pmr::unordered_map (cleared on return)
  local_resource,        // pcm::pmr::local_resource, one per thread
  arena_resource,        // pcm::pmr::arena_resource on the global heap, shared
  scoped_resource,       // pcm::pmr::scoped_resource, released after each request
  pcm_allocator,         // pcm::allocator for the map and its strings
  map_allocator,         // pcm::map_allocator on the global resource
  floor,                 // no map: only hashing and copying the request's data (what no map can avoid)
  count
};

struct variant_description {
  const char* name;
  bool needs_pcm;   // only in maps_pcm
  bool churn;       // runs the churn workload too
  const char* what;
};

inline constexpr variant_description variant_table[] = {
    {"new_delete", false, true, "new/delete"},
    {"unsynchronized_pool", false, true, "std unsynchronized_pool_resource"},
    {"synchronized_pool", false, true, "std synchronized_pool_resource"},
    {"monotonic", false, false, "std monotonic_buffer_resource per request"},
    {"map_pool", true, true, "pcm map_pool (recycling_map)"},
    {"map_pool_plain", true, false, "pcm map_pool (plain pmr map)"},
    {"local_resource", true, true, "pcm local_resource"},
    {"arena_resource", true, true, "pcm arena_resource"},
    {"scoped_resource", true, false, "pcm scoped_resource per request"},
    {"pcm_allocator", true, true, "pcm::allocator"},
    {"map_allocator", true, true, "pcm map_allocator"},
    {"floor", false, false, "floor: hash + copy the data, no map"},
};
static_assert(sizeof variant_table / sizeof variant_table[0] == static_cast<std::size_t>(variant::count));

inline const variant_description& variant_info(variant v) { return variant_table[static_cast<int>(v)]; }

// Whether this binary can run v (maps_pcm runs all).
bool available(variant v);

// One measured run; prints one result line (bench::report) and returns the exit status.
int run_one(workload w, variant v, unsigned threads, std::uint64_t total, std::uint64_t keys);

}  // namespace maps
