/* Linked against pcmalloc (static archive, or shared via pkg-config): the
 * program's plain malloc/free/new must be pcmalloc's. Exit 0 when they are. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pcmalloc/pcmalloc.h>

int main(void) {
  int failures = 0;
  for (size_t size = 1; size <= (8u << 20); size = size * 3 + 1) {
    char* p = malloc(size);
    if (!p || !pcm_owns(p)) { fprintf(stderr, "malloc(%zu) = %p is not pcmalloc's\n", size, (void*)p); ++failures; }
    if (p) memset(p, 0x5a, size);
    p = realloc(p, size * 2);
    if (!p || !pcm_owns(p) || p[size - 1] != 0x5a) { fprintf(stderr, "realloc(%zu) lost data\n", size); ++failures; }
    free(p);
  }
  void* q = NULL;
  if (posix_memalign(&q, 4096, 100) != 0 || ((size_t)q & 4095) || !pcm_owns(q)) ++failures;
  free(q);
  printf("%s, cache mode %s\n", failures ? "FAILED" : "ok", pcm_cache_mode());
  return failures != 0;
}
