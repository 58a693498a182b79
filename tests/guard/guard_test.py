#!/usr/bin/env python3
"""tests/guard: guarded sampling in the release library (PCMALLOC_CONF
guard_sample_rate), end to end: reports asserted like the debug corpus (kind,
what, threads, function names in the stacks), loops that repeat a bug stopped
within the rounds the rate predicts, the malloc family on guarded blocks, a
real program with every allocation guarded, fork, threads, and the handler off
when guarded sampling is off.

Usage: guard_test.py CASE PROGRAM LIBRARY
"""
import math
import os
import re
import signal
import subprocess
import sys
import tempfile

CASE, PROGRAM, LIBRARY = sys.argv[1:4]
if os.path.exists(LIBRARY):   # meson passes a name relative to the build folder
    LIBRARY = os.path.abspath(LIBRARY)


def run(args, conf, extra_env=None, timeout=120):
    env = dict(os.environ, LD_PRELOAD=LIBRARY, PCMALLOC_CONF=conf)
    env.update(extra_env or {})
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


def fail(message, result=None):
    print('FAILED:', message)
    if result is not None:
        print('--- status:', result.returncode)
        print('--- stdout:\n' + result.stdout)
        print('--- stderr:\n' + result.stderr)
    sys.exit(1)


def first_report(text, kind):
    """The first report of `kind`: its lines, from the ERROR line to the blank line."""
    start = text.find(f'ERROR: pcmalloc: {kind} on ')
    if start < 0:
        return None
    start = text.rfind('\n', 0, start) + 1
    end = text.find('\n\n', start)
    return text[start:end if end >= 0 else len(text)]


def stacks(report):
    """label -> list of function names, as the report prints them."""
    result, label = {}, None
    for line in report.splitlines():
        if re.match(r'^[a-z][a-z ]*:$', line):
            label = line[:-1]
            result[label] = []
        m = re.match(r'^    #\d+ 0x[0-9a-f]+ in (.+)$', line)
        if m and label:
            result[label].append(m.group(1))
    return result


def check_report(result, kind, what, expect_stacks, status=-signal.SIGSEGV):
    output = result.stdout + result.stderr
    report = first_report(output, kind)
    if report is None:
        fail(f'no {kind} report', result)
    if what not in report:
        fail(f"the report does not say '{what}'", result)
    frames = stacks(report)
    for label, function in expect_stacks:
        if not any(function in f for f in frames.get(label, [])):
            fail(f'no frame in {function} in the {label} stack', result)
    for line in re.findall(r'^expect-threads: (.*)$', result.stdout, re.M):
        threads = re.search(r'== threads: .*', report).group(0)
        if line not in threads:
            fail(f"threads line '{threads}' lacks '{line}'", result)
    if result.returncode != status:
        fail(f'expected status {status}, got {result.returncode}', result)
    return report


# Rounds within which a loop with one allocation per round must have been
# stopped: each allocation is guarded with probability 1/rate, so the chance
# that none of B rounds is guarded is (1 - 1/rate)^B; B is chosen for 1e-9,
# plus one round (a thread's first allocation only seeds its countdown).
def round_bound(rate, chance=1e-9):
    return math.ceil(math.log(chance) / math.log1p(-1.0 / rate)) + 1


def loop_case(name, kind, what, stack_checks, rate=100, profile=False):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'counter')
        conf = f'guard_sample_rate:{rate}'
        if profile:   # both samplers under the one switch
            conf += f',profile:true,profile_symbols:false,profile_file:{tmp}/profile'
        result = run([PROGRAM, name], conf, {'GUARD_TEST_COUNTER': path})
        if not os.path.exists(path):
            fail('the program stopped before its loop', result)
        with open(path, 'rb') as f:
            rounds = int.from_bytes(f.read(8), 'little')
    check_report(result, kind, what, stack_checks)
    bound = round_bound(rate)
    if rounds > bound:
        fail(f'stopped after {rounds} rounds; rate {rate} predicts at most {bound}', result)
    print(f'ok: {name}{" with profile:true" if profile else ""}: {kind} stopped at round {rounds} '
          f'(bound {bound} for rate {rate})')


def case_uaf_write():
    loop_case('uaf-write', 'use-after-free', 'write of a freed block (guarded sample)',
              [('detected', 'touch_write'), ('allocated', 'guarded_alloc_site'), ('freed', 'guarded_free_site')])


def case_uaf_read():
    for profile in (False, True):
        loop_case('uaf-read', 'use-after-free', 'read of a freed block (guarded sample)',
                  [('detected', 'touch_read'), ('allocated', 'guarded_alloc_site'), ('freed', 'guarded_free_site')],
                  profile=profile)


def case_overflow():
    loop_case('overflow-read', 'heap-buffer-overflow', 'read past the end of the block',
              [('detected', 'touch_read'), ('allocated', 'guarded_alloc_site')])
    result = run([PROGRAM, 'overflow-write'], 'guard_sample_rate:1')
    report = check_report(result, 'heap-buffer-overflow', 'write past the end of the block',
                          [('detected', 'touch_write'), ('allocated', 'guarded_alloc_site')])
    if '0 bytes after the end of a 32-byte block' not in report or 'freed:' in report:
        fail('the overflow report names the wrong place or a free stack', result)
    print('ok: overflow-write')


def case_underflow():
    loop_case('underflow-read', 'heap-buffer-underflow', 'read before the start of the block',
              [('detected', 'touch_read'), ('allocated', 'guarded_alloc_site')])


def case_double_free():
    result = run([PROGRAM, 'double-free'], 'guard_sample_rate:1')
    check_report(result, 'double-free', 'free of a guarded block that was already freed',
                 [('detected', 'guarded_free_site'), ('allocated', 'guarded_alloc_site'),
                  ('freed', 'guarded_free_site')], status=-signal.SIGABRT)
    print('ok: double-free')


def case_threads():
    result = run([PROGRAM, 'threads'], 'guard_sample_rate:1')
    if result.stdout.count('expect-threads:') != 3:
        fail('the program did not print its threads', result)
    check_report(result, 'use-after-free', 'read of a freed block',
                 [('detected', 'touch_read'), ('allocated', 'guarded_alloc_site'), ('freed', 'guarded_free_site')])
    for rate in (1, 7):
        result = run([PROGRAM, 'stress'], f'guard_sample_rate:{rate}', timeout=300)
        if result.returncode != 0 or 'threads ok' not in result.stdout or 'ERROR' in result.stderr:
            fail(f'threads at rate {rate}', result)
    print('ok: threads')


def case_api():
    result = run([PROGRAM, 'api'], 'guard_sample_rate:1')
    if result.returncode != 0 or 'api ok' not in result.stdout:
        fail('the malloc family on guarded blocks', result)
    # Without guards the same program must tell: its first check is that a block was guarded.
    result = run([PROGRAM, 'api'], 'guard_sample_rate:0')
    if result.returncode == 0 or 'malloc_usable_size(g) == 144' not in result.stdout:
        fail('api passed without guarded sampling: it does not check what it claims to', result)
    print('ok: api')


def case_workload():
    # A real program, every allocation guarded until the slots run out.
    script = ('import json, collections, re\n'
              'data = [{"k": str(i) * (i % 40), "v": list(range(i % 50))} for i in range(20000)]\n'
              'text = json.dumps(data)\n'
              'back = json.loads(text)\n'
              'assert back == data\n'
              'c = collections.Counter(re.findall(r"[0-9]+", text))\n'
              'print("workload", len(text), sum(c.values()))\n')
    plain = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=300)
    for rate in (1, 100):
        result = run([sys.executable, '-c', script], f'guard_sample_rate:{rate}', timeout=300)
        if result.returncode != 0 or result.stdout != plain.stdout or result.stderr:
            fail(f'python under guard_sample_rate:{rate}', result)
    print('ok: workload:', plain.stdout.strip())


def case_fork():
    result = run([PROGRAM, 'fork'], 'guard_sample_rate:1')
    if result.returncode != 0 or 'parent ok' not in result.stdout or 'child allocated' not in result.stdout:
        fail('fork', result)
    if f'child status: signal {int(signal.SIGSEGV)}' not in result.stdout:
        fail("the child's use after free did not end it by SIGSEGV", result)
    check_report(result, 'use-after-free', 'write of a freed block',
                 [('detected', 'touch_write'), ('allocated', 'guarded_alloc_site'), ('freed', 'guarded_free_site')],
                 status=0)
    print('ok: fork')


def case_off():
    for conf, expected in (('guard_sample_rate:0', 'default'), ('', 'default'), ('guard_sample_rate:100', 'installed'),
                           ('guard_sample_rate:100,hardened:true', 'default')):   # hardened: no guarded sampling
        result = run([PROGRAM, 'handler'], conf)
        if f'handler: {expected}' not in result.stdout:
            fail(f"with '{conf}' the SIGSEGV handler should be {expected}", result)
        # A fault that is not ours ends the process as it would have, without a report.
        if result.returncode != -signal.SIGSEGV or 'ERROR' in result.stderr:
            fail(f"with '{conf}' a wild fault should end by SIGSEGV without a report", result)
    result = run([PROGRAM, 'handler'], 'guard_sample_rate:1,guard_sample_rat:3')
    if 'guard_sample_rat' not in result.stderr:
        fail('an unknown key is not warned about', result)
    print('ok: off')


def case_raise():
    # A sent SIGSEGV has no fault address: it must kill as it would without us.
    for rate in (1, 100):
        result = run([PROGRAM, 'raise'], f'guard_sample_rate:{rate}')
        if result.returncode != -signal.SIGSEGV or 'ERROR' in result.stderr or 'not stopped' in result.stdout:
            fail(f'raise(SIGSEGV) under guard_sample_rate:{rate} should end the process by SIGSEGV', result)
    print('ok: raise')


def case_resumed():
    # The page made readable while the report is written: the access must not go on.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'report')
        result = run([PROGRAM, 'resumed'], f'guard_sample_rate:1,report_file:{path}', {'GUARD_TEST_REPORT': path})
        with open(path) as f:
            report = f.read()
    if 'use-after-free' not in report or 'stopping' not in report + result.stderr:
        fail('no use-after-free report in the report file:\n' + report, result)
    if result.returncode != -signal.SIGSEGV or 'resumed' in result.stdout:
        fail('the faulting thread went on after the report', result)
    print('ok: resumed')


def case_underflow_page():
    for name, size in (('underflow-page', 16384), ('underflow-aligned', 12288)):
        result = run([PROGRAM, name], 'guard_sample_rate:1')
        report = check_report(result, 'heap-buffer-underflow', 'read before the start of the block',
                              [('detected', 'touch_read')])
        if f'1 bytes before a {size}-byte block' not in report:
            fail(f'{name}: the underflow is not blamed on the {size}-byte block', result)
    print('ok: underflow-page')


def case_realloc_freed():
    # rate 1: the realloc is itself sampled; the freed pointer is a realloc's error.
    result = run([PROGRAM, 'realloc-freed'], 'guard_sample_rate:1')
    check_report(result, 'realloc-of-freed', 'realloc of a guarded block that was already freed',
                 [('detected', 'realloc_site'), ('allocated', 'guarded_alloc_site'), ('freed', 'guarded_free_site')],
                 status=-signal.SIGABRT)
    print('ok: realloc-freed')


def case_sized_delete():
    result = run([PROGRAM, 'sized-delete'], 'guard_sample_rate:1')
    check_report(result, 'sized-delete-mismatch', 'sized delete of 100 bytes on a guarded block of 130 bytes',
                 [('detected', 'sized_delete_site'), ('allocated', 'new_site')], status=-signal.SIGABRT)
    print('ok: sized-delete')


def case_fork_pattern():
    result = run([PROGRAM, 'fork-pattern'], 'guard_sample_rate:10')
    found = dict(re.findall(r'^(child|parent): ([01]+)$', result.stdout, re.M))
    if result.returncode != 0 or len(found) != 2:
        fail('fork-pattern did not print both patterns', result)
    if '1' not in found['parent'] or '1' not in found['child']:
        fail('no guarded allocation at rate 10 in 400', result)
    if found['parent'] == found['child']:
        fail('parent and child guarded the same allocations after fork', result)
    print('ok: fork-pattern')


def case_rate():
    # The fraction guarded is 1/rate: with n allocations at rate 100 the count is
    # binomial, mean m = n/100; by Chernoff's bounds it leaves m(1 +- 0.15) with
    # probability below 1e-9 each way for m = 2000 (exp(-0.15^2 m / 2.15) < 1e-9).
    # A guard that ignored the rate (every allocation, or none) fails.
    n, rate = 200000, 100
    result = run([PROGRAM, 'fraction', str(n)], f'guard_sample_rate:{rate}', timeout=300)
    m = re.search(r'guarded (\d+) of (\d+)', result.stdout)
    if result.returncode != 0 or not m:
        fail('fraction', result)
    guarded, mean = int(m.group(1)), n / rate
    if not mean * 0.85 <= guarded <= mean * 1.15:
        fail(f'{guarded} of {n} allocations guarded at rate {rate}; expected {mean:.0f} +- 15%', result)
    print(f'ok: rate: {guarded} of {n} guarded at rate {rate}')


CASES = {name[5:].replace('_', '-'): f for name, f in globals().items() if name.startswith('case_')}
if CASE not in CASES:
    sys.exit(f'unknown case {CASE}; cases: {" ".join(CASES)}')
CASES[CASE]()
