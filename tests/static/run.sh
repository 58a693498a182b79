#!/usr/bin/env bash
# Static checks over the library's own code (arenas/, src/, include/): clang-tidy
# with the repository's .clang-tidy, then cppcheck. Any finding fails the test;
# a missing tool skips it (exit 77). Tests and benchmarks are not checked: the
# debug corpus is buggy on purpose.
# usage: run.sh SOURCE_ROOT BUILD_DIR (BUILD_DIR has compile_commands.json)
set -euo pipefail
root=$1 build=$2
command -v clang-tidy >/dev/null && command -v cppcheck >/dev/null || { echo "clang-tidy or cppcheck missing"; exit 77; }
cd "$root"
mapfile -t sources < <(ls arenas/*.cpp arenas/platform/*.cpp src/*.cpp src/debug/*.cpp src/report/*.cpp src/guard/*.cpp src/trace/*.cpp src/profile/*.cpp)

status=0
echo "== clang-tidy (${#sources[@]} files)"
# One process per file, as many at once as there are CPUs; -p gives each file
# the flags it is built with.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
printf '%s\n' "${sources[@]}" | xargs -P "$(nproc)" -n 1 clang-tidy -p "$build" --quiet >"$log" 2>/dev/null || status=1
grep -E "(warning|error):" "$log" | sort -u || true
((status == 0)) && echo "clang-tidy: clean"

echo "== cppcheck"
cppcheck --quiet --std=c++20 --language=c++ --enable=warning,performance,portability \
  --inline-suppr --error-exitcode=1 -I arenas -I include -I src \
  --suppress=missingIncludeSystem \
  `# cppcheck does not know that asm outputs initialise variables` \
  --suppress='legacyUninitvar:arenas/rseq.hpp' \
  `# nor does it drop a discarded if-constexpr branch: the nothrow operator new` \
  `# forms instantiate new_failed<return_null>, whose throw is never compiled` \
  --suppress='throwInNoexceptFunction:src/override.cpp' "${sources[@]}" || status=1
((status == 0)) && echo "static checks: clean"
exit "$status"
