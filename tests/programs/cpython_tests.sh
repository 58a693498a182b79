#!/usr/bin/env bash
# CPython's own regression tests (Debian's python3.11 with its test package)
# with PYTHONMALLOC=malloc, so every object comes from malloc. Compared: per
# module, how many test cases ran and the unittest verdict (OK, skipped=N,
# failures), the regrtest result lines, and the exit status; not timings.
# The debug flavour runs a smoke subset. Usage: cpython_tests.sh LIB PYTHON3.11
set -euo pipefail
# shellcheck source=compare.sh
source "$(dirname "$0")/compare.sh"
lib=$(realpath "$1") python=$2

if ! "$python" -c 'import test.test_dict' 2>/dev/null; then
  echo "$python has no test package (Debian: libpython3.11-testsuite)"
  exit 77
fi

# Containers, strings, the cycle collector, threads (_thread; test_threading
# is left out: mostly lock timeouts, slow and allocation-light), weak references.
read -r -a modules <<<"$(by_size \
  'test_dict test_set test_list test_unicode test_json test_gc test_thread test_queue test_weakref' \
  'test_dict test_list test_json test_gc test_threading_local')"
# Not test_thread under the debug library (leaks:true): in 3 runs of 4 it
# really leaks two 32-byte sem_t of _thread locks at exit (valgrind: the same 64
# bytes, same stack, "definitely lost"). test_threading_local is leak-free and
# keeps threads and their thread-local storage in the smoke set.

workload() {
  export PYTHONMALLOC=malloc PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 HOME=$PWD
  local status=0
  "$python" -m test -v "${modules[@]}" >regrtest.log 2>&1 || status=$?
  # The whole log goes to stderr (shown on failure); stdout keeps what must not
  # depend on the allocator: which module ran, how many cases, the verdicts.
  plain cat regrtest.log >&2
  plain sed -E 's/^[0-9]+:[0-9]+:[0-9]+ (load avg: [0-9.]+ )?//' regrtest.log |
    plain grep -E '^\[ *[0-9]+/[0-9]+(/[0-9]+)?\] test_|^Ran [0-9]+ tests? in|^(OK|FAILED)( \(.*\))?$|^(FAIL|ERROR): |^== Tests result|^All [0-9]+ tests OK|^[0-9]+ tests? (OK|failed|skipped|altered)' |
    plain sed -E 's/^(Ran [0-9]+ tests?) in .*/\1/; s/ (passed|failed) in [0-9.]+ (sec|min).*$/ \1/'
  return "$status"
}
compare_runs "$lib" workload
