#!/usr/bin/env bash
# git: a repository of ~200 generated files in four commits, then log --stat,
# gc (pack-objects, repack, prune) and fsck. Dates, names and emails are fixed,
# so commit hashes are the same in both runs. Usage: git.sh LIB GIT
set -euo pipefail
# shellcheck source=compare.sh
source "$(dirname "$0")/compare.sh"
lib=$(realpath "$1") git=$2
# git leaks at exit (up to 8 KiB per command): valgrind finds the same blocks
# "definitely lost" that the debug library reports.
debug_leaks=summary

export GIT_AUTHOR_NAME="pcmalloc test" GIT_AUTHOR_EMAIL="test@pcmalloc.invalid"
export GIT_COMMITTER_NAME="pcmalloc test" GIT_COMMITTER_EMAIL="test@pcmalloc.invalid"
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null HOME=$program_work

# files FIRST LAST ROUND: generate files FIRST..LAST, their content depending on ROUND.
files() {
  local i j
  for ((i = $1; i <= $2; i++)); do
    mkdir -p "dir$((i % 10))"
    for ((j = 0; j < 20 + i % 30; j++)); do echo "file $i line $j round $3 $((i * j * $3 % 9973))"; done \
      >"dir$((i % 10))/file$i.txt"
  done
}

commit() {
  export GIT_AUTHOR_DATE="2024-01-0$1T12:00:00Z" GIT_COMMITTER_DATE="2024-01-0$1T12:00:00Z"
  "$git" add -A
  "$git" commit -q -m "round $1: $2"
}

workload() {
  "$git" init -q -b main repo
  cd repo
  files 1 120 1
  commit 1 "first 120 files"
  files 100 200 2
  commit 2 "rewrite 100-120, add 121-200"
  "$git" rm -q dir3/file13.txt dir4/file24.txt
  files 1 50 3
  commit 3 "remove two, rewrite 1-50"
  "$git" mv dir5/file5.txt dir5/renamed.txt
  files 60 80 4
  commit 4 "rename one, rewrite 60-80"
  "$git" log --stat
  "$git" gc -q
  "$git" fsck --full --strict
  echo "fsck: ok"
  "$git" rev-parse HEAD HEAD~3
  "$git" count-objects -v | grep -E '^(count|in-pack|packs):'
  "$git" diff --stat HEAD~3 HEAD | tail -n 1
  "$git" ls-files | wc -l
}
compare_runs "$lib" workload
