// The debug corpus in C++, single-threaded: `heap_bugs CASE` makes one bug
// (or none: case 0). Deliberately buggy.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
struct twenty_four { long a, b, c; };
__attribute__((noinline)) char* make_block() { return (char*)malloc(32); }
__attribute__((noinline)) void overflow(char* p) { ((volatile char*)p)[33] = 1; }
__attribute__((noinline)) void underflow(char* p) { ((volatile char*)p)[-1] = 1; }
// Every byte of the left redzone (where the debug heap keeps the block's record
// pointer): the free must still find the block and report the underflow.
__attribute__((noinline)) void underflow_far(char* p) { for (int i = 1; i <= 16; ++i) ((volatile char*)p)[-i] = 0; }
__attribute__((noinline)) void delete_scalar(void* p) { delete (int*)p; }
__attribute__((noinline)) void delete_array(twenty_four* p) { delete[] p; }
__attribute__((noinline)) void free_block(void* p) { free(p); }
__attribute__((noinline)) void delete_sized_wrong(twenty_four* p) { ::operator delete(p, sizeof(twenty_four) - 8); }
__attribute__((noinline)) void* grow_block(void* p, std::size_t n) { return realloc(p, n); }
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
    case 6: { int* q = new int[4]; delete q; free(p); break; }        // new[] / delete
    case 7: underflow(p); free(p); break;
    case 8: break;                                                    // leak
    case 9: delete_scalar(p); break;                                  // malloc / delete
    case 10: free_block(new twenty_four); free(p); break;             // new / free
    case 11: delete_array(new twenty_four); free(p); break;           // new / delete[]
    case 12: delete_sized_wrong(new twenty_four); free(p); break;     // sized delete, wrong size
    case 14: underflow_far(p); free(p); break;
    case 15: underflow_far(p); p = (char*)realloc(p, 64); free(p); break;
    case 16: free(grow_block(new twenty_four, 64)); free(p); break;  // new / realloc
    case 13: {                                                        // clean: every pairing right
      delete new twenty_four;
      delete[] new twenty_four[3];
      twenty_four* s = new twenty_four;
      ::operator delete(s, sizeof *s);
      void* a = ::operator new(64, std::align_val_t(64));
      ::operator delete(a, std::align_val_t(64));
      free(p);
      break;
    }
  }
  printf("done %d\n", which);
  return 0;
}
