/* The debug corpus in C: malloc, calloc, realloc and free only, single- and
 * multi-threaded. `c_bugs CASE` makes one bug (or none, for the clean cases);
 * lines "expect-threads: ..." on stdout give the thread ids the report must
 * name. Deliberately buggy: compiler warnings about the bugs are the point. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static int tid(void) { return (int)syscall(SYS_gettid); }
static char global_buffer[64];
static void* volatile sink;

__attribute__((noinline)) static char* c_make(size_t n) { return malloc(n); }
__attribute__((noinline)) static void c_release(void* p) { free(p); }
__attribute__((noinline)) static void c_release_again(void* p) { free(p); }
__attribute__((noinline)) static void c_write(char* p, long at) { ((volatile char*)p)[at] = 1; }
__attribute__((noinline)) static void* c_grow(void* p, size_t n) { return realloc(p, n); }

/* ---- threads: each step on its own thread, one after another ---- */
struct step { void* (*body)(void*); void* arg; int id; };
static void* run_step(void* s) { struct step* st = s; st->id = tid(); return st->body(st->arg); }
static int on_thread(void* (*body)(void*), void* arg, void** result) {
  struct step st = {body, arg, 0};
  pthread_t t;
  pthread_create(&t, NULL, run_step, &st);
  pthread_join(t, result);
  return st.id;
}
static void* thread_make(void* n) { return c_make((size_t)(uintptr_t)n); }
static void* thread_release(void* p) { c_release(p); return NULL; }
static int made_by, freed_by;
static void* thread_release_again(void* p) {
  printf("expect-threads: detected in T%d, allocated by T%d, freed by T%d\n", tid(), made_by, freed_by);
  fflush(stdout);
  c_release_again(p);
  return NULL;
}
static void* thread_leak(void* n) { sink = c_make((size_t)(uintptr_t)n); sink = NULL; return NULL; }
static void* thread_free_own_stack(void* unused) { int local[4]; (void)unused; c_release(local); return NULL; }

/* Maps and unmaps memory until the process ends: the leak scan at exit reads
 * mappings that vanish under it. */
static void* remapper(void* unused) {
  (void)unused;
  for (;;) {
    char* m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < (1 << 20); i += 4096) m[i] = 1;
    munmap(m, 1 << 20);
  }
  return NULL;
}

/* Allocates and frees without end, at stack depths that vary: the exit checks
 * run while it does (records appear half-made, blocks leave quarantine). */
__attribute__((noinline)) static void churn_at_depth(int depth, unsigned i) {
  if (depth > 0) { churn_at_depth(depth - 1, i); __asm__ volatile("" ::: "memory"); return; }
  static __thread void* volatile mine;   /* per thread: a shared sink would free one block twice */
  size_t n = 16 + (i * 37) % 2000;
  char* b = malloc(n);
  memset(b, 1, n);
  mine = b;
  free(mine);
}
static void* endless_churn(void* unused) {
  (void)unused;
  for (unsigned i = 0;; ++i) churn_at_depth((int)(i % 13), i);
  return NULL;
}

/* Kept by globals until exit: an aligned block, and a cursor into a buffer
 * (external linkage: stores to an unread static could be dropped). */
void* aligned_keep;
char* cursor_keep;

/* Clean and busy: blocks made on one thread, resized and freed on others. */
#define SLOTS 256
static void* slots[SLOTS];
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static void* churn(void* seed_arg) {
  unsigned seed = (unsigned)(uintptr_t)seed_arg;
  for (int i = 0; i < 20000; ++i) {
    seed = seed * 1103515245u + 12345u;
    unsigned k = (seed >> 8) % SLOTS;
    pthread_mutex_lock(&slots_lock);
    void* old = slots[k];
    slots[k] = NULL;
    pthread_mutex_unlock(&slots_lock);
    if (old && (seed & 1)) { old = realloc(old, 1 + (seed >> 20) % 3000); memset(old, 7, 1); }
    free(old);
    char* fresh = (seed & 2) ? calloc(1, 1 + (seed >> 12) % 500) : malloc(1 + (seed >> 12) % 500);
    fresh[0] = 1;
    pthread_mutex_lock(&slots_lock);
    old = slots[k];
    slots[k] = fresh;
    pthread_mutex_unlock(&slots_lock);
    free(old);
  }
  return NULL;
}

int main(int argc, char** argv) {
  int which = argc > 1 ? atoi(argv[1]) : 0;
  char* p = c_make(32);
  int t1 = 0, t2 = 0;
  void* q = NULL;
  switch (which) {
    case 0: { /* clean, single-threaded */
      char* s = strdup("hello");
      p = c_grow(p, 100);
      char* z = calloc(10, 10);
      for (int i = 0; i < 100; ++i) if (z[i]) return 1;
      free(s); free(z); c_release(p);
      break;
    }
    case 1: c_release(p); c_write(p, 3); break;                  /* use after free (found at exit) */
    case 2: c_release(p); c_release_again(p); break;             /* double free */
    case 3: { int local[4]; c_release(local); c_release(p); break; } /* free of the stack */
    case 4: c_release(global_buffer + 8); c_release(p); break;   /* free of a global */
    case 5: c_release(p + 8); break;                             /* interior pointer */
    case 6: {                                                    /* memory from mmap */
      void* foreign = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      c_release((char*)foreign + 16);
      c_release(p);
      break;
    }
    case 7: c_release(p); sink = c_grow(p, 64); break;           /* realloc of a freed block */
    case 8: c_write(p, 32); c_release(p); break;                 /* overflow by one */
    case 9: c_write(p, -1); c_release(p); break;                 /* underflow by one */
    case 10: sink = c_make(48); sink = NULL; c_release(p); break; /* leak */
    case 11: /* double free across threads: made on T1, freed on T2, again on T3 */
      made_by = on_thread(thread_make, (void*)(uintptr_t)40, &q);
      freed_by = on_thread(thread_release, q, NULL);
      on_thread(thread_release_again, q, NULL);
      c_release(p);
      break;
    case 12: /* use after free across threads: made on T1, freed on T2, written by main */
      t1 = on_thread(thread_make, (void*)(uintptr_t)40, &q);
      t2 = on_thread(thread_release, q, NULL);
      c_write(q, 5);
      printf("expect-threads: allocated by T%d, freed by T%d\n", t1, t2);
      c_release(p);
      break;
    case 13: { /* clean, four threads passing blocks around */
      pthread_t t[4];
      for (int i = 0; i < 4; ++i) pthread_create(&t[i], NULL, churn, (void*)(uintptr_t)(i + 1));
      for (int i = 0; i < 4; ++i) pthread_join(t[i], NULL);
      for (int i = 0; i < SLOTS; ++i) free(slots[i]);
      c_release(p);
      break;
    }
    case 14: t1 = on_thread(thread_free_own_stack, NULL, NULL); c_release(p); break; /* a thread frees its stack */
    case 15: /* leak on a thread */
      t1 = on_thread(thread_leak, (void*)(uintptr_t)72, NULL);
      printf("expect-threads: allocated by T%d\n", t1);
      c_release(p);
      break;
    case 17: { /* clean: exit while another thread maps and unmaps */
      pthread_t t;
      pthread_create(&t, NULL, remapper, NULL);
      usleep(20000);
      c_release(p);
      break;
    }
    case 16: c_release(p); c_release_again(p); c_release(global_buffer); break; /* two errors */
    case 18: { /* clean: exit (return from main) while two threads allocate and free */
      pthread_t t;
      for (int i = 0; i < 2; ++i) pthread_create(&t, NULL, endless_churn, NULL);
      usleep(20000);
      c_release(p);
      break;
    }
    case 19: { /* clean: aligned blocks whose user pointer lies pages into a large block */
      void* a = NULL;
      if (posix_memalign(&a, 8192, 100) || malloc_usable_size(a) < 100) return 1;
      void* b = NULL;
      if (posix_memalign(&b, 4096, 30000) || malloc_usable_size(b) < 30000) return 1;
      b = c_grow(b, 60000);
      free(a); free(b);
      c_release(p);
      break;
    }
    case 20: /* clean with leaks:true: an aligned block and an interior cursor keep their blocks */
      if (posix_memalign(&aligned_keep, 4096, 30000)) return 1;
      cursor_keep = c_make(100000) + 50000;
      c_release(p);
      break;
    case 22: /* use after free after 40 MiB of other frees, inside the 64 MiB quarantine */
      c_release(p);
      for (int i = 0; i < 40 * 256; ++i) c_release(c_make(4000));
      c_write(p, 3);
      break;
    case 21: { /* a daemon closes every descriptor above 2 and opens a file of its own
                  (taking the number the reports were sent to); then a double free:
                  its report must reach stderr, not the daemon's file */
      for (int fd = 3; fd < 1024; ++fd) close(fd);
      char name[] = "/tmp/pcm-debug-closefds-XXXXXX";
      int out = mkstemp(name);
      if (out < 0) return 1;
      unlink(name);
      c_release(p);
      c_release_again(p);
      close(out);
      break;
    }
  }
  printf("done %d\n", which);
  return 0;
}
