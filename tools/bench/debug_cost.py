#!/usr/bin/env python3
"""What a memory-debugging tool costs: run.py's workloads under release pcmalloc
(the reference), pcmalloc's debug library, AddressSanitizer and valgrind
memcheck, interleaved over rounds (the order rotates), one thread. The numbers
behind the README's debug-mode table.

  pcm-debug  the same binary with LD_PRELOAD=libpcmalloc-debug.so (PCMALLOC_CONF
             from --conf, default none: the documented defaults)
  asan       the program rebuilt with g++ -fsanitize=address (what ASan needs),
             into BUILD/debug-cost/asan/; default ASAN_OPTIONS
  valgrind   valgrind --tool=memcheck on the release binary (no preload)

A python3 workload (dict and list churn, PYTHONMALLOC=malloc so every object
goes through malloc) stands for a program nobody rebuilds: ASan has no entry.

Cost = CPU time (user + sys, from wait4 in `launch`) over release pcmalloc's,
median of the rounds; memory = peak RSS likewise. CPU time rather than wall time
because a tool's own helper threads and a busy machine should not hide work.
Checksums must agree with the release run. Standard library only.
"""

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (run.py: workloads, launcher protocol, result parsing)

TOOLS = ("pcm-debug", "asan", "valgrind")
# The debug table's workloads: allocation-heavy programs at run.py's quick sizes
# (about 0.05-0.2 s under release pcmalloc), and python3.
DEFAULT_WORKLOADS = "larson,churn,xmalloc,micro-64,micro-1024,map-churn,requests,large,python3"
PYTHON_SCRIPT = r"""
import time, zlib
start = time.perf_counter()
total, ops = 0, 0
for round in range(ROUNDS):
    d = {}
    for i in range(4000):
        d["k%d-%d" % (round, i)] = [i, str(i) * 3, (i, round)]
    for i in range(0, 4000, 3):
        del d["k%d-%d" % (round, i)]
    total = zlib.crc32(repr(sorted(d)[:50]).encode(), total)
    ops += 4000
print("python3 threads=1 seconds=%.6f ops=%d checksum=%016x" % (time.perf_counter() - start, ops, total))
"""


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--only", default=DEFAULT_WORKLOADS, help=f"workloads (default {DEFAULT_WORKLOADS})")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"tools to compare (default {','.join(TOOLS)})")
    parser.add_argument("--full", action="store_true", help="run.py's full sizes (valgrind then takes hours)")
    parser.add_argument("--conf", default="", help="PCMALLOC_CONF for pcm-debug (default: its defaults)")
    parser.add_argument("--build", help="meson build folder (default: <repo>/build)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds before a run is killed")
    args = parser.parse_args()
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in args.tools if t not in TOOLS]
    if unknown:
        bench.fail(f"unknown tool(s) {', '.join(unknown)} (known: {', '.join(TOOLS)})")
    if args.rounds < 1:
        bench.fail("--rounds must be at least 1")
    return args


def build_asan(program, out_dir):
    """The workload rebuilt with AddressSanitizer (kept between runs)."""
    source = bench.REPO / "tools" / "bench" / f"{program}.cpp"
    binary = out_dir / program
    if binary.exists() and binary.stat().st_mtime >= max(source.stat().st_mtime,
                                                          (source.parent / "bench_common.hpp").stat().st_mtime):
        return binary
    out_dir.mkdir(parents=True, exist_ok=True)
    # The flags of the release programs (-O2, NDEBUG), plus ASan's.
    command = ["g++", "-std=c++20", "-O2", "-DNDEBUG", "-g", "-pthread", "-fsanitize=address",
               "-fno-omit-frame-pointer", str(source), "-o", str(binary)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        bench.fail(f"cannot build {program} with -fsanitize=address:\n{result.stderr[-2000:]}")
    return binary


def cases(args, build, python):
    """[(name, {tool: (preload, command, env)})] for every chosen workload."""
    bench_dir = build / "tools" / "bench"
    release = str(build / "libpcmalloc.so")
    debug = str(build / "libpcmalloc-debug.so")
    valgrind = shutil.which("valgrind")
    wanted = [n.strip() for n in args.only.split(",") if n.strip()]
    chosen = []
    for name in wanted:
        if name == "python3":
            if not python:
                bench.warn("python3 not found; skipping its workload")
                continue
            script = PYTHON_SCRIPT.replace("ROUNDS", "60" if args.full else "12")
            command = [python, "-c", script]
            env = {"PYTHONMALLOC": "malloc"}
            asan = None
        else:
            matches = [w for w in bench.WORKLOADS if w.name == name]
            if not matches:
                bench.fail(f"unknown workload '{name}' (see run.py --list, or python3)")
            w = matches[0]
            sizes = list(w.full if args.full else w.quick)
            command = [str(bench_dir / w.program), "1", *sizes]
            env = {}
            asan = [str(build_asan(w.program, build / "debug-cost" / "asan")), "1", *sizes] \
                if "asan" in args.tools else None
        runs = {"release": (release, command, env)}
        if "pcm-debug" in args.tools:
            runs["pcm-debug"] = (debug, command, dict(env, PCMALLOC_CONF=args.conf) if args.conf else env)
        if "asan" in args.tools and asan:
            runs["asan"] = (None, asan, dict(env, ASAN_OPTIONS="detect_leaks=1"))
        if "valgrind" in args.tools:
            if valgrind:
                runs["valgrind"] = (None, [valgrind, "--tool=memcheck", "-q", *command], env)
            else:
                bench.warn("valgrind not found; skipping it")
        chosen.append((name, runs))
    return chosen


def run_with_env(launcher, preload, command, env, timeout):
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return bench.run_once(launcher, preload, command, timeout)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main():
    args = parse_arguments()
    build = Path(args.build).resolve() if args.build else bench.REPO / "build"
    launcher = build / "tools" / "bench" / "launch"
    for needed in (launcher, build / "libpcmalloc.so", build / "libpcmalloc-debug.so"):
        if not needed.exists():
            bench.fail(f"{needed} not found: build first (tools/pcm lib, or ninja -C {build})")
    python = shutil.which("python3")
    table = cases(args, build, python)
    tools = ["release"] + [t for t in args.tools]
    samples = {name: {t: [] for t in runs} for name, runs in table}
    failures = []
    load = os.getloadavg()[0]
    if load > 0.5:
        bench.warn(f"load average is {load:.1f}: other work on this machine adds noise")
    for round_index in range(args.rounds):
        for case_index, (name, runs) in enumerate(table):
            order = [t for t in tools if t in runs]
            shift = (round_index + case_index) % len(order)
            progress = []
            for tool in order[shift:] + order[:shift]:
                preload, command, env = runs[tool]
                sample, error = run_with_env(str(launcher), preload, command, env, args.timeout)
                if error:
                    failures.append(f"{name} {tool}: {error}\n    reproduce: "
                                    + " ".join(f"{k}={v}" for k, v in env.items()) + " "
                                    + bench.reproduction(preload, command))
                    progress.append(f"{tool} FAILED")
                    continue
                samples[name][tool].append(sample)
                progress.append(f"{tool} {sample['user_s'] + sample['sys_s']:.2f}s")
            print(f"  round {round_index + 1}/{args.rounds} {name}: " + ", ".join(progress), file=sys.stderr,
                  flush=True)

    def median(name, tool, key):
        values = [s[key] if key != "cpu" else s["user_s"] + s["sys_s"] for s in samples[name].get(tool, [])]
        return statistics.median(values) if values else None

    print(f"\nCPU time and peak RSS over release pcmalloc's, one thread, median of {args.rounds} round(s), "
          f"{'full' if args.full else 'quick'} sizes" + (f"; pcm-debug with PCMALLOC_CONF={args.conf}" if args.conf
                                                         else ""))
    header = f"  {'workload':<11} {'release s':>9} " + " ".join(f"{t + ' x':>12} {'RSS x':>6}" for t in args.tools)
    print(header)
    logs = {t: [] for t in args.tools}
    for name, runs in table:
        base_cpu, base_rss = median(name, "release", "cpu"), median(name, "release", "maxrss_kb")
        cells = []
        for tool in args.tools:
            cpu, rss = median(name, tool, "cpu"), median(name, tool, "maxrss_kb")
            if cpu is None or not base_cpu:
                cells.append(f"{'-':>12} {'-':>6}")
                continue
            ratio = cpu / base_cpu
            logs[tool].append(math.log(ratio))
            cells.append(f"{ratio:>11.1f}x {rss / base_rss:>5.1f}x")
        checksums = {s["checksum"] for t in runs for s in samples[name][t]}
        if len(checksums) > 1:
            failures.append(f"{name}: checksums differ between tools: {', '.join(sorted(checksums))}")
        print(f"  {name:<11} {base_cpu if base_cpu else float('nan'):>9.3f} " + " ".join(cells))
    print(f"  {'geomean':<11} {'':>9} " + " ".join(
        f"{math.exp(sum(v) / len(v)):>11.1f}x {'':>6}" if v else f"{'-':>12} {'':>6}" for v in logs.values())
        + "   (each over the workloads it ran)")
    return bench.exit_status(failures)


if __name__ == "__main__":
    sys.exit(main())
