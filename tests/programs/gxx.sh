#!/usr/bin/env bash
# g++ -O1 compiles SOURCE (cc1plus, as and ld inherit LD_PRELOAD), then the
# program runs. Compared: g++'s status, the program's output, and the
# executable's bytes (a fixed -frandom-seed makes g++ reproducible). The debug
# flavour compiles with -O0 and PCM_SMOKE defined (less work in the optimiser;
# a source may instantiate less). Usage: gxx.sh LIB GXX SOURCE
set -euo pipefail
# shellcheck source=compare.sh
source "$(dirname "$0")/compare.sh"
lib=$(realpath "$1") gxx=$2 source=$3
read -r -a flags <<<"$(by_size -O1 '-O0 -DPCM_SMOKE')"
# The driver, cc1plus, collect2, as and ld free little at exit: valgrind finds
# the same blocks "definitely lost" (as alone: 0.3 MiB in 16k blocks) that
# the debug library reports.
debug_leaks=summary

workload() {
  cp "$source" prog.cpp
  "$gxx" -std=c++20 "${flags[@]}" -Wall -Wextra -frandom-seed=pcmalloc prog.cpp -o prog
  echo "g++: exit 0"
  ./prog
  echo "program: exit 0"
  sha256sum prog
}
compare_runs "$lib" workload
