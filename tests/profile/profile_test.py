#!/usr/bin/env python3
"""tests/profile: the heap profiler of libpcmalloc.so, end to end.

Usage: profile_test.py CASE SITES_PROGRAM LIBRARY SOURCE_ROOT
CASE: accuracy | formats | threads | fork | off

profile.proto is decoded here (a small protobuf reader: varints and
length-delimited fields are all profile.proto uses), so no protobuf package
is needed. google-pprof comes from Debian's google-perftools (tools/pcm
installs it); without it the formats case is skipped (77).
"""
import glob
import gzip
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import xml.dom.minidom

KIB, MIB = 1024, 1024 * 1024
SKIP = 77


def fields(data):
    """(field number, wire type, value) of one protobuf message."""
    i = 0
    while i < len(data):
        key, i = varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(data, i)
        elif wire == 2:
            n, i = varint(data, i)
            value, i = data[i:i + n], i + n
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f'wire type {wire}')
        yield number, wire, value


def varint(data, i):
    shift = value = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7f) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def packed(value, wire):
    if wire == 0:
        return [value]
    out, i = [], 0
    while i < len(value):
        v, i = varint(value, i)
        out.append(v)
    return out


def decode_profile(path):
    """{'types': [(type, unit)], 'samples': [(leaf-first function names, values)], 'period': n}"""
    with gzip.open(path) as f:
        data = f.read()
    strings, types, samples, locations, functions = [], [], [], {}, {}
    period = None
    period_type = None
    for number, wire, value in fields(data):
        if number == 6:
            strings.append(value.decode())
        elif number == 1:
            vt = {n: v for n, _, v in fields(value)}
            types.append((vt.get(1, 0), vt.get(2, 0)))
        elif number == 11:
            vt = {n: v for n, _, v in fields(value)}
            period_type = (vt.get(1, 0), vt.get(2, 0))
        elif number == 12:
            period = value
        elif number == 2:
            ids, values = [], []
            for n, w, v in fields(value):
                if n == 1:
                    ids += packed(v, w)
                elif n == 2:
                    values += packed(v, w)
            samples.append((ids, values))
        elif number == 4:
            location_id, lines = 0, []
            for n, w, v in fields(value):
                if n == 1:
                    location_id = v
                elif n == 4:
                    line = {ln: lv for ln, _, lv in fields(v)}
                    lines.append(line.get(1, 0))
            locations[location_id] = lines
        elif number == 5:
            fn = {n: v for n, _, v in fields(value)}
            functions[fn.get(1, 0)] = fn.get(2, 0)
    assert strings and strings[0] == '', 'string_table[0] must be ""'

    def name(location_id):
        lines = locations[location_id]
        return strings[functions[lines[0]]] if lines else '?'
    return {
        'types': [(strings[t], strings[u]) for t, u in types],
        'period_type': (strings[period_type[0]], strings[period_type[1]]) if period_type else None,
        'period': period,
        'samples': [([name(i) for i in ids], values) for ids, values in samples],
    }


def by_site(profile, names):
    """Bytes ('space') per site function: samples whose stack contains it."""
    space = [t for t, _ in profile['types']].index('space')
    totals = dict.fromkeys(names, 0)
    for stack, values in profile['samples']:
        for n in names:
            if any(n in frame for frame in stack):
                totals[n] += values[space]
                break
    return totals


def run(program, library, args, conf, cwd):
    env = dict(os.environ, LD_PRELOAD=library, PCMALLOC_CONF=conf)
    return subprocess.run([program] + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def exit_prefix(directory):
    summaries = [p for p in glob.glob(os.path.join(directory, 'p.*.txt')) if re.search(r'p\.\d+\.txt$', p)]
    assert len(summaries) == 1, summaries
    return summaries[0][:-4]


SITES = ['site_large', 'site_pages', 'site_small']
TRUTH_LIVE = {'site_large': 2048 * MIB, 'site_pages': 1280 * MIB, 'site_small': 512 * MIB}
TRUTH_ALLOC = {'site_large': 2048 * MIB, 'site_pages': 2560 * MIB, 'site_small': 1536 * MIB}


def case_accuracy(program, library, root, work):
    r = run(program, library, ['accuracy'], f'profile:true,profile_file:{work}/p', work)
    assert r.returncode == 0, r.stderr
    prefix = exit_prefix(work)
    failures = []
    for kind, truth in (('heap', TRUTH_LIVE), ('alloc', TRUTH_ALLOC)):
        profile = decode_profile(prefix + f'.{kind}.pb.gz')
        estimate = by_site(profile, SITES)
        for site in SITES:
            error = estimate[site] / truth[site] - 1
            print(f'{kind:5} {site:10} estimate {estimate[site] / MIB:8.1f} MiB truth {truth[site] / MIB:6.0f} MiB '
                  f'error {100 * error:+.1f}%')
            if abs(error) > 0.10:
                failures.append(f'{kind} {site}: {100 * error:+.1f}%')
        order = sorted(SITES, key=lambda s: -estimate[s])
        expected = sorted(SITES, key=lambda s: -truth[s])
        if order != expected:
            failures.append(f'{kind}: order {order}, expected {expected}')
    # The peak: everything live at exit was live at the peak too.
    peak = by_site(decode_profile(prefix + '.peak.pb.gz'), SITES)
    for site in SITES:
        if abs(peak[site] / TRUTH_LIVE[site] - 1) > 0.10:
            failures.append(f'peak {site}: {peak[site]}')
    assert not failures, failures


def case_formats(program, library, root, work):
    if not shutil.which('google-pprof'):
        print('google-pprof missing (apt-get install google-perftools)')
        return SKIP
    r = run(program, library, ['accuracy'], f'profile:true,profile_file:{work}/p', work)
    assert r.returncode == 0, r.stderr
    prefix = exit_prefix(work)
    profile = decode_profile(prefix + '.heap.pb.gz')
    assert profile['types'] == [('objects', 'count'), ('space', 'bytes')], profile['types']
    assert profile['period_type'] == ('space', 'bytes') and profile['period'] == 512 * KIB, profile
    # google-pprof on the legacy text profile: the top function by bytes.
    text = subprocess.run(['google-pprof', '--text', program, prefix + '.heap'],
                          capture_output=True, text=True, timeout=120)
    print(text.stdout[:800])
    rows = [line for line in text.stdout.splitlines() if re.match(r'\s*[\d.]+\s+[\d.]+%', line)]
    assert rows and 'site_large' in rows[0], text.stdout + text.stderr
    with open(prefix + '.heap') as f:
        header = f.readline()
    assert re.match(r'heap profile:\s+\d+:\s+\d+ \[\s*\d+:\s+\d+\] @ heapprofile', header), header
    # The text summary names the sites with file:line.
    with open(prefix + '.txt') as f:
        summary = f.read()
    assert re.search(r'site_large\(unsigned long\) \S*sites\.cpp:\d+', summary), summary[:2000]
    # The flame graph: valid XML naming the sites, with titles and the zoom script.
    svg = prefix + '.peak.svg'
    subprocess.run([sys.executable, os.path.join(root, 'tools', 'profile', 'flamegraph.py'),
                    prefix + '.peak.folded', svg], check=True)
    document = xml.dom.minidom.parse(svg)
    titles = [t.firstChild.data for t in document.getElementsByTagName('title') if t.firstChild]
    for site in SITES:
        assert any(site in t for t in titles), (site, titles[:10])
    assert document.getElementsByTagName('script'), 'no zoom script'
    # tools/pcm profile end to end.
    out = os.path.join(work, 'tool')
    env = dict(os.environ, PCM_BUILD_DIR=os.path.dirname(library))
    r = subprocess.run([os.path.join(root, 'tools', 'pcm'), 'profile', '--out', out, '--', program, 'accuracy'],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for suffix in ('.txt', '.heap.pb.gz', '.peak.pb.gz', '.alloc.pb.gz', '.heap', '.peak.svg', '.alloc.svg'):
        assert glob.glob(os.path.join(out, 'profile.*' + suffix)), suffix


def all_profiles_whole(work):
    """Every profile written decodes; no temporary file is left behind."""
    leftovers = glob.glob(os.path.join(work, '*.tmp.*'))
    assert not leftovers, leftovers
    files = glob.glob(os.path.join(work, '*.pb.gz'))
    for path in files:
        decode_profile(path)
    for path in glob.glob(os.path.join(work, '*.heap')):
        with open(path) as f:
            text = f.read()
        assert text.startswith('heap profile:') and 'MAPPED_LIBRARIES:' in text, path
    return files


def case_threads(program, library, root, work):
    conf = f'profile:true,profile_file:{work}/p,profile_signal:{int(signal.SIGUSR2)},profile_rate:65536'
    r = run(program, library, ['threads', f'{work}/d'], conf, work)
    assert r.returncode == 0, r.stderr
    files = all_profiles_whole(work)
    thread_dumps = [f for f in files if '.thread' in f and f.endswith('.heap.pb.gz')]
    signal_dumps = [f for f in files if '.sig' in f and f.endswith('.heap.pb.gz')]
    assert len(thread_dumps) == 5, thread_dumps
    assert len(signal_dumps) >= 1, files
    # The churning threads' site is in the dumps made while they ran.
    names = by_site(decode_profile(thread_dumps[-1].replace('.heap.', '.alloc.')), ['churn_site'])
    assert names['churn_site'] > 0, names
    print(f'{len(thread_dumps)} dumps from a thread, {len(signal_dumps)} on the signal, all whole')


def case_fork(program, library, root, work):
    r = run(program, library, ['fork', f'{work}/d'], f'profile:true,profile_file:{work}/p,profile_rate:65536', work)
    assert r.returncode == 0, r.stdout + r.stderr
    files = all_profiles_whole(work)
    children = [f for f in files if '.child' in f and f.endswith('.heap.pb.gz')]
    assert len(children) == 20, children
    print(f'{len(files)} profiles, {len(children)} from fork children, all whole')


def case_off(program, library, root, work):
    """Off by default: nothing written, pcm_profile_dump says ENOTSUP."""
    r = run(program, library, ['threads', f'{work}/d'], '', work)
    assert r.returncode == 3 and 'pcm_profile_dump' in r.stderr, (r.returncode, r.stderr)
    assert not glob.glob(os.path.join(work, '*.pb.gz'))


def main():
    case, program, library, root = sys.argv[1:5]
    work = tempfile.mkdtemp(prefix='pcm-profile-')
    try:
        result = globals()['case_' + case](os.path.abspath(program), os.path.abspath(library), root, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result or 0


if __name__ == '__main__':
    sys.exit(main())
