#!/usr/bin/env bash
# sort over 300k generated lines (debug flavour: 60k): plain, numeric, unique,
# and a parallel sort with a small buffer (temporary files, merge threads).
# Usage: sort.sh LIB SORT
set -euo pipefail
# shellcheck source=compare.sh
source "$(dirname "$0")/compare.sh"
lib=$(realpath "$1") sort=$2
lines=$(by_size 300000 60000)
# sort frees little at exit: valgrind finds the same blocks "definitely lost"
# (24-80 bytes from main, one per run) that the debug library reports.
debug_leaks=summary

# The input is generated once, before either run, by a plain awk.
input=$program_work/lines.txt
awk -v lines="$lines" 'BEGIN {
  x = 12345
  for (i = 0; i < lines; i++) {
    x = (x * 1103515245 + 12345) % 2147483648
    printf "%d %s%d line-%d\n", x % 100000, substr("abcdefghijklmnopqrstuvwxyz", x % 26 + 1, 1 + x % 7), x % 977, i % 50000
  }
}' >"$input"

workload() {
  export LC_ALL=C
  "$sort" "$input" | sha256sum
  "$sort" -n "$input" | sha256sum
  "$sort" -u -k2,2 "$input" | sha256sum
  "$sort" -u "$input" | wc -l
  "$sort" --parallel=2 -S 2M -T . -t' ' -k3,3 -k1,1n "$input" | sha256sum
  "$sort" -n "$input" | sed -n 1,3p
  "$sort" -rn "$input" | sed -n 1,3p
}
compare_runs "$lib" workload
