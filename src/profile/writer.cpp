// The files of one dump, from a snapshot of the sites (tables.hpp), PREFIX
// being the caller's path prefix:
//   PREFIX.heap.pb.gz  .peak.pb.gz  .alloc.pb.gz   pprof profile.proto, gzip
//   PREFIX.heap  .peak.heap                         gperftools' legacy heap profile (google-pprof)
//   PREFIX.heap.folded  .peak.folded  .alloc.folded  folded stacks (root;...;leaf bytes), for flame graphs
//   PREFIX.txt                                       the top sites, symbolized
// No heap: buffers from os::map. Each file is written as PREFIX...tmp.PID and
// renamed into place, so a reader (or a fork child) never sees half of one.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cmath>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <unistd.h>

#include "platform/platform.hpp"
#include "profile/tables.hpp"
#include "text_writer.hpp"
#include "trace/stack_trace.hpp"
#include "trace/symbolize.hpp"

namespace pcm::profile {
namespace {

constexpr unsigned max_frames = 64;

// Growable bytes over os::map (or a fixed caller array when `fixed`).
struct bytes {
  char* data = nullptr;
  std::size_t size = 0, capacity = 0;
  bool fixed = false, failed = false;

  bytes() = default;
  bytes(char* array, std::size_t n) : data(array), capacity(n), fixed(true) {}
  bytes(const bytes&) = delete;
  bytes& operator=(const bytes&) = delete;
  ~bytes() { if (!fixed && data) os::unmap(data, capacity); }

  bool reserve(std::size_t more) {
    if (size + more <= capacity) return true;
    if (fixed || failed) { failed = true; return false; }
    std::size_t want = capacity ? capacity : 1 << 20;
    while (want < size + more) want *= 2;
    void* grown = data ? os::remap(data, capacity, want) : os::map(want);
    if (!grown) { failed = true; return false; }
    data = static_cast<char*>(grown);
    capacity = want;
    return true;
  }
  void put(const void* p, std::size_t n) {
    if (n == 0 || !reserve(n)) return;
    std::memcpy(data + size, p, n);
    size += n;
  }
  void byte(unsigned char c) { put(&c, 1); }
};

// --- profile.proto encoding (github.com/google/pprof/proto/profile.proto) ---
void varint(bytes& b, std::uint64_t v) {
  unsigned char out[10];
  unsigned n = 0;
  do { out[n++] = static_cast<unsigned char>((v & 0x7f) | (v > 0x7f ? 0x80 : 0)); v >>= 7; } while (v);
  b.put(out, n);
}
void field_varint(bytes& b, unsigned field, std::uint64_t v) { varint(b, field << 3); varint(b, v); }
void field_bytes(bytes& b, unsigned field, const void* p, std::size_t n) {
  varint(b, (field << 3) | 2);
  varint(b, n);
  b.put(p, n);
}
void field_message(bytes& b, unsigned field, const bytes& m) { field_bytes(b, field, m.data, m.size); }

// Strings of the profile's string table, interned: index by text.
class string_table {
 public:
  explicit string_table(bytes& out) : out_(out) {}
  ~string_table() { if (slots_) os::unmap(slots_, slot_bytes()); }
  string_table(const string_table&) = delete;
  string_table& operator=(const string_table&) = delete;

  std::uint64_t index(const char* text) {
    if (!slots_ && !grow()) return 0;
    std::size_t n = std::strlen(text);
    std::uint64_t h = 1469598103934665603ull;
    for (std::size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(text[i])) * 1099511628211ull;
    for (std::size_t s = h & (capacity_ - 1);; s = (s + 1) & (capacity_ - 1)) {
      entry& e = slots_[s];
      if (!e.used) {
        if ((count_ + 1) * 2 > capacity_) { if (!grow()) return 0; return index(text); }
        e = {h, count_++, text_.size, n, true};
        text_.put(text, n);
        field_bytes(out_, 6, text, n);   // Profile.string_table
        return e.index;
      }
      if (e.hash == h && e.length == n && (n == 0 || std::memcmp(text_.data + e.offset, text, n) == 0)) return e.index;
    }
  }

 private:
  struct entry { std::uint64_t hash, index; std::size_t offset, length; bool used; };
  std::size_t slot_bytes() const { return os::round_to_pages(capacity_ * sizeof(entry)); }
  bool grow() {
    entry* old = slots_;
    std::size_t old_bytes = old ? slot_bytes() : 0, old_capacity = capacity_;
    capacity_ = capacity_ ? capacity_ * 2 : 4096;
    slots_ = static_cast<entry*>(os::map(slot_bytes()));
    if (!slots_) { slots_ = old; capacity_ = old_capacity; return false; }
    for (std::size_t i = 0; old && i < old_capacity; ++i) {
      if (!old[i].used) continue;
      std::size_t s = old[i].hash & (capacity_ - 1);
      while (slots_[s].used) s = (s + 1) & (capacity_ - 1);
      slots_[s] = old[i];
    }
    if (old) os::unmap(old, old_bytes);
    return true;
  }
  bytes& out_;
  bytes text_;
  entry* slots_ = nullptr;
  std::size_t capacity_ = 0;
  std::uint64_t count_ = 0;
};

// --- gzip: stored deflate blocks (RFC 1951 BTYPE 00) and a CRC-32 ---
std::uint32_t crc_table[256];
void fill_crc_table() {
  for (std::uint32_t n = 0; n < 256; ++n) {
    std::uint32_t c = n;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    crc_table[n] = c;
  }
}
void gzip(bytes& out, const bytes& in) {
  if (!crc_table[1]) fill_crc_table();
  const unsigned char header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};   // deflate, no name, Unix
  out.put(header, sizeof header);
  std::uint32_t crc = 0xffffffffu;
  std::size_t done = 0;
  do {
    std::size_t n = std::min<std::size_t>(in.size - done, 65535);
    bool last = done + n == in.size;
    unsigned char block[5] = {static_cast<unsigned char>(last ? 1 : 0), static_cast<unsigned char>(n),
                              static_cast<unsigned char>(n >> 8), static_cast<unsigned char>(~n),
                              static_cast<unsigned char>(~n >> 8)};
    out.put(block, 5);
    out.put(in.data + done, n);
    for (std::size_t i = 0; i < n; ++i)
      crc = crc_table[(crc ^ static_cast<unsigned char>(in.data[done + i])) & 0xff] ^ (crc >> 8);
    done += n;
  } while (done < in.size);
  crc ^= 0xffffffffu;
  unsigned char trailer[8];
  for (int i = 0; i < 4; ++i) trailer[i] = static_cast<unsigned char>(crc >> (8 * i));
  for (int i = 0; i < 4; ++i) trailer[4 + i] = static_cast<unsigned char>(in.size >> (8 * i));
  out.put(trailer, 8);
}

// --- frames: every distinct address of the snapshot's stacks, symbolized once ---
struct frames_table {
  void** addresses = nullptr;        // distinct frames, in order of first sight
  debug::frame_info* info = nullptr;
  std::uint32_t* hash = nullptr;     // open addressing: index + 1
  std::size_t count = 0, hash_slots = 0, capacity = 0;
  std::size_t mapped[3] = {};

  ~frames_table() {
    if (addresses) os::unmap(addresses, mapped[0]);
    if (info) os::unmap(info, mapped[1]);
    if (hash) os::unmap(hash, mapped[2]);
  }
  bool init(std::size_t most) {
    capacity = most ? most : 1;
    hash_slots = 1;
    while (hash_slots < capacity * 2) hash_slots *= 2;
    mapped[0] = os::round_to_pages(capacity * sizeof(void*));
    mapped[1] = os::round_to_pages(capacity * sizeof(debug::frame_info));
    mapped[2] = os::round_to_pages(hash_slots * sizeof(std::uint32_t));
    addresses = static_cast<void**>(os::map(mapped[0]));
    info = static_cast<debug::frame_info*>(os::map(mapped[1]));
    hash = static_cast<std::uint32_t*>(os::map(mapped[2]));
    return addresses && info && hash;
  }
  // Index of `address` (added when new).
  std::uint32_t add(void* address) {
    auto a = reinterpret_cast<std::uintptr_t>(address);
    for (std::size_t s = (a * 0x9E3779B97F4A7C15ull) >> 20 & (hash_slots - 1);; s = (s + 1) & (hash_slots - 1)) {
      if (hash[s] == 0) {
        addresses[count] = address;
        hash[s] = std::uint32_t(++count);
        return std::uint32_t(count - 1);
      }
      if (addresses[hash[s] - 1] == address) return hash[s] - 1;
    }
  }
};

// A frame's display name: the function, else module+offset.
void frame_name(const debug::frame_info& f, char* out, std::size_t size) {
  if (f.function[0]) { std::snprintf(out, size, "%s", f.function); return; }
  const char* base = std::strrchr(f.module, '/');
  std::snprintf(out, size, "%s+0x%lx", base ? base + 1 : (f.module[0] ? f.module : "?"),
                static_cast<unsigned long>(f.module_offset));
}

enum class kind { live, peak, allocated };
double count_of(const site& s, kind k) { return k == kind::live ? s.live_count : k == kind::peak ? s.peak_count : s.alloc_count; }
double bytes_of(const site& s, kind k) { return k == kind::live ? s.live_bytes : k == kind::peak ? s.peak_bytes : s.alloc_bytes; }
std::uint64_t rounded(double v) { return v > 0 ? std::uint64_t(std::llround(v)) : 0; }

struct dump_state {
  const snapshot& shot;
  frames_table frames;
  std::uint32_t* stack_start = nullptr;    // per site: first index into stack_frames
  std::uint32_t* stack_depth = nullptr;
  std::uint32_t* stack_frames = nullptr;   // frame-table indices, leaf first
  std::size_t mapped_bytes = 0;
  void* mapped = nullptr;
  explicit dump_state(const snapshot& s) : shot(s) {}
  ~dump_state() { if (mapped) os::unmap(mapped, mapped_bytes); }
};

bool load_stacks(dump_state& d) {
  std::size_t n = d.shot.count;
  d.mapped_bytes = os::round_to_pages((2 * n + n * max_frames + 1) * sizeof(std::uint32_t));
  d.mapped = os::map(d.mapped_bytes);
  if (!d.mapped) return false;
  d.stack_start = static_cast<std::uint32_t*>(d.mapped);
  d.stack_depth = d.stack_start + n;
  d.stack_frames = d.stack_depth + n;
  if (!d.frames.init(n * max_frames)) return false;
  std::uint32_t used = 0;
  for (std::size_t i = 0; i < n; ++i) {
    void* stack[max_frames];
    unsigned depth = debug::stack_depot_load(d.shot.sites[i].stack, stack, max_frames);
    d.stack_start[i] = used;
    d.stack_depth[i] = depth;
    for (unsigned f = 0; f < depth; ++f) d.stack_frames[used++] = d.frames.add(stack[f]);
  }
  debug::symbolize_stack(d.frames.addresses, unsigned(d.frames.count), d.frames.info);
  return true;
}

bool write_file(const char* path, const void* data, std::size_t size) {
  char temporary[400];
  std::snprintf(temporary, sizeof temporary, "%s.tmp.%ld", path, long(getpid()));
  int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  if (!os::write_all(fd, data, size)) { int saved = errno; close(fd); unlink(temporary); errno = saved; return false; }
  if (close(fd) != 0 || rename(temporary, path) != 0) { int saved = errno; unlink(temporary); errno = saved; return false; }
  return true;
}

// One profile.proto (sample types as tcmalloc writes them: objects/count, space/bytes).
bool write_pprof(dump_state& d, kind k, const char* path) {
  bytes profile;
  string_table strings(profile);
  strings.index("");
  std::uint64_t objects = strings.index("objects"), count = strings.index("count");
  std::uint64_t space = strings.index("space"), unit = strings.index("bytes");
  char small[64];
  bytes value_type(small, sizeof small);
  field_varint(value_type, 1, objects); field_varint(value_type, 2, count);
  field_message(profile, 1, value_type);
  value_type.size = 0;
  field_varint(value_type, 1, space); field_varint(value_type, 2, unit);
  field_message(profile, 1, value_type);
  field_message(profile, 11, value_type);   // period_type
  field_varint(profile, 12, d.shot.rate);
  field_varint(profile, 14, space);         // default_sample_type
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  field_varint(profile, 9, std::uint64_t(now.tv_sec) * 1000000000ull + std::uint64_t(now.tv_nsec));
  const char* comment = k == kind::live ? "pcmalloc: live heap" : k == kind::peak ? "pcmalloc: live heap at its peak" : "pcmalloc: all allocations since start";
  field_varint(profile, 13, strings.index(comment));

  char message[1024];
  for (std::size_t i = 0; i < d.shot.count; ++i) {
    const site& s = d.shot.sites[i];
    if (bytes_of(s, k) < 0.5) continue;
    bytes sample(message, sizeof message), packed(small, sizeof small);
    char ids_space[max_frames * 10];
    bytes ids(ids_space, sizeof ids_space);
    for (std::uint32_t f = 0; f < d.stack_depth[i]; ++f) varint(ids, d.stack_frames[d.stack_start[i] + f] + 1);
    field_message(sample, 1, ids);
    varint(packed, rounded(count_of(s, k)));
    varint(packed, rounded(bytes_of(s, k)));
    field_message(sample, 2, packed);
    field_message(profile, 2, sample);
  }
  // One location and one function per distinct frame (functions repeat; pprof merges them by name).
  for (std::size_t f = 0; f < d.frames.count; ++f) {
    const debug::frame_info& info = d.frames.info[f];
    char name[300];
    frame_name(info, name, sizeof name);
    bytes function(message, sizeof message);
    field_varint(function, 1, f + 1);
    std::uint64_t name_index = strings.index(name);
    field_varint(function, 2, name_index);
    field_varint(function, 3, name_index);
    field_varint(function, 4, strings.index(info.file[0] ? info.file : info.module));
    field_message(profile, 5, function);
    bytes line(small, sizeof small), location(message + 512, 512);
    field_varint(line, 1, f + 1);
    field_varint(line, 2, info.line);
    field_varint(location, 1, f + 1);
    field_varint(location, 3, reinterpret_cast<std::uintptr_t>(d.frames.addresses[f]));
    field_message(location, 4, line);
    field_message(profile, 4, location);
  }
  if (profile.failed) { errno = ENOMEM; return false; }
  bytes compressed;
  gzip(compressed, profile);
  if (compressed.failed) { errno = ENOMEM; return false; }
  return write_file(path, compressed.data, compressed.size);
}

// gperftools' text heap profile: "heap profile: live [allocated] @ heapprofile",
// one line per stack (return addresses; pprof takes one from all but the first),
// then /proc/self/maps for pprof to find the binaries.
bool write_legacy(dump_state& d, kind k, const char* path) {
  bytes out;
  char line[1024];
  double live_count = 0, live_bytes = 0, alloc_count = 0, alloc_bytes = 0;
  for (std::size_t i = 0; i < d.shot.count; ++i) {
    live_count += count_of(d.shot.sites[i], k); live_bytes += bytes_of(d.shot.sites[i], k);
    alloc_count += d.shot.sites[i].alloc_count; alloc_bytes += d.shot.sites[i].alloc_bytes;
  }
  int n = std::snprintf(line, sizeof line, "heap profile: %6llu: %8llu [%6llu: %8llu] @ heapprofile\n",
                        (unsigned long long)rounded(live_count), (unsigned long long)rounded(live_bytes),
                        (unsigned long long)rounded(alloc_count), (unsigned long long)rounded(alloc_bytes));
  out.put(line, std::size_t(n));
  for (std::size_t i = 0; i < d.shot.count; ++i) {
    const site& s = d.shot.sites[i];
    n = std::snprintf(line, sizeof line, "%6llu: %8llu [%6llu: %8llu] @",
                      (unsigned long long)rounded(count_of(s, k)), (unsigned long long)rounded(bytes_of(s, k)),
                      (unsigned long long)rounded(s.alloc_count), (unsigned long long)rounded(s.alloc_bytes));
    out.put(line, std::size_t(n));
    for (std::uint32_t f = 0; f < d.stack_depth[i]; ++f) {
      auto a = reinterpret_cast<std::uintptr_t>(d.frames.addresses[d.stack_frames[d.stack_start[i] + f]]);
      n = std::snprintf(line, sizeof line, " 0x%lx", static_cast<unsigned long>(f == 0 ? a : a + 1));
      out.put(line, std::size_t(n));
    }
    out.byte('\n');
  }
  const char maps_header[] = "\nMAPPED_LIBRARIES:\n";
  out.put(maps_header, sizeof maps_header - 1);
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    for (;;) {
      if (!out.reserve(65536)) break;
      ssize_t got = read(fd, out.data + out.size, 65536);
      if (got <= 0) break;
      out.size += std::size_t(got);
    }
    close(fd);
  }
  if (out.failed) { errno = ENOMEM; return false; }
  return write_file(path, out.data, out.size);
}

// root;...;leaf BYTES, one line per stack.
bool write_folded(dump_state& d, kind k, const char* path) {
  bytes out;
  char name[300];
  for (std::size_t i = 0; i < d.shot.count; ++i) {
    std::uint64_t b = rounded(bytes_of(d.shot.sites[i], k));
    if (!b) continue;
    for (std::uint32_t f = d.stack_depth[i]; f-- > 0;) {
      frame_name(d.frames.info[d.stack_frames[d.stack_start[i] + f]], name, sizeof name);
      for (char* c = name; *c; ++c) if (*c == ';' || *c == '\n') *c = ':';
      out.put(name, std::strlen(name));
      if (f) out.byte(';');
    }
    int n = std::snprintf(name, sizeof name, " %llu\n", (unsigned long long)b);
    out.put(name, std::size_t(n));
  }
  if (out.failed) { errno = ENOMEM; return false; }
  return write_file(path, out.data, out.size);
}

// The top sites of each profile, symbolized (function file:line per frame).
bool write_summary(dump_state& d, const char* path) {
  char temporary[400];
  std::snprintf(temporary, sizeof temporary, "%s.tmp.%ld", path, long(getpid()));
  int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  std::size_t order_bytes = os::round_to_pages(d.shot.count * sizeof(std::uint32_t) + 1);
  auto* order = static_cast<std::uint32_t*>(os::map(order_bytes));
  if (!order) { close(fd); unlink(temporary); errno = ENOMEM; return false; }
  {
    text_writer w(fd, nullptr, 0);
    w.put("pcmalloc heap profile: pid %ld, sampling every %llu bytes on average, %llu samples (%llu not recorded)\n",
          long(getpid()), (unsigned long long)d.shot.rate, (unsigned long long)d.shot.samples,
          (unsigned long long)d.shot.dropped);
    w.put("estimated bytes: live now %llu, at the peak %llu, allocated since start %llu\n",
          (unsigned long long)rounded(d.shot.live_bytes), (unsigned long long)rounded(d.shot.peak_bytes),
          (unsigned long long)rounded(d.shot.alloc_bytes));
    const kind kinds[] = {kind::live, kind::peak, kind::allocated};
    const char* titles[] = {"live heap now", "live heap at its peak", "all allocations since start"};
    for (int t = 0; t < 3; ++t) {
      kind k = kinds[t];
      double total = 0;
      std::size_t n = 0;
      for (std::size_t i = 0; i < d.shot.count; ++i) {
        total += bytes_of(d.shot.sites[i], k);
        if (bytes_of(d.shot.sites[i], k) >= 0.5) order[n++] = std::uint32_t(i);
      }
      std::sort(order, order + n, [&](std::uint32_t a, std::uint32_t b) {
        return bytes_of(d.shot.sites[a], k) > bytes_of(d.shot.sites[b], k);
      });
      w.put("\n== %s: %llu bytes in %zu sites; top sites by bytes ==\n", titles[t], (unsigned long long)rounded(total), n);
      for (std::size_t r = 0; r < n && r < 25; ++r) {
        const site& s = d.shot.sites[order[r]];
        w.put("%12llu bytes %5.1f%% %10llu objects\n", (unsigned long long)rounded(bytes_of(s, k)),
              total > 0 ? 100.0 * bytes_of(s, k) / total : 0.0, (unsigned long long)rounded(count_of(s, k)));
        std::uint32_t depth = d.stack_depth[order[r]];
        for (std::uint32_t f = 0; f < depth && f < 12; ++f) {
          const debug::frame_info& info = d.frames.info[d.stack_frames[d.stack_start[order[r]] + f]];
          char name[300];
          frame_name(info, name, sizeof name);
          if (info.file[0]) w.put("    #%u %s %s:%u\n", f, name, info.file, info.line);
          else w.put("    #%u %s\n", f, name);
        }
      }
    }
  }
  os::unmap(order, order_bytes);
  if (close(fd) != 0 || rename(temporary, path) != 0) { int saved = errno; unlink(temporary); errno = saved; return false; }
  return true;
}

}  // namespace

int write_profiles(const char* prefix, const snapshot& shot) noexcept {
  dump_state d(shot);
  if (!load_stacks(d)) { errno = ENOMEM; return -1; }
  char path[340];
  bool ok = true;
  const struct { kind k; const char* name; } outputs[] = {{kind::live, "heap"}, {kind::peak, "peak"}, {kind::allocated, "alloc"}};
  for (const auto& o : outputs) {
    std::snprintf(path, sizeof path, "%s.%s.pb.gz", prefix, o.name);
    ok = write_pprof(d, o.k, path) && ok;
    std::snprintf(path, sizeof path, "%s.%s.folded", prefix, o.name);
    ok = write_folded(d, o.k, path) && ok;
  }
  std::snprintf(path, sizeof path, "%s.heap", prefix);
  ok = write_legacy(d, kind::live, path) && ok;
  std::snprintf(path, sizeof path, "%s.peak.heap", prefix);
  ok = write_legacy(d, kind::peak, path) && ok;
  std::snprintf(path, sizeof path, "%s.txt", prefix);
  ok = write_summary(d, path) && ok;
  return ok ? 0 : -1;
}

}  // namespace pcm::profile
