#!/usr/bin/env python3
"""Run the heap-error corpus (heap_errors) under several allocators and say,
for each case, how it ended:

  R  stopped with a report (the allocator's line or block, then abort)
  F  stopped by a fault at the error (SIGSEGV or SIGBUS, no report)
  D  defended: the unsafe outcome did not happen (the reuse cases, exit 3)
  r  reported, then went on to the end (the debug library's report-and-go-on)
  -  went on to the end unnoticed
  T  did not finish in time (a failure, unless the expectations name it: a
     program's own undefined behaviour can loop before any allocator call)

Usage:
  corpus.py PROGRAM --mode "NAME[;VAR=VALUE...]" ... [--expect FILE] [--write FILE]
A mode is a name and the environment it adds (LD_PRELOAD, PCMALLOC_CONF, ...);
`--mode glibc` adds nothing. With --expect, every case's outcome in every mode
named in the file must be one of the letters listed there (`R|F` allows
either); the exit status is 1 otherwise. The summary line per mode counts the
stopped cases (R, F, D).
"""
import argparse
import concurrent.futures
import os
import signal
import subprocess
import sys

STOPPED = set('RFD')


def outcome(program, case, size, env, timeout):
    try:
        run = subprocess.run([program, case, size], env=env, capture_output=True, text=True,
                             errors='replace', timeout=timeout)
    except subprocess.TimeoutExpired:
        return 'T', ''
    out = run.stdout + run.stderr
    reported = ('pcmalloc: error:' in out or 'ERROR: pcmalloc-debug:' in out or
                'free(): ' in out or 'malloc(): ' in out or 'double free' in out or 'corrupted' in out)
    if 'SURVIVED' in run.stdout:
        return ('r' if 'ERROR: pcmalloc-debug:' in out else '-'), out
    if run.returncode == 3:
        return 'D', out
    if run.returncode in (-signal.SIGSEGV, -signal.SIGBUS) and not reported:
        return 'F', out
    if reported:
        return 'R', out
    return 'F' if run.returncode < 0 else '?', out


def parse_mode(text):
    name, _, rest = text.partition(";")
    extra = {}
    for assignment in filter(None, rest.split(";")):
        key, _, value = assignment.partition('=')
        extra[key] = value
    return name, extra


def read_expectations(path):
    header, rows = None, {}
    with open(path) as f:
        for line in f:
            line = line.split('#', 1)[0].split()
            if not line:
                continue
            if header is None:
                header = line[2:]
                continue
            rows[(line[0], line[1])] = dict(zip(header, line[2:]))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('program')
    parser.add_argument('--mode', action='append', required=True, help="NAME[;VAR=VALUE...]")
    parser.add_argument('--expect', help='expected outcomes (a table: case size mode...)')
    parser.add_argument('--write', help='write the outcomes as such a table')
    parser.add_argument('--timeout', type=float, default=10.0, help='seconds per run (default 10)')
    parser.add_argument('--jobs', type=int, default=os.cpu_count() or 1, help='runs at once (default: CPUs)')
    parser.add_argument('--verbose', action='store_true', help='print the output of each mismatch')
    args = parser.parse_args()

    modes = [parse_mode(m) for m in args.mode]
    cases = [tuple(line.split()) for line in
             subprocess.run([args.program, '--list'], check=True, capture_output=True, text=True).stdout.splitlines()]
    expected = read_expectations(args.expect) if args.expect else {}
    if args.expect:
        missing = [c for c in cases if c not in expected]
        if missing:
            print(f'corpus.py: no expectation for {len(missing)} case(s), e.g. {" ".join(missing[0])}')
            return 1

    table, failures = {}, 0
    runs = [(case, name, dict(os.environ, **extra)) for case in cases for name, extra in modes]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda r: outcome(args.program, r[0][0], r[0][1], r[2], args.timeout), runs))
    for (case, name, _), (got, out) in zip(runs, results):
            table[(case, name)] = got
            want = expected.get(case, {}).get(name)
            if (got == 'T' and want is None) or (want is not None and got not in want.split('|')):
                failures += 1
                print(f'MISMATCH {case[0]} {case[1]} under {name}: got {got}, expected {want}')
                if args.verbose:
                    print('    ' + out.strip().replace('\n', '\n    ')[:2000])

    width = max(len(c[0]) for c in cases)
    print(f'{"case":<{width}} {"size":<6} ' + ' '.join(f'{n:>8}' for n, _ in modes))
    for case in cases:
        print(f'{case[0]:<{width}} {case[1]:<6} ' + ' '.join(f'{table[(case, n)]:>8}' for n, _ in modes))
    for name, _ in modes:
        stopped = sum(table[(c, name)] in STOPPED for c in cases)
        reported = sum(table[(c, name)] in 'Rr' for c in cases)
        print(f'{name}: stopped {stopped} of {len(cases)} (with a report {sum(table[(c, name)] == "R" for c in cases)}, '
              f'by a fault {sum(table[(c, name)] == "F" for c in cases)}, defended {sum(table[(c, name)] == "D" for c in cases)}); '
              f'reported {reported}')
    if args.write:
        with open(args.write, 'w') as f:
            f.write('# case size ' + ' '.join(n for n, _ in modes) + '\n')
            f.write('case size ' + ' '.join(n for n, _ in modes) + '\n')
            for case in cases:
                f.write(f'{case[0]} {case[1]} ' + ' '.join(table[(case, n)] for n, _ in modes) + '\n')
    if failures:
        print(f'corpus.py: {failures} outcome(s) differ from the expectations')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
