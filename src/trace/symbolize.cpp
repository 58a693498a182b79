// Symbolization for debug reports: module lookup, ELF symbol tables of mapped
// files (cached per module), and one addr2line run per module per stack.
// Synchronisation: everything below runs under symbolizer_lock; its owner is
// recorded so that a fault while symbolizing degrades instead of deadlocking.
#include "symbolize.hpp"

#include <atomic>
#include <cstdio>
#include <cstring>
#include <elf.h>
#include <link.h>
#include <unistd.h>

#include "lock.hpp"
#include "platform/platform.hpp"
#include "text_writer.hpp"

extern char** environ;

namespace pcm::debug {
namespace {

static_assert(sizeof(void*) == 8, "the ELF reader handles 64-bit objects only");

// ---- the lock -------------------------------------------------------------------
mutex symbolizer_lock;
std::atomic<long> lock_owner{0};

class symbolizer_guard {
 public:
  symbolizer_guard() noexcept {
    const long self = os::thread_id();
    if (lock_owner.load(std::memory_order_relaxed) == self) return;   // re-entered: degrade
    symbolizer_lock.lock();
    lock_owner.store(self, std::memory_order_relaxed);
    held_ = true;
  }
  ~symbolizer_guard() {
    if (!held_) return;
    lock_owner.store(0, std::memory_order_relaxed);
    symbolizer_lock.unlock();
  }
  symbolizer_guard(const symbolizer_guard&) = delete;
  symbolizer_guard& operator=(const symbolizer_guard&) = delete;
  bool held() const noexcept { return held_; }

 private:
  bool held_ = false;
};

template <std::size_t n>
void copy_text(char (&to)[n], const char* from, std::size_t length) {
  if (length >= n) length = n - 1;
  std::memcpy(to, from, length);
  to[length] = 0;
}
template <std::size_t n>
void copy_text(char (&to)[n], const char* from) { copy_text(to, from, std::strlen(from)); }

const char* base_name(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

// ---- which module holds an address ---------------------------------------------------
char executable_path[256];   // the main program's file; written once under the lock

const char* main_program_path() {
  if (!executable_path[0]) {
    char target[sizeof executable_path];
    ssize_t n = ::readlink("/proc/self/exe", target, sizeof target - 1);
    constexpr char deleted[] = " (deleted)";
    constexpr std::size_t deleted_length = sizeof deleted - 1;
    bool gone = n >= ssize_t(deleted_length) && std::memcmp(target + n - deleted_length, deleted, deleted_length) == 0;
    // A replaced or removed file is still readable through /proc; not through
    // /proc/self, which addr2line would take for its own executable.
    if (n > 0 && !gone) copy_text(executable_path, target, std::size_t(n));
    else std::snprintf(executable_path, sizeof executable_path, "/proc/%d/exe", int(::getpid()));
  }
  return executable_path;
}

struct module_query {
  std::uintptr_t address;
  std::uintptr_t bias = 0;
  bool found = false;
  bool main_program = false;
  char path[256] = {};
};

int match_module(dl_phdr_info* info, std::size_t, void* data) {
  auto* query = static_cast<module_query*>(data);
  for (unsigned i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& segment = info->dlpi_phdr[i];
    if (segment.p_type != PT_LOAD) continue;
    std::uintptr_t start = info->dlpi_addr + segment.p_vaddr;
    if (query->address - start >= segment.p_memsz) continue;
    query->bias = info->dlpi_addr;
    query->found = true;
    query->main_program = !info->dlpi_name || !info->dlpi_name[0];
    if (!query->main_program) copy_text(query->path, info->dlpi_name);
    return 1;
  }
  return 0;
}

// Fills module and module_offset; false when no loaded object holds the address.
bool locate_module(const void* address, frame_info& out, module_query& query) {
  query.address = reinterpret_cast<std::uintptr_t>(address);
  dl_iterate_phdr(match_module, &query);
  if (!query.found) return false;
  if (query.main_program) copy_text(query.path, main_program_path());
  copy_text(out.module, query.path);
  out.module_offset = query.address - query.bias;
  return true;
}

// ---- ELF symbol tables, cached per module ------------------------------------------
struct module_entry {
  std::uintptr_t bias;
  char path[256];
  const unsigned char* image;   // the whole file, mapped read-only (nullptr: unreadable)
  std::size_t image_size;
  const Elf64_Sym* symbols;     // .symtab when present, else .dynsym
  std::size_t symbol_count;
  const char* strings;
  std::size_t strings_size;
  bool has_debug_info;          // DWARF or a debuglink: addr2line may find lines
};

constexpr unsigned max_modules = 64;
module_entry modules[max_modules];
unsigned module_count = 0;
unsigned next_eviction = 0;

bool in_file(const module_entry& m, std::uint64_t offset, std::uint64_t size) {
  return offset <= m.image_size && size <= m.image_size - offset;
}

// Reads the section headers; leaves symbols null when the file is not a 64-bit
// ELF object or has no symbol table.
void read_symbols(module_entry& m) {
  if (!in_file(m, 0, sizeof(Elf64_Ehdr))) return;
  const auto* header = reinterpret_cast<const Elf64_Ehdr*>(m.image);
  if (std::memcmp(header->e_ident, ELFMAG, SELFMAG) != 0 || header->e_ident[EI_CLASS] != ELFCLASS64 ||
      header->e_shentsize != sizeof(Elf64_Shdr) || !in_file(m, header->e_shoff, sizeof(Elf64_Shdr)))
    return;
  const auto* sections = reinterpret_cast<const Elf64_Shdr*>(m.image + header->e_shoff);
  std::uint64_t count = header->e_shnum ? header->e_shnum : sections[0].sh_size;   // >= SHN_LORESERVE sections
  if (!in_file(m, header->e_shoff, count * sizeof(Elf64_Shdr))) return;
  const Elf64_Shdr* names = header->e_shstrndx < count ? &sections[header->e_shstrndx] : nullptr;
  if (names && !in_file(m, names->sh_offset, names->sh_size)) names = nullptr;

  const Elf64_Shdr* table = nullptr;
  for (std::uint64_t i = 0; i < count; ++i) {
    const Elf64_Shdr& s = sections[i];
    if (s.sh_type == SHT_SYMTAB || (s.sh_type == SHT_DYNSYM && !table)) table = &s;
    if (names && s.sh_name < names->sh_size) {
      const char* name = reinterpret_cast<const char*>(m.image + names->sh_offset + s.sh_name);
      std::size_t room = names->sh_size - s.sh_name;
      if (strncmp(name, ".debug_line", room) == 0 || strncmp(name, ".gnu_debuglink", room) == 0 ||
          strncmp(name, ".zdebug_line", room) == 0)
        m.has_debug_info = true;
    }
  }
  if (!table || table->sh_entsize != sizeof(Elf64_Sym) || table->sh_link >= count) return;
  const Elf64_Shdr& strings = sections[table->sh_link];
  if (!in_file(m, table->sh_offset, table->sh_size) || !in_file(m, strings.sh_offset, strings.sh_size)) return;
  m.symbols = reinterpret_cast<const Elf64_Sym*>(m.image + table->sh_offset);
  m.symbol_count = table->sh_size / sizeof(Elf64_Sym);
  m.strings = reinterpret_cast<const char*>(m.image + strings.sh_offset);
  m.strings_size = strings.sh_size;
}

void forget(module_entry& m) {
  if (m.image) os::unmap_file(m.image, m.image_size);
  std::memset(&m, 0, sizeof m);
}

module_entry& module_for(const module_query& query) {
  for (unsigned i = 0; i < module_count; ++i)
    if (modules[i].bias == query.bias && std::strcmp(modules[i].path, query.path) == 0) return modules[i];
  module_entry* m;
  if (module_count < max_modules) {
    m = &modules[module_count++];
  } else {
    m = &modules[next_eviction];   // round robin: stacks rarely span 64 objects
    next_eviction = (next_eviction + 1) % max_modules;
    forget(*m);
  }
  m->bias = query.bias;
  copy_text(m->path, query.path);
  std::size_t size = 0;
  m->image = static_cast<const unsigned char*>(os::map_file(query.path, &size));
  if (m->image) {
    m->image_size = size;
    read_symbols(*m);
  }
  return *m;
}

// The innermost function symbol containing `offset` (a virtual address of the file).
void elf_symbol(const module_entry& m, std::uintptr_t offset, frame_info& out) {
  const Elf64_Sym* best = nullptr;
  for (std::size_t i = 0; i < m.symbol_count; ++i) {
    const Elf64_Sym& s = m.symbols[i];
    unsigned type = ELF64_ST_TYPE(s.st_info);
    if ((type != STT_FUNC && type != STT_GNU_IFUNC) || s.st_shndx == SHN_UNDEF) continue;
    if (offset - s.st_value < s.st_size && (!best || s.st_value > best->st_value)) best = &s;
  }
  if (!best || best->st_name >= m.strings_size) return;
  const char* name = m.strings + best->st_name;
  copy_text(out.function, name, strnlen(name, m.strings_size - best->st_name));
  out.function_offset = offset - best->st_value;
}

// ---- addr2line ------------------------------------------------------------------------
char addr2line_path[256] = "/usr/bin/addr2line";
bool addr2line_missing = false;

constexpr unsigned batch_frames = 64;
char addr2line_output[64 * 1024];
const char* child_environment[512];
char offset_text[batch_frames][24];

// Lexically drops "." and "dir/.." components: addr2line joins the compilation
// directory and a relative name as they are ("/build/../../src/a.cpp").
void normalize_path(char* path) {
  char* const start = path + (path[0] == '/');
  char* out = start;   // kept components, each followed by '/'; never ahead of `in`
  for (char* in = start;;) {
    char* end = in;
    while (*end && *end != '/') ++end;
    const bool last = *end == 0;
    const std::size_t length = std::size_t(end - in);
    const bool parent = length == 2 && in[0] == '.' && in[1] == '.';
    bool keep = length != 0 && !(length == 1 && in[0] == '.');
    if (parent && out > start) {
      char* previous = out - 1;
      while (previous > start && previous[-1] != '/') --previous;
      if (!(out - previous == 3 && previous[0] == '.' && previous[1] == '.')) { out = previous; keep = false; }
    } else if (parent && start > path) {
      keep = false;   // "/.." is "/"
    }
    if (keep) {
      std::memmove(out, in, length);
      out += length;
      *out++ = '/';   // may overwrite the terminator when this is the last component
    }
    if (last) break;
    in = end + 1;
  }
  if (out > start) --out;
  *out = 0;
}

// `name:line`, `name:?`, `??:0`, or with " (discriminator N)" after the number.
void apply_location(frame_info& f, const char* text, std::size_t length) {
  const char* colon = nullptr;
  for (std::size_t i = 0; i < length; ++i) if (text[i] == ':') colon = text + i;
  if (!colon) return;
  unsigned line = 0;
  for (const char* c = colon + 1; c < text + length && *c >= '0' && *c <= '9'; ++c) line = line * 10 + unsigned(*c - '0');
  std::size_t name_length = std::size_t(colon - text);
  if (line == 0 || (name_length == 2 && text[0] == '?' && text[1] == '?')) return;
  copy_text(f.file, text, name_length);
  normalize_path(f.file);
  f.line = line;
}

// Reads `addr2line -a -f -i` output: per address a "0x..." line, then
// function/location pairs, innermost inlined function first (the one we keep).
void parse_addr2line(char* text, frame_info* out, const unsigned* frames_of_batch, unsigned count) {
  int current = -1;
  enum { want_address, want_function, want_location, inline_callers } state = want_address;
  const char* function = nullptr;
  std::size_t function_length = 0;
  for (char* line = text; *line;) {
    char* end = std::strchr(line, '\n');
    if (!end) break;   // a truncated last line
    std::size_t length = std::size_t(end - line);
    if ((state == want_address || state == inline_callers) && length > 2 && line[0] == '0' && line[1] == 'x') {
      if (unsigned(++current) >= count) break;
      state = want_function;
    } else if (state == want_function) {
      function = line;
      function_length = length;
      state = want_location;
    } else if (state == want_location) {
      frame_info& f = out[frames_of_batch[current]];
      // Without debug info addr2line names the nearest symbol before the
      // address, however far: only trust it where the ELF lookup, which
      // checks symbol sizes, found a function too (stripped executables
      // otherwise get frames "in error" for a static function after error()).
      bool unknown = function_length == 2 && function[0] == '?' && function[1] == '?';
      bool has_location = !(length >= 2 && line[0] == '?' && line[1] == '?');
      if (!unknown && (has_location || f.function[0])) copy_text(f.function, function, function_length);
      apply_location(f, line, length);
      state = inline_callers;
    }
    line = end + 1;
  }
}

const char* const* environment_without_preload() {
  unsigned n = 0;
  for (char** e = environ; e && *e && n + 1 < sizeof child_environment / sizeof child_environment[0]; ++e)
    if (std::strncmp(*e, "LD_PRELOAD=", 11) != 0) child_environment[n++] = *e;
  child_environment[n] = nullptr;
  return child_environment;
}

void run_addr2line(const module_entry& m, frame_info* out, const unsigned* frames_of_batch, unsigned count) {
  const char* argv[8 + batch_frames];
  unsigned n = 0;
  for (const char* fixed : {static_cast<const char*>(addr2line_path), "-a", "-f", "-C", "-i", "-e"}) argv[n++] = fixed;
  argv[n++] = m.path;
  for (unsigned i = 0; i < count; ++i) {
    std::snprintf(offset_text[i], sizeof offset_text[i], "0x%lx", static_cast<unsigned long>(out[frames_of_batch[i]].module_offset));
    argv[n++] = offset_text[i];
  }
  argv[n] = nullptr;
  long got = os::run_capture(argv, environment_without_preload(), addr2line_output, sizeof addr2line_output);
  if (got <= 0) { addr2line_missing = true; return; }   // it always prints something for an address
  parse_addr2line(addr2line_output, out, frames_of_batch, count);
}

// One addr2line run per module among the frames.
void add_source_locations(frame_info* out, unsigned count, module_entry* const* module_of) {
  bool done[batch_frames] = {};
  unsigned frames_of_batch[batch_frames];
  for (unsigned i = 0; i < count; ++i) {
    module_entry* m = module_of[i];
    if (done[i] || !m || !(m->has_debug_info || m->symbol_count)) continue;
    unsigned same = 0;
    for (unsigned j = i; j < count; ++j) {
      // The path check skips frames whose entry was evicted and reused meanwhile.
      if (done[j] || module_of[j] != m || std::strcmp(m->path, out[j].module) != 0) continue;
      frames_of_batch[same++] = j;
      done[j] = true;
    }
    if (same) run_addr2line(*m, out, frames_of_batch, same);
    if (addr2line_missing) return;
  }
}

// ---- symbolized frames, cached: leak reports repeat frames across stacks --------
struct cached_frame {
  frame_info info;
  unsigned generation;   // cache_generation when stored; older entries are void
};
constexpr unsigned cache_slots = 1024;   // direct-mapped by address
cached_frame* frame_cache;               // mapped on first use
bool frame_cache_unavailable = false;
unsigned cache_generation = 1;           // bumped when the addr2line setting changes

cached_frame* cache_slot(const void* address) {
  if (!frame_cache && !frame_cache_unavailable) {
    frame_cache = static_cast<cached_frame*>(os::map(cache_slots * sizeof(cached_frame)));
    frame_cache_unavailable = !frame_cache;
  }
  if (!frame_cache) return nullptr;
  auto key = reinterpret_cast<std::uintptr_t>(address);
  return &frame_cache[(key ^ (key >> 12)) % cache_slots];
}

// Symbolizes up to batch_frames frames; the caller holds the lock.
void symbolize_batch(void* const* frames, unsigned count, frame_info* out) {
  module_entry* module_of[batch_frames];   // null: nothing more to learn about the frame
  for (unsigned i = 0; i < count; ++i) {
    std::memset(&out[i], 0, sizeof out[i]);
    out[i].address = frames[i];
    module_of[i] = nullptr;
    module_query query;
    if (!frames[i] || !locate_module(frames[i], out[i], query)) continue;
    // Keyed by address and module path: a library loaded where another was unloaded misses.
    cached_frame* cached = cache_slot(frames[i]);
    if (cached && cached->generation == cache_generation && cached->info.address == frames[i] &&
        std::strcmp(cached->info.module, out[i].module) == 0) {
      out[i] = cached->info;
      continue;
    }
    module_entry& m = module_for(query);
    module_of[i] = &m;   // may be evicted by a later frame (over 64 modules): see below
    elf_symbol(m, out[i].module_offset, out[i]);
  }
  if (addr2line_path[0] && !addr2line_missing) add_source_locations(out, count, module_of);
  for (unsigned i = 0; i < count; ++i) {
    if (!module_of[i]) continue;
    if (cached_frame* cached = cache_slot(frames[i])) *cached = {out[i], cache_generation};
  }
}

// Without the lock (this thread faulted while holding it): module and offset only.
void symbolize_degraded(const void* address, frame_info& out) {
  std::memset(&out, 0, sizeof out);
  out.address = address;
  module_query query;
  if (address) locate_module(address, out, query);
}

frame_info scratch[batch_frames];   // print_stack's, under the lock

void write_frame(text_writer& w, unsigned index, const frame_info& f) {
  w.put("    #%u 0x%zx", index, reinterpret_cast<std::size_t>(f.address));
  if (f.function[0]) {
    w.put(" in %s", f.function);
    if (!f.file[0] && f.function_offset) w.put("+0x%zx", std::size_t(f.function_offset));
  }
  if (f.file[0]) w.put(" %s:%u", f.file, f.line);
  if (f.module[0]) w.put(" (%s+0x%zx)", base_name(f.module), std::size_t(f.module_offset));
  w.put("\n");
}

void write_stack(text_writer& w, void* const* frames, unsigned depth) {
  symbolizer_guard guard;
  for (unsigned first = 0; first < depth; first += batch_frames) {
    unsigned count = depth - first < batch_frames ? depth - first : batch_frames;
    if (guard.held()) {
      symbolize_batch(frames + first, count, scratch);
      for (unsigned i = 0; i < count; ++i) write_frame(w, first + i, scratch[i]);
    } else {
      for (unsigned i = 0; i < count; ++i) {
        frame_info f;
        symbolize_degraded(frames[first + i], f);
        write_frame(w, first + i, f);
      }
    }
  }
}

}  // namespace

void symbolize_stack(void* const* frames, unsigned depth, frame_info* out) noexcept {
  symbolizer_guard guard;
  for (unsigned first = 0; first < depth; first += batch_frames) {
    unsigned count = depth - first < batch_frames ? depth - first : batch_frames;
    if (guard.held()) symbolize_batch(frames + first, count, out + first);
    else for (unsigned i = 0; i < count; ++i) symbolize_degraded(frames[first + i], out[first + i]);
  }
}

bool symbolize(const void* address, frame_info& out) noexcept {
  void* frame = const_cast<void*>(address);
  symbolize_stack(&frame, 1, &out);
  return out.module[0] != 0;
}

void print_stack(int fd, void* const* frames, unsigned depth) noexcept {
  text_writer w(fd, nullptr, 0);
  write_stack(w, frames, depth);
}

std::size_t print_stack_to(char* buffer, std::size_t size, void* const* frames, unsigned depth) noexcept {
  if (buffer && size) buffer[0] = 0;
  text_writer w(-1, buffer, size);
  write_stack(w, frames, depth);
  w.flush();
  return w.total();
}

void set_addr2line_path(const char* path) noexcept {
  symbolizer_guard guard;
  copy_text(addr2line_path, path ? path : "");
  addr2line_missing = false;
  ++cache_generation;
}

void symbolize_after_fork_child() noexcept {
  lock_owner.store(0, std::memory_order_relaxed);
  symbolizer_lock.reset_after_fork();
}

}  // namespace pcm::debug
