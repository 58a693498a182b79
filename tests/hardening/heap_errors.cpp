// A corpus of heap errors: each case commits one error (or checks one unsafe
// outcome) on a block of one size, then goes on as a program would (allocates
// and frees more of the same size) and prints SURVIVED. A run that ends before
// the marker (an abort with a report, or a fault at the error) was stopped.
//
// Usage: heap_errors CASE SIZE    (SIZE: small, medium, large)
//        heap_errors --list       every "CASE SIZE" pair, one a line
// Sizes: small 40 B (a slab object), medium 200 KB (a page run), large 8 MiB
// (a mapping of its own), so each error meets each kind of block.
// Deliberately buggy: compiled without warnings and with barriers so that the
// compiler keeps every bad access.
#include <pthread.h>
#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>

namespace {

std::size_t n = 40;                 // the block size of this run
char global_buffer[64];

template <class T>
T opaque(T v) {                     // hide values from the optimiser
  asm volatile("" : "+r"(v) : : "memory");
  return v;
}
void touch(void* p, std::size_t bytes) { std::memset(opaque(p), 0x5a, bytes); }

// What a program does after the error: more blocks of the same size.
void go_on() {
  void* blocks[16];
  for (auto& b : blocks) { b = std::malloc(n); touch(b, n); }
  for (auto& b : blocks) std::free(opaque(b));
  void* bigger = std::malloc(2 * n);
  touch(bigger, 2 * n);
  std::free(bigger);
}

void on_other_thread(void* (*run)(void*), void* argument) {
  pthread_t thread;
  if (pthread_create(&thread, nullptr, run, argument) == 0) pthread_join(thread, nullptr);
}

char* block() {
  auto* p = static_cast<char*>(std::malloc(n));
  touch(p, n);
  return p;
}

struct with_destructor {
  ~with_destructor() { opaque(this); }
  char bytes[16];
};

using case_function = void (*)();
struct error_case {
  const char* name;
  bool sized;        // run once per size (else only "small")
  case_function run;
};

const error_case cases[] = {
    // Double frees.
    {"double-free", true, [] { char* p = block(); std::free(p); std::free(opaque(p)); }},
    {"double-free-delayed", true, [] {
       char* p = block();
       std::free(p);
       for (int i = 0, rounds = n < 4096 ? 100 : 8; i < rounds; ++i) {
         void* q = std::malloc(n);
         touch(q, n);
         std::free(q);
         std::free(std::malloc(3 * n));
       }
       std::free(opaque(p));
     }},
    {"double-free-interleaved", true, [] {
       char* p = block();
       char* q = block();
       std::free(p);
       std::free(q);
       std::free(opaque(p));
     }},
    {"double-free-after-reuse", true, [] {   // the second free hits whoever has the block now
       char* p = block();
       std::free(p);
       char* q = block();
       std::free(opaque(p));
       std::free(opaque(q));
     }},
    {"double-free-other-thread", true, [] {
       char* p = block();
       std::free(p);
       on_other_thread([](void* q) -> void* { std::free(opaque(q)); return nullptr; }, p);
     }},
    {"double-free-after-realloc", true, [] {   // realloc moved the block and freed p
       char* p = block();
       char* q = static_cast<char*>(std::realloc(p, 4 * n + 4096));
       touch(q, 4 * n);
       if (q != p) std::free(opaque(p));
       else std::free(opaque(q)), std::free(opaque(q));
     }},
    {"realloc-zero-then-free", true, [] {      // realloc(p, 0) freed p (glibc's contract)
       char* p = block();
       void* r = std::realloc(p, 0);
       opaque(r);
       std::free(opaque(p));
     }},
    {"realloc-after-free-same-size", true, [] {   // realloc may keep a block in place
       char* p = block();
       std::free(p);
       void* q = std::realloc(opaque(p), n);
       touch(q, n);
     }},
    {"realloc-after-free", true, [] {
       char* p = block();
       std::free(p);
       void* q = std::realloc(opaque(p), 2 * n);
       touch(q, 2 * n);
     }},
    {"double-delete", true, [] {
       auto* p = new char[n];
       touch(p, n);
       ::operator delete(p);
       ::operator delete(opaque(p));
     }},
    {"double-delete-array", true, [] {
       auto* p = new with_destructor[n / 16];
       touch(p, n / 16 * 16);
       delete[] p;
       delete[] opaque(p);
     }},
    // Frees of pointers that are not blocks.
    {"free-interior", true, [] { char* p = block(); std::free(opaque(p + 16)); }},
    {"free-misaligned", true, [] { char* p = block(); std::free(opaque(p + 1)); }},
    {"free-before-block", true, [] { char* p = block(); std::free(opaque(p - 16)); }},
    {"realloc-interior", true, [] {
       char* p = block();
       void* q = std::realloc(opaque(p + 16), 2 * n);
       touch(q, 2 * n);
     }},
    {"free-aligned-interior", true, [] {
       void* p = std::aligned_alloc(64, (n + 63) / 64 * 64);
       std::free(opaque(static_cast<char*>(p) + 64));
     }},
    {"free-stack", false, [] { char local[64]; touch(local, 64); std::free(opaque(local)); }},
    {"free-global", false, [] { std::free(opaque(global_buffer)); }},
    {"free-wild", false, [] { std::free(opaque(reinterpret_cast<void*>(std::uintptr_t(0x7f0012345670)))); }},
    {"free-foreign-mapping", false, [] {
       void* m = mmap(nullptr, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
       std::free(opaque(m));
     }},
    // Allocation/deallocation mismatches.
    {"new-array-delete-scalar", true, [] {   // the array cookie moves the pointer
       auto* p = new with_destructor[n / 16];
       delete opaque(p);
     }},
    {"new-scalar-delete-array", false, [] {
       auto* p = new with_destructor;
       delete[] opaque(p);
     }},
    {"new-array-delete-scalar-trivial", true, [] { auto* p = new char[n]; touch(p, n); delete opaque(p); }},
    {"malloc-delete", true, [] { char* p = block(); ::operator delete(opaque(p)); }},
    {"new-free", true, [] { void* p = ::operator new(n); touch(p, n); std::free(opaque(p)); }},
    {"sized-delete-wrong-size", true, [] {
       void* p = ::operator new(n);
       touch(p, n);
       ::operator delete(opaque(p), n / 4 + 1);
     }},
    // Overflows and underflows, with stores and with memcpy.
    {"overflow-1-store", true, [] { char* p = block(); opaque(p)[n] = 1; std::free(p); }},
    {"overflow-32-store", true, [] {
       char* p = block();
       for (std::size_t i = 0; i < 32; ++i) opaque(p)[n + i] = char(i);
       std::free(p);
     }},
    {"overflow-1-memcpy", true, [] {
       char* p = block();
       char* src = static_cast<char*>(std::malloc(n + 1));
       touch(src, n + 1);
       std::memcpy(opaque(p), src, opaque(n + 1));
       std::free(p);
       std::free(src);
     }},
    {"overflow-32-memcpy", true, [] {
       char* p = block();
       char* src = static_cast<char*>(std::malloc(n + 32));
       touch(src, n + 32);
       std::memcpy(opaque(p), src, opaque(n + 32));
       std::free(p);
       std::free(src);
     }},
    {"overflow-1mib-memset", true, [] {
       char* p = block();
       std::memset(opaque(p), 0x33, opaque(n + (1 << 20)));
       std::free(p);
     }},
    {"overflow-into-freed-neighbour", true, [] {
       char* p = block();
       char* q = block();
       char* low = p < q ? p : q;
       std::free(low == p ? q : p);
       std::memset(opaque(low), 0x44, opaque(n + 64));
       std::free(low);
     }},
    {"underflow-1-store", true, [] { char* p = block(); opaque(p)[-1] = 1; std::free(p); }},
    {"underflow-32-store", true, [] {
       char* p = block();
       for (int i = 1; i <= 32; ++i) opaque(p)[-i] = char(i);
       std::free(p);
     }},
    {"underflow-1mib-memset", true, [] {
       char* p = block();
       std::memset(opaque(p - (1 << 20)), 0x33, 1 << 20);
       std::free(p);
     }},
    // Zero-size blocks.
    {"zero-size-write", false, [] {
       auto* p = static_cast<char*>(std::malloc(0));
       opaque(p)[0] = 1;
       std::free(p);
     }},
    {"zero-size-write-16", false, [] {
       auto* p = static_cast<char*>(std::malloc(0));
       std::memset(opaque(p), 7, 16);
       std::free(p);
     }},
    {"zero-size-read", false, [] {
       auto* p = static_cast<volatile char*>(std::malloc(0));
       std::printf("read %d\n", int(p[opaque(0)]));
       std::free((void*)p);
     }},
    {"new-zero-write", false, [] {
       auto* p = new char[0];
       opaque(p)[0] = 1;
       delete[] p;
     }},
    // Use after free.
    {"use-after-free-write", true, [] { char* p = block(); std::free(p); opaque(p)[0] = 1; }},
    {"use-after-free-write-middle", true, [] { char* p = block(); std::free(p); opaque(p)[n / 2] = 1; }},
    {"use-after-free-write-late", true, [] {   // written after more blocks came and went
       char* p = block();
       std::free(p);
       for (int i = 0; i < 50; ++i) { char* q = block(); std::free(q); }
       std::memset(opaque(p), 0x66, 16);
     }},
    {"use-after-free-memcpy", true, [] {
       char* p = block();
       std::free(p);
       char src[64] = "after free";
       std::memcpy(opaque(p), src, sizeof src < n ? sizeof src : n);
     }},
    {"use-after-free-read", true, [] {
       char* p = block();
       std::free(p);
       std::printf("read %d\n", int(opaque(p)[0]));
     }},
    {"use-after-free-other-thread", true, [] {
       char* p = block();
       on_other_thread([](void* q) -> void* { std::free(q); return nullptr; }, p);
       std::memset(opaque(p), 0x77, 8);
     }},
    {"use-after-delete", true, [] {
       auto* p = new with_destructor[n / 16];
       delete[] p;
       opaque(p)[0].bytes[3] = 1;
     }},
    // Reuse: the unsafe outcome is a fresh block that is the one just freed
    // (a dangling pointer now aliases a new owner), or that shows a freed
    // block's old contents.
    {"reuse-immediate", true, [] {
       char* p = block();
       std::free(p);
       char* q = block();
       if (q != p) std::exit(3);   // defended: the freed block was not handed out again at once
       std::free(q);
     }},
    {"zero-on-malloc", true, [] {
       char* p = block();
       std::memset(opaque(p), 0x5e, n);
       std::free(p);
       auto* q = static_cast<unsigned char*>(std::malloc(n));
       bool stale = false;
       for (std::size_t i = 16; i < n; ++i) stale |= opaque(q)[i] == 0x5e;
       if (!stale) std::exit(3);   // defended: no old contents to read
       std::free(q);
     }},
};

const char* size_names[] = {"small", "medium", "large"};
const std::size_t size_bytes[] = {40, 200000, 8u << 20};

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string_view(argv[1]) == "--list") {
    for (const auto& c : cases)
      for (int s = 0; s < (c.sized ? 3 : 1); ++s) std::printf("%s %s\n", c.name, size_names[s]);
    return 0;
  }
  if (argc != 3) {
    std::fprintf(stderr, "usage: heap_errors CASE SIZE | --list\n");
    return 2;
  }
  for (int s = 0; s < 3; ++s)
    if (std::string_view(argv[2]) == size_names[s]) n = size_bytes[s];
  for (const auto& c : cases) {
    if (std::string_view(argv[1]) != c.name) continue;
    c.run();
    go_on();
    std::puts("SURVIVED");
    return 0;
  }
  std::fprintf(stderr, "heap_errors: no case %s\n", argv[1]);
  return 2;
}
