#include <cstdlib>
#include <cstring>
#include <cstdio>
__attribute__((noinline)) char* make_block() { return (char*)malloc(32); }
__attribute__((noinline)) void overflow(char* p) { ((volatile char*)p)[33] = 1; }
int main(int argc, char** argv) {
  int which = atoi(argv[1]);
  char* p = make_block();
  switch (which) {
    case 0: free(p); break;
    case 1: overflow(p); free(p); break;
    case 2: free(p); free(p); break;
    case 3: free(p); ((volatile char*)p)[3] = 7; break;
    case 4: { int x; free(&x); break; }
    case 5: free(p + 8); break;
    case 6: { int* q = new int[4]; delete q; free(p); break; }
    case 7: { p[-1] = 0; free(p); break; }
    case 8: break; // leak
  }
  printf("done %d\n", which);
  return 0;
}
