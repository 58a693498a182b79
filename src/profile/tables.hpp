// What the sampler keeps per allocation stack, and the copy of it that the
// writers turn into files. Estimates are already unbiased: each sample adds
// 1/p objects and size/p bytes, p = 1 - exp(-size/rate) being the chance that
// an allocation of that size is sampled.
#pragma once
#include <cstddef>
#include <cstdint>

namespace pcm::profile {

struct site {
  std::uint32_t stack = 0;      // stack depot id (0: unused slot)
  std::uint32_t live_samples = 0;
  double alloc_count = 0, alloc_bytes = 0;   // everything allocated since start
  double live_count = 0, live_bytes = 0;     // not yet freed
  double peak_count = 0, peak_bytes = 0;     // live at the last heap peak
};

struct snapshot {
  const site* sites;
  std::size_t count;
  std::uint64_t rate;
  double live_bytes, peak_bytes, alloc_bytes;   // totals
  std::uint64_t samples, dropped;               // samples taken; not recorded (tables full)
};

// writer.cpp: every file of one dump. Returns 0, or -1 with errno set.
int write_profiles(const char* prefix, const snapshot& s) noexcept;

}  // namespace pcm::profile
