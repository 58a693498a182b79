#!/usr/bin/env bash
# The debug library's leak scan against valgrind's memcheck on sort, which
# really leaks at exit (so the debug flavour of sort.sh only shows the leak
# summary). For each command, the bytes the debug library calls unreachable
# must not exceed what valgrind calls definitely (with their indirect blocks)
# or possibly lost: more would be a false positive, a root the scan missed
# (sort --parallel keeps pointers in its threads' TLS and stacks). Both runs
# must print the same and exit 0, and the debug library may report nothing
# else. Usage: leak_oracle.sh DEBUG_LIB SORT VALGRIND
set -euo pipefail
lib=$(realpath "$1") sort=$2 valgrind=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/pcm-leak-oracle.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
export LC_ALL=C

awk 'BEGIN {
  x = 777
  for (i = 0; i < 60000; i++) {
    x = (x * 1103515245 + 12345) % 2147483648
    printf "%d %s%d line-%d\n", x % 100000, substr("abcdefghijklmnopqrstuvwxyz", x % 26 + 1, 1 + x % 7), x % 977, i
  }
}' >lines.txt

fail() { echo "FAIL: $*"; exit 1; }

# check ARGS...: sort ARGS lines.txt under both tools.
check() {
  rm -f report.txt vg.txt
  LD_PRELOAD=$lib PCMALLOC_CONF=report_file:$work/report.txt "$sort" "$@" lines.txt >debug.out 2>debug.err ||
    fail "sort $* exited $? under the debug library: $(tail -n 5 debug.err)"
  "$valgrind" --leak-check=full -q --log-file=vg.txt "$sort" "$@" lines.txt >vg.out 2>vg.err ||
    fail "sort $* exited $? under valgrind: $(tail -n 5 vg.err)"
  cmp -s debug.out vg.out || fail "sort $*: different output under the debug library and valgrind"
  local others debug_bytes valgrind_bytes
  touch report.txt
  others=$(grep -Ev '^pcmalloc-debug: [0-9]+ bytes leaked in ' report.txt || true)
  [[ -z $others ]] || fail "sort $*: the debug library reported: $others"
  debug_bytes=$(awk '/^pcmalloc-debug: [0-9]+ bytes leaked in / { s += $2 } END { print s + 0 }' report.txt)
  # "98 (16 direct, 82 indirect) bytes in 1 blocks are definitely lost": the
  # first number counts the indirect blocks too.
  valgrind_bytes=$(sed -E 's/^==[0-9]+== //' vg.txt |
    awk '/ bytes in [0-9,]+ blocks are (definitely|possibly) lost/ { gsub(",", "", $1); s += $1 } END { print s + 0 }')
  echo "sort $*: debug library $debug_bytes bytes unreachable, valgrind $valgrind_bytes bytes lost"
  ((debug_bytes <= valgrind_bytes)) || fail "sort $*: the debug library found leaks valgrind did not (a missed root)"
}

check
check -n
check -u -k2,2
check --parallel=2 -S 2M -T . -k3,3 -k1,1n
check --parallel=2 -r
