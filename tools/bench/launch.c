/* Runs one workload under a chosen preload and reports its resource use.
 * run.py cannot read peak RSS from its own child: Linux carries the high-water RSS
 * of the image a process replaces into the new one (exec_mmap), so a child that
 * Python spawns reads at least the interpreter's RSS. This launcher is small, so
 * the workload it forks starts from a floor of about one megabyte.
 * usage: launch PRELOAD|- PROGRAM [ARGS...]   ("-": no preload)
 * After the workload exits, prints to stdout:
 *   launch maxrss_kb=N minflt=N majflt=N user_s=S sys_s=S wall_s=S exit=N signal=N
 * and exits with the workload's status (128+signal if it was killed). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double seconds(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6; }

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s PRELOAD|- PROGRAM [ARGS...]\n", argv[0]);
    return 2;
  }
  if (strcmp(argv[1], "-") == 0) unsetenv("LD_PRELOAD");
  else setenv("LD_PRELOAD", argv[1], 1);

  fflush(stdout);
  double start = now();
  pid_t child = fork();
  if (child < 0) {
    perror("launch: fork");
    return 2;
  }
  if (child == 0) {
    execv(argv[2], argv + 2);
    fprintf(stderr, "launch: cannot run %s: %s\n", argv[2], strerror(errno));
    _exit(127);
  }
  int status = 0;
  struct rusage usage;
  while (wait4(child, &status, 0, &usage) < 0) {
    if (errno != EINTR) {
      perror("launch: wait4");
      return 2;
    }
  }
  double wall = now() - start;
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  printf("launch maxrss_kb=%ld minflt=%ld majflt=%ld user_s=%.6f sys_s=%.6f wall_s=%.6f exit=%d signal=%d\n",
         usage.ru_maxrss, usage.ru_minflt, usage.ru_majflt, seconds(usage.ru_utime), seconds(usage.ru_stime), wall,
         WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  return code;
}
