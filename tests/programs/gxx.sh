#!/usr/bin/env bash
# g++ -O1 compiles compile_me.cpp (cc1plus, as and ld inherit LD_PRELOAD), then
# the program runs. Compared: g++'s status, the program's output, and the
# executable's bytes (a fixed -frandom-seed makes g++ reproducible).
# Usage: gxx.sh LIB GXX SOURCE
set -euo pipefail
# shellcheck source=compare.sh
source "$(dirname "$0")/compare.sh"
lib=$(realpath "$1") gxx=$2 source=$3

workload() {
  cp "$source" prog.cpp
  "$gxx" -std=c++20 -O1 -Wall -Wextra -frandom-seed=pcmalloc prog.cpp -o prog
  echo "g++: exit 0"
  ./prog
  echo "program: exit 0"
  sha256sum prog
}
compare_runs "$lib" workload
