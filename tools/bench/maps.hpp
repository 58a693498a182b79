// tools/bench/maps: shared between the workload runner (maps.cpp) and the
// driver (maps_driver.cpp). The variants are data: their names are what the
// command line and the result lines use.
#pragma once
#include "bench_common.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace maps {

enum class workload { requests, churn };

enum class variant {
  new_delete,            // std::unordered_map<std::string, std::string>: the process's operator new
  unsynchronized_pool,   // std::pmr::unsynchronized_pool_resource, one per thread
  synchronized_pool,     // std::pmr::synchronized_pool_resource, shared
  monotonic,             // a std::pmr::monotonic_buffer_resource per request over a reused stack buffer
  boost_flat,            // boost::unordered_flat_map: one per thread, clear()ed after each request
  absl_node,             // absl::node_hash_map, new/delete
  map_pool,              // pcm::map_pool of pcm::recycling_map (nodes and strings kept)
  map_pool_plain,        // pcm::map_pool of a plain std::pmr::unordered_map (cleared on return)
  node_map,              // pcm::node_map: requests as monotonic, churn on the global resource
  node_map_pool,         // pcm::map_pool of pcm::node_map
  local_resource,        // pcm::pmr::local_resource, one per thread
  arena_resource,        // pcm::pmr::arena_resource on the global heap, shared
  scoped_resource,       // pcm::pmr::scoped_resource, released after each request
  pcm_allocator,         // pcm::allocator for the map and its strings
  map_allocator,         // pcm::map_allocator on the global resource
  floor,                 // no map: only hashing and copying the request's data (what no map can avoid)
  count
};

// A third-party map a variant measures: compiled in only where meson found it.
enum class baseline_library { none, boost, absl };

struct variant_description {
  const char* name;
  bool needs_pcm;                  // only in maps_pcm
  baseline_library library;        // the third-party map it needs, if any
  bool churn;                      // runs the churn workload too
  const char* what;                // what the tables call it
  const char* churn_what;          // under churn, when that differs (else nullptr)
};

inline constexpr baseline_library no_library = baseline_library::none;
inline constexpr variant_description variant_table[] = {
    {"new_delete", false, no_library, true, "new/delete", nullptr},
    {"unsynchronized_pool", false, no_library, true, "std unsynchronized_pool_resource", nullptr},
    {"synchronized_pool", false, no_library, true, "std synchronized_pool_resource", nullptr},
    {"monotonic", false, no_library, false, "std monotonic_buffer_resource per request", nullptr},
    {"boost_flat", false, baseline_library::boost, true, "boost flat_map, reused + clear()", "boost flat_map"},
    {"absl_node", false, baseline_library::absl, true, "absl node_hash_map", nullptr},
    {"map_pool", true, no_library, true, "pcm map_pool (recycling_map)", "pcm map_pool (one pooled map per thread)"},
    {"map_pool_plain", true, no_library, false, "pcm map_pool (plain pmr map)", nullptr},
    {"node_map", true, no_library, true, "pcm node_map, monotonic per request", "pcm node_map, global resource"},
    {"node_map_pool", true, no_library, true, "pcm map_pool (node_map)", "pcm map_pool (node_map, one per thread)"},
    {"local_resource", true, no_library, true, "pcm local_resource", nullptr},
    {"arena_resource", true, no_library, true, "pcm arena_resource", nullptr},
    {"scoped_resource", true, no_library, false, "pcm scoped_resource per request", nullptr},
    {"pcm_allocator", true, no_library, true, "pcm::allocator", nullptr},
    {"map_allocator", true, no_library, true, "pcm map_allocator", nullptr},
    {"floor", false, no_library, false, "floor: hash + copy the data, no map", nullptr},
};
static_assert(sizeof variant_table / sizeof variant_table[0] == static_cast<std::size_t>(variant::count));

inline const variant_description& variant_info(variant v) { return variant_table[static_cast<int>(v)]; }

// Why v is not in this build ("meson did not find ..."), or "" when it is
// (both binaries are built alike).
std::string not_built(variant v);

// Whether this binary can run v (maps_pcm runs all that were built).
bool available(variant v);

// One measured run; prints one result line (bench::report) and returns the exit status.
int run_one(workload w, variant v, unsigned threads, std::uint64_t total, std::uint64_t keys);

// The memory mode (maps_memory.cpp, only in maps_pcm): for each size N, the
// bytes per element that pcm::node_map, absl::node_hash_map and
// std::unordered_map ask their allocators for, one `maps-memory` line each.
int memory_report(const std::vector<std::uint64_t>& sizes);

}  // namespace maps
