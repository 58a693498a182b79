#include "options.hpp"

#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "report.hpp"

namespace pcm {

options config;

namespace {

bool parse_bool(const char* v, std::size_t n, bool* out) {
  if ((n == 4 && !std::memcmp(v, "true", 4)) || (n == 1 && *v == '1')) { *out = true; return true; }
  if ((n == 5 && !std::memcmp(v, "false", 5)) || (n == 1 && *v == '0')) { *out = false; return true; }
  return false;
}

bool parse_number(const char* v, std::size_t n, std::uint64_t* out) {
  if (n == 0 || n > 19) return false;
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (v[i] < '0' || v[i] > '9') return false;
    value = value * 10 + std::uint64_t(v[i] - '0');
  }
  *out = value;
  return true;
}

// The keys, as data: name, kind, where the value goes, the largest value.
enum class kind { boolean, number32, number64, text };
struct key_spec {
  const char* name;
  kind type;
  std::size_t offset;
  std::uint64_t max;
};
#define PCM_KEY(name, type, max) key_spec{#name, kind::type, offsetof(options, name), max}
constexpr key_spec keys[] = {
    PCM_KEY(arenas, number32, 4096),
    PCM_KEY(percpu, boolean, 1),
    PCM_KEY(cache_class_bytes, number32, 1u << 30),
    PCM_KEY(cache_max_objects, number32, 4096),
    PCM_KEY(decay_ms, number64, ~0ull),
    PCM_KEY(huge_pages, boolean, 1),
    PCM_KEY(stats_print, boolean, 1),
    PCM_KEY(stats_json, boolean, 1),
    PCM_KEY(limit_bytes, number64, ~0ull),
    PCM_KEY(hardened, boolean, 1),
    PCM_KEY(hardened_delay, number32, 64),
    PCM_KEY(hardened_zero, boolean, 1),
    PCM_KEY(profile, boolean, 1),
    PCM_KEY(profile_rate, number64, 1ull << 40),
    PCM_KEY(profile_file, text, sizeof(options::profile_file) - 1),
    PCM_KEY(profile_signal, number32, 64),
    PCM_KEY(profile_symbols, boolean, 1),
    PCM_KEY(guard_sample_rate, number64, 1ull << 40),
    PCM_KEY(guard, boolean, 1),
    PCM_KEY(quarantine_bytes, number64, ~0ull),
    PCM_KEY(abort_on_error, boolean, 1),
    PCM_KEY(error_exit_code, number32, 255),
    PCM_KEY(leaks, boolean, 1),
    PCM_KEY(report_json, boolean, 1),
    PCM_KEY(stack_depth, number32, 64),
    PCM_KEY(report_file, text, sizeof(options::report_file) - 1),
};
#undef PCM_KEY
static_assert(sizeof(unsigned) == sizeof(std::uint32_t));
static_assert(sizeof keys / sizeof keys[0] <= 64, "options::given has a bit per key");

// One key: false when the key is unknown (*unknown set) or the value bad.
bool set_field(const key_spec& k, const char* v, std::size_t vn, options& o) {
  char* field = reinterpret_cast<char*>(&o) + k.offset;
  std::uint64_t number = 0;
  switch (k.type) {
    case kind::boolean: return parse_bool(v, vn, reinterpret_cast<bool*>(field));
    case kind::number32:
      if (!parse_number(v, vn, &number) || number > k.max) return false;
      *reinterpret_cast<std::uint32_t*>(field) = std::uint32_t(number);
      return true;
    case kind::number64:
      if (!parse_number(v, vn, &number) || number > k.max) return false;
      *reinterpret_cast<std::uint64_t*>(field) = number;
      return true;
    case kind::text:
      if (vn == 0 || vn > k.max) return false;
      std::memcpy(field, v, vn);
      field[vn] = 0;
      return true;
  }
  return false;
}

bool apply(const char* key, std::size_t kn, const char* v, std::size_t vn, options& o, bool* unknown) {
  *unknown = false;
  for (std::size_t i = 0; i < sizeof keys / sizeof keys[0]; ++i) {
    const key_spec& k = keys[i];
    if (std::strlen(k.name) != kn || std::memcmp(k.name, key, kn) != 0) continue;
    if (!set_field(k, v, vn, o)) return false;
    o.given |= std::uint64_t(1) << i;
    return true;
  }
  *unknown = true;
  return false;
}

}  // namespace

unsigned parse_options(const char* text, options& out) noexcept {
  unsigned problems = 0;
  while (text && *text) {
    const char* end = text;
    while (*end && *end != ',') ++end;
    const char* colon = text;
    while (colon < end && *colon != ':') ++colon;
    std::size_t key_length = std::size_t(colon - text);
    const char* value = colon < end ? colon + 1 : end;
    std::size_t value_length = std::size_t(end - value);
    if (key_length > 0) {
      bool unknown = false;
      if (!apply(text, key_length, value, value_length, out, &unknown)) {
        ++problems;
        if (unknown) report::warning("unknown PCMALLOC_CONF key '%.*s' (ignored)", int(key_length), text);
        else report::warning("bad value '%.*s' for PCMALLOC_CONF key '%.*s' (ignored)", int(value_length), value, int(key_length), text);
      }
    }
    text = *end ? end + 1 : end;
  }
  return problems;
}

bool option_given(const options& o, const char* key) noexcept {
  for (std::size_t i = 0; i < sizeof keys / sizeof keys[0]; ++i)
    if (std::strcmp(keys[i].name, key) == 0) return (o.given >> i) & 1;
  return false;
}

void load_options_from_environment() noexcept { parse_options(std::getenv("PCMALLOC_CONF"), config); }

}  // namespace pcm
