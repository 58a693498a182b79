#include "options.hpp"

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

bool key_is(const char* key, std::size_t n, const char* name) {
  return std::strlen(name) == n && !std::memcmp(key, name, n);
}

// One key: returns false when the key is unknown or the value bad.
bool apply(const char* key, std::size_t kn, const char* v, std::size_t vn, options& o, bool* unknown) {
  std::uint64_t number = 0;
  *unknown = false;
  if (key_is(key, kn, "arenas")) { if (!parse_number(v, vn, &number) || number > 4096) return false; o.arenas = unsigned(number); return true; }
  if (key_is(key, kn, "percpu")) return parse_bool(v, vn, &o.percpu);
  if (key_is(key, kn, "cache_class_bytes")) { if (!parse_number(v, vn, &number) || number > (1u << 30)) return false; o.cache_class_bytes = std::uint32_t(number); return true; }
  if (key_is(key, kn, "cache_max_objects")) { if (!parse_number(v, vn, &number) || number > 4096) return false; o.cache_max_objects = std::uint32_t(number); return true; }
  if (key_is(key, kn, "decay_ms")) { if (!parse_number(v, vn, &number)) return false; o.decay_ms = number; return true; }
  if (key_is(key, kn, "huge_pages")) return parse_bool(v, vn, &o.huge_pages);
  if (key_is(key, kn, "stats_print")) return parse_bool(v, vn, &o.stats_print);
  if (key_is(key, kn, "stats_json")) return parse_bool(v, vn, &o.stats_json);
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

void load_options_from_environment() noexcept { parse_options(std::getenv("PCMALLOC_CONF"), config); }

}  // namespace pcm
