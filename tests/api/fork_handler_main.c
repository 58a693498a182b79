/* fork() in a program with a library whose fork handlers allocate
 * (fork_handler_lib.c), under LD_PRELOAD=libpcmalloc.so or the debug library:
 * every fork must return in parent and child (a hang is a deadlock on one of
 * pcmalloc's locks, ended by the test's timeout). Prints "forked N times". */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

void fork_handler_lib_linked(void);

int main(void) {
  fork_handler_lib_linked();
  int forks = 0;
  for (int i = 0; i < 20; ++i) {
    void* keep = malloc(100);   /* the heap in use across the fork */
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
      free(keep);
      _exit(0);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 2;
    free(keep);
    ++forks;
  }
  printf("forked %d times\n", forks);
  return 0;
}
