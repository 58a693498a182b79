/* Reports whether pcmalloc is in this process and serves its malloc, without
 * linking to it: the symbols are looked up at run time. Also reports whether
 * glibc registered rseq (then pcmalloc should use per-CPU caches). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  void* p = malloc(48);
  const char* (*cache_mode)(void) = (const char* (*)(void))dlsym(RTLD_DEFAULT, "pcm_cache_mode");
  int (*owns)(const void*) = (int (*)(const void*))dlsym(RTLD_DEFAULT, "pcm_owns");
  const unsigned* rseq_size = (const unsigned*)dlsym(RTLD_DEFAULT, "__rseq_size");
  printf("pcm_cache_mode: %s\n", cache_mode ? cache_mode() : "absent");
  printf("malloc from pcmalloc: %s\n", owns ? (owns(p) ? "yes" : "no") : "absent");
  printf("glibc rseq: %s\n", !rseq_size ? "unknown" : *rseq_size ? "registered" : "not registered");
  free(p);
  return 0;
}
