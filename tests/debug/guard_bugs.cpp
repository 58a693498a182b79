#include <cstdlib>
#include <cstdio>
int main(int argc, char**argv){ int w = atoi(argv[1]); char* p = (char*)malloc(100);
 if (w==0) { volatile char c = p[100]; (void)c; }   // overflow read
 if (w==1) { free(p); volatile char c = p[5]; (void)c; } // UAF read
 if (w==2) { ((volatile char*)p)[-1] = 1; }
 puts("no fault"); return 0; }
