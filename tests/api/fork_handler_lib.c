/* A library whose constructor registers fork handlers that allocate, as some
 * do (loggers, RNG reseeders). Its constructor runs before pcmalloc registers
 * its own handlers, so its prepare handler runs after pcmalloc's, while
 * pcmalloc holds its locks: the malloc there must not deadlock. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void* volatile sink;
static void allocate_some(void) {
  for (int i = 0; i < 64; ++i) {
    char* p = malloc(16 + (size_t)i * 97);   /* small, and large enough to reach the arenas */
    memset(p, i, 16);
    sink = p;
    free(sink);
  }
  sink = malloc(300000);   /* a large run: the page lock */
  free(sink);
}
static void prepare(void) { allocate_some(); }
static void in_child(void) { allocate_some(); }
__attribute__((constructor)) static void register_handlers(void) { pthread_atfork(prepare, NULL, in_child); }
void fork_handler_lib_linked(void) {}
