// The debug corpus under guard:true: faults at the access itself.
// `guard_bugs CASE`. Deliberately buggy. Blocks of 96 bytes: a multiple of 16
// ends exactly on the guard page (other sizes leave canary bytes before it).
#include <sys/syscall.h>
#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <thread>
__attribute__((noinline)) void read_past_end(char* p) { volatile char c = p[96]; (void)c; }
__attribute__((noinline)) void read_after_free(char* p) { volatile char c = p[5]; (void)c; }
__attribute__((noinline)) void write_before_start(char* p) { ((volatile char*)p)[-1] = 1; }
__attribute__((noinline)) void write_past_end(char* p) { ((volatile char*)p)[96] = 1; }
char* cursor_keep;   // a cursor into a guarded block, kept until exit (external: not optimised away)
int main(int argc, char** argv) {
  int which = atoi(argv[1]);
  char* p = (char*)malloc(96);
  if (which == 0) read_past_end(p);
  if (which == 1) { free(p); read_after_free(p); }
  if (which == 2) write_before_start(p);
  if (which == 3) {   // made on main, overrun on another thread
    std::printf("expect-threads: allocated by T%d\n", int(syscall(SYS_gettid)));
    std::fflush(stdout);
    std::thread t([p] {
      std::printf("expect-threads: detected in T%d\n", int(syscall(SYS_gettid)));
      std::fflush(stdout);
      write_past_end(p);
    });
    t.join();
  }
  if (which == 4) { p[95] = 1; free(p); }   // clean: the last byte is the block's
  if (which == 5) {   // clean: malloc's 16-byte alignment, and more blocks than the kernel allows mappings
    static char* blocks[40000];
    for (int i = 0; i < 40000; ++i) {
      blocks[i] = (char*)malloc(1 + i % 40);
      if (!blocks[i] || reinterpret_cast<unsigned long>(blocks[i]) % 16) return 1;
      blocks[i][i % 40] = 1;
    }
    for (char* b : blocks) free(b);
    free(p);
  }
  if (which == 6) {   // clean with leaks:true: only a cursor into the middle keeps a guarded block
    cursor_keep = (char*)malloc(10000) + 5000;
    free(p);
  }
  puts("no fault");
  return 0;
}
