#!/usr/bin/env python3
"""Runs the allocator benchmark suite (tools/bench) under each allocator and compares.

Every workload program is one binary; the allocator is chosen at run time with
LD_PRELOAD (glibc: none). Runs are interleaved (all allocators for one workload,
then the next; the order rotates), each run's time is the program's own printed
seconds and its peak RSS the ru_maxrss that `launch` reads with wait4. Checksums
must agree across allocators. Writes DIR/bench.json and DIR/bench.png.

Standard library only; gnuplot draws the chart and is skipped with a warning if absent.
"""

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KNOWN_ALLOCATORS = {"pcmalloc": None, "mimalloc": "libmimalloc.so.2", "jemalloc": "libjemalloc.so.2",
                    "glibc": None}
DEFAULT_ALLOCATORS = "pcmalloc,mimalloc,jemalloc,glibc"


@dataclass(frozen=True)
class Workload:
    """One row of the suite: a program and its size arguments (after THREADS)."""
    name: str
    program: str
    quick: tuple
    full: tuple
    what: str
    standard: tuple = ()   # the default run's sizes (tools/pcm bench with no arguments); () = quick
    seconds: float = 0.3   # typical seconds of one standard run (all allocators, both thread counts)


# Sizes: quick takes about 0.05-0.2 s and full about 1-3 s with glibc, one thread; standard (the
# default run, 3 rounds, about 4 minutes with 4 allocators on 2 CPUs) is quick but for large and huge,
# which are cut to a few seconds a run. `seconds`: one standard run, the mean over pcmalloc, glibc,
# mimalloc 2.0.9 and jemalloc and 1-2 threads on a 2-vCPU VM (2026-12-05); only for the forecast.
# The micro sizes differ because glibc's batches of 1-4 KiB blocks trim and refault
# the heap top (several microseconds per block), while pairs of 16 B cost 10 ns.
WORKLOADS = [
    Workload("larson", "larson", ("3M",), ("50M",), "server: random replacement, arrays handed to new threads",
             seconds=0.15),
    Workload("churn", "churn", ("20k",), ("300k",), "cfrac/espresso-like small-object churn, trees and lists",
             seconds=0.1),
    Workload("xmalloc", "xmalloc", ("1500k",), ("20M",), "producers allocate, consumers free (bounded queues)",
             seconds=0.17),
    Workload("cache-thrash", "cache_thrash", ("300k",), ("5M",), "active false sharing", seconds=0.21),
    Workload("cache-scratch", "cache_scratch", ("300k",), ("5M",), "passive false sharing", seconds=0.26),
    Workload("large", "large_blocks", ("8",), ("100",), "realloc chains 64 KiB-32 MiB, random large blocks",
             standard=("2",), seconds=2.3),
    Workload("huge", "huge_blocks", ("20",), ("150",), "5-25 MB blocks allocated, filled, freed (8 live a thread)",
             standard=("16",), seconds=1.64),
    Workload("micro-16", "malloc_micro", ("16", "2M"), ("16", "40M"), "malloc/free 16 B: pairs, batches",
             seconds=0.2),
    Workload("micro-64", "malloc_micro", ("64", "2M"), ("64", "40M"), "malloc/free 64 B: pairs, batches",
             seconds=0.23),
    Workload("micro-256", "malloc_micro", ("256", "1M"), ("256", "15M"), "malloc/free 256 B: pairs, batches",
             seconds=0.37),
    Workload("micro-1024", "malloc_micro", ("1024", "200k"), ("1024", "4M"), "malloc/free 1 KiB: pairs, batches",
             seconds=0.41),
    Workload("micro-4096", "malloc_micro", ("4096", "25k"), ("4096", "500k"), "malloc/free 4 KiB: pairs, batches",
             seconds=0.77),
    Workload("map-churn", "map_churn", ("1M",), ("10M",), "unordered_map<u64,u64> inserts/erases, 500K keys",
             seconds=0.55),
    Workload("requests", "requests", ("100k",), ("1M",), "per request an unordered_map<string,string> of 5 headers",
             seconds=0.15),
]
MICRO_FIELDS = ("pair_ns", "batch_ns", "reverse_ns")


def sizes_of(workload, sizes):
    """The size arguments of one workload for a run of `sizes` (quick, standard or full)."""
    if sizes == "standard":
        return workload.standard or workload.quick
    return workload.quick if sizes == "quick" else workload.full


def parse_count(text):
    """A size argument as a number (k, M, G multiply by 10^3, 10^6, 10^9, as bench_common.hpp reads them)."""
    scale = {"k": 1e3, "M": 1e6, "G": 1e9}.get(text[-1:], 1)
    try:
        return float(text[:-1] if scale != 1 else text) * scale
    except ValueError:
        return 1.0


def expected_seconds(workloads, args, allocator_count):
    """A forecast of the whole run: each workload's measured seconds per standard run (2-vCPU machine),
    scaled by how much more work its sizes ask for, plus process start-up."""
    total = 0.0
    for w in workloads:
        standard, chosen = sizes_of(w, "standard"), sizes_of(w, args.sizes)
        ratio = math.prod(parse_count(c) for c in chosen) / math.prod(parse_count(c) for c in standard)
        total += w.seconds * ratio + 0.05
    return total * len(args.threads) * allocator_count * args.rounds


def format_duration(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


def warn(message):
    print(f"run.py: warning: {message}", file=sys.stderr)


def fail(message):
    print(f"run.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, one round (CI smoke run)")
    parser.add_argument("--full", action="store_true",
                        help="full sizes, 5 rounds: the long run (about 40 minutes on 2 CPUs); "
                             "without --full or --quick: standard sizes, 3 rounds, about 4 minutes")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--rounds", type=int, help="rounds of the whole suite (default 3; 5 with --full; 1 with --quick)")
    parser.add_argument("--only", help="comma-separated workloads (a prefix such as 'micro' selects a group)")
    parser.add_argument("--out", help="output folder (default: <repo>/results)")
    parser.add_argument("--build", help="meson build folder (default: <repo>/build)")
    parser.add_argument("--allocators", default=DEFAULT_ALLOCATORS,
                        help=f"comma-separated, in order (default {DEFAULT_ALLOCATORS}); NAME=PATH adds another")
    parser.add_argument("--conf", action="append", default=[], metavar="NAME=PCMALLOC_CONF",
                        help="run allocator NAME with this PCMALLOC_CONF (repeatable); with NAME=PATH in "
                             "--allocators the same library can run twice, e.g. profiling off and on")
    parser.add_argument("--baseline", default="mimalloc", help="allocator the ratios divide by (default mimalloc)")
    parser.add_argument("--timeout", type=float, help="seconds before a run is killed (default 120; 60 with --quick)")
    parser.add_argument("--list", action="store_true", help="print the workloads and exit")
    parser.add_argument("extra", nargs="*", metavar="NAME=PATH",
                        help="more allocators (a preload library each), run after --allocators' ones")
    args = parser.parse_args()
    if args.quick and args.full:
        fail("--quick and --full exclude each other")
    for item in args.extra:
        if "=" not in item:
            fail(f"'{item}': extra allocators are NAME=PATH")
        args.allocators += "," + item
    args.sizes = "quick" if args.quick else "full" if args.full else "standard"
    try:
        args.threads = sorted({int(t) for t in args.threads.split(",") if t.strip()})
    except ValueError:
        fail(f"--threads wants numbers, got '{args.threads}'")
    if not args.threads or min(args.threads) < 1:
        fail("--threads wants counts of at least 1")
    if args.rounds is None:
        args.rounds = {"quick": 1, "full": 5, "standard": 3}[args.sizes]
    if args.rounds < 1:
        fail("--rounds must be at least 1")
    if args.timeout is None:
        args.timeout = 60.0 if args.quick else 120.0
    return args


def select_workloads(only):
    if not only:
        return list(WORKLOADS)
    chosen = []
    for name in (n.strip() for n in only.split(",") if n.strip()):
        matches = [w for w in WORKLOADS if w.name == name or w.name.startswith(name + "-") or w.program == name]
        if not matches:
            fail(f"unknown workload '{name}'; known: {', '.join(w.name for w in WORKLOADS)}")
        chosen += [w for w in matches if w not in chosen]
    return [w for w in WORKLOADS if w in chosen]


def find_system_library(soname):
    """The path the dynamic loader would use for soname, or None."""
    machine_tag = {"x86_64": "x86-64", "aarch64": "AArch64"}.get(platform.machine(), "")
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    try:
        listing = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, check=False).stdout
    except OSError:
        listing = ""
    candidates = []
    for line in listing.splitlines():
        name, _, rest = line.strip().partition(" ")
        if name == soname and "=>" in rest:
            candidates.append((machine_tag not in rest, rest.split("=>", 1)[1].strip()))
    for _, path in sorted(candidates):
        if os.path.exists(path):
            return path
    for folder in (f"/usr/lib/{platform.machine()}-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib",
                   f"/lib/{platform.machine()}-linux-gnu"):
        path = os.path.join(folder, soname)
        if os.path.exists(path):
            return path
    return None


def resolve_allocators(spec, build):
    """Ordered {name: preload path or None (glibc)}; a missing system allocator is skipped."""
    allocators = {}
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        name, _, path = item.partition("=")
        if path:
            if not os.path.exists(path):
                fail(f"allocator {name}: no such file {path}")
            allocators[name] = os.path.abspath(path)
        elif name == "glibc":
            allocators[name] = None
        elif name == "pcmalloc":
            library = build / "libpcmalloc.so"
            if not library.exists():
                fail(f"{library} not found: build it first (meson setup {build} && ninja -C {build}), "
                     "or pass --build DIR")
            allocators[name] = str(library)
        elif name in KNOWN_ALLOCATORS:
            path = find_system_library(KNOWN_ALLOCATORS[name])
            if path is None:
                warn(f"{KNOWN_ALLOCATORS[name]} is not installed; skipping {name} "
                     f"(Debian: apt-get install lib{name}-dev)")
                continue
            allocators[name] = path
        else:
            fail(f"unknown allocator '{name}' (known: {', '.join(KNOWN_ALLOCATORS)}; or NAME=PATH)")
    if not allocators:
        fail("no allocator left to run")
    return allocators


def parse_fields(line):
    fields = {}
    for token in line.split()[1:]:
        key, sep, value = token.partition("=")
        if not sep:
            continue
        try:
            fields[key] = int(value) if key != "checksum" and value.isdigit() else (
                value if key == "checksum" else float(value))
        except ValueError:
            fields[key] = value
    return fields


def run_once(launcher, preload, command, timeout, conf=None):
    """One run through `launch`. Returns (sample dict, error string or None)."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)  # launch sets it for the workload only
    if conf is not None:
        env["PCMALLOC_CONF"] = conf
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen([launcher, preload or "-", *command], stdout=out, stderr=err, env=env,
                                   start_new_session=True)

        def kill_group():
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill_group)
        timer.start()
        try:
            _, status, _ = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    sample, launch = {}, {}
    for line in stdout.splitlines():
        if line.startswith("launch "):
            launch = parse_fields(line)
        elif " seconds=" in line and " checksum=" in line:
            sample = parse_fields(line)
    sample.update({k: v for k, v in launch.items() if k in ("maxrss_kb", "minflt", "majflt", "user_s", "sys_s",
                                                            "wall_s")})
    tail = stderr.strip().splitlines()[-5:]
    if process.returncode != 0:
        signal_number = launch.get("signal", 0)
        reason = f"killed by signal {signal_number}" if signal_number else f"exit status {process.returncode}"
        if process.returncode == -signal.SIGKILL and not launch:
            reason = f"timed out after {timeout:.0f} s"
        return sample, reason + ("; stderr: " + " | ".join(tail) if tail else "")
    if "seconds" not in sample or "checksum" not in sample:
        return sample, "no result line on stdout" + ("; stderr: " + " | ".join(tail) if tail else "")
    if "maxrss_kb" not in sample:
        return sample, "no resource line from launch"
    return sample, None


def reproduction(preload, command):
    prefix = f"LD_PRELOAD={preload} " if preload else ""
    shown = [os.path.relpath(command[0], REPO) if command[0].startswith(str(REPO)) else command[0], *command[1:]]
    return prefix + " ".join(shown)


def exit_status(failures):
    """Lists the failures on stderr; the status a driver exits with."""
    if not failures:
        return 0
    print(f"\n{len(failures)} FAILURE(S):", file=sys.stderr)
    for failure in failures:
        print("  " + failure, file=sys.stderr)
    return 1


def geometric_mean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def machine_info(build):
    def first(command):
        try:
            return subprocess.run(command, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return None

    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):
        glibc = " ".join(platform.libc_ver())
    commit = first(["git", "-C", str(REPO), "rev-parse", "HEAD"])
    dirty = first(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "nproc": int(first(["nproc"]) or os.cpu_count() or 0),
        "cpu_model": cpu,
        "kernel": f"{platform.system()} {platform.release()} {platform.version()}",
        "glibc": glibc,
        "python": platform.python_version(),
        "loadavg_at_end": list(os.getloadavg()),
        "repo_commit": (commit or "") + ("-dirty" if dirty else ""),
        "build": str(build),
    }


def check_checksums(results, names, build):
    """Every good run of one workload and thread count must print the same checksum."""
    failures = []
    for entry in results:
        seen = {}
        for name in names:
            for sample in entry["allocators"][name]["samples"]:
                if "error" not in sample:
                    seen.setdefault(sample["checksum"], set()).add(name)
        entry["ops"] = next((s["ops"] for n in names for s in entry["allocators"][n]["samples"] if "ops" in s), 0)
        entry["checksums"] = {c: sorted(n) for c, n in seen.items()}
        if len(seen) > 1:
            detail = "; ".join(f"{c} from {', '.join(sorted(n))}" for c, n in seen.items())
            failures.append(f"{entry['workload']} t{entry['threads']}: checksums differ: {detail}\n"
                            f"    reproduce: {reproduction(None, entry['command'])} (with each LD_PRELOAD)")
    return failures


def summarise(results, names, baseline, threads):
    """Medians, ratios to the baseline, geometric means and scaling, from raw samples."""
    for entry in results:
        base = entry["allocators"].get(baseline, {})
        for name in names:
            cell = entry["allocators"].get(name)
            if not cell:
                continue
            good = [s for s in cell["samples"] if "error" not in s]
            cell["median_seconds"] = statistics.median(s["seconds"] for s in good) if good else None
            cell["median_rss_kb"] = statistics.median(s["maxrss_kb"] for s in good) if good else None
            for field in MICRO_FIELDS:
                values = [s[field] for s in good if field in s]
                if values:
                    cell["median_" + field] = statistics.median(values)
        for name in names:
            cell = entry["allocators"].get(name)
            if not cell:
                continue
            for key, ratio in (("median_seconds", "time_ratio"), ("median_rss_kb", "rss_ratio")):
                mine, theirs = cell.get(key), base.get(key)
                cell[ratio] = mine / theirs if mine and theirs else None
    geomean = {name: {"time_ratio": geometric_mean([e["allocators"].get(name, {}).get("time_ratio")
                                                    for e in results]),
                      "rss_ratio": geometric_mean([e["allocators"].get(name, {}).get("rss_ratio")
                                                   for e in results])} for name in names}
    scaling = {}
    if len(threads) > 1:
        low, high = threads[0], threads[-1]
        by_key = {(e["workload"], e["threads"]): e for e in results}
        for workload in dict.fromkeys(e["workload"] for e in results):
            one, many = by_key.get((workload, low)), by_key.get((workload, high))
            if not one or not many:
                continue
            row = {}
            for name in names:
                a, b = one["allocators"].get(name, {}), many["allocators"].get(name, {})
                if a.get("median_seconds") and b.get("median_seconds"):
                    row[name] = (many["ops"] / b["median_seconds"]) / (one["ops"] / a["median_seconds"])
            scaling[workload] = row
    return geomean, scaling


def format_ratio(value):
    return f"{value:.2f}" if value is not None else "-"


def print_tables(results, names, baseline, threads, geomean, scaling):
    width = max(12, max(len(n) for n in names) + 2)
    label = max(len(e["workload"]) for e in results) + 2

    def table(title, key, ratio_key, scale, unit):
        print(f"\n{title}")
        print(f"{'workload':<{label}}{'thr':>4}  " + "".join(f"{n:>{width + 8}}" for n in names))
        for entry in results:
            row = f"{entry['workload']:<{label}}{entry['threads']:>4}  "
            for name in names:
                cell = entry["allocators"].get(name, {})
                value = cell.get(key)
                text = f"{value * scale:.3f}{unit} ({format_ratio(cell.get(ratio_key))})" if value else "FAILED"
                row += f"{text:>{width + 8}}"
            print(row)
        row = f"{'geomean':<{label}}{'':>4}  "
        for name in names:
            row += f"{'x' + format_ratio(geomean[name][ratio_key]):>{width + 8}}"
        print(row)

    table(f"Time: median seconds (ratio to {baseline})", "median_seconds", "time_ratio", 1, "s")
    table(f"Peak RSS: median MiB (ratio to {baseline})", "median_rss_kb", "rss_ratio", 1 / 1024, "M")
    if scaling:
        print(f"\nScaling: throughput with {threads[-1]} threads / with {threads[0]} "
              f"(ideal {min(threads[-1], os.cpu_count() or 1) / threads[0]:.1f} on {os.cpu_count()} CPUs)")
        print(f"{'workload':<{label}}      " + "".join(f"{n:>{width}}" for n in names))
        for workload, row in scaling.items():
            print(f"{workload:<{label}}      " + "".join(f"{format_ratio(row.get(n)):>{width}}" for n in names))
    micro = [e for e in results if e["program"] == "malloc_micro"]
    if micro:
        print("\nmalloc/free ns per pair, median (pairs / batch in order / batch reversed)")
        print(f"{'workload':<{label}}{'thr':>4}  " + "".join(f"{n:>{width + 10}}" for n in names))
        for entry in micro:
            row = f"{entry['workload']:<{label}}{entry['threads']:>4}  "
            for name in names:
                cell = entry["allocators"].get(name, {})
                parts = [cell.get("median_" + f) for f in MICRO_FIELDS]
                text = "/".join(f"{p:.0f}" if p >= 10 else f"{p:.1f}" for p in parts) if all(parts) else "-"
                row += f"{text:>{width + 10}}"
            print(row)


def draw_chart(path, results, names, baseline, geomean, machine):
    """Grouped bars of time ratio to the baseline; False (with a warning) without gnuplot."""
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        warn("gnuplot not found (Debian: apt-get install gnuplot-nox); no chart")
        return False
    rows = []
    for entry in results:
        values = [entry["allocators"].get(n, {}).get("time_ratio") for n in names]
        rows.append((f"{entry['workload']} t{entry['threads']}", values))
    rows.append(("geomean", [geomean[n]["time_ratio"] for n in names]))
    data = "\n".join(f'"{label}" ' + " ".join(f"{v:.4f}" if v else "NaN" for v in values) for label, values in rows)
    columns = ", ".join(f"$data using {i + 2}:xtic(1) title '{n}'" for i, n in enumerate(names))
    width = max(1000, 60 * len(rows) * max(1, len(names)) // 3)
    subtitle = f"{machine['cpu_model']}, {machine['nproc']} CPUs, {machine['glibc']}, {machine['date'][:10]}"
    for terminal in ("pngcairo size {w},560 font 'sans,10'", "png size {w},560"):
        script = f"""
set terminal {terminal.format(w=width)}
set output '{path}'
$data << EOD
{data}
EOD
set title "Time relative to {baseline} (lower is better; log scale)\\n{{/*0.8 {subtitle}}}"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y 2
set grid ytics
set ylabel 'median time / {baseline}'
set xtics rotate by -40 left nomirror
set key top left horizontal reverse Left samplen 2 width 1
set datafile missing 'NaN'
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 1.5 dt 2 lc rgb 'black' front
plot {columns}
"""
        done = subprocess.run([gnuplot], input=script, text=True, capture_output=True, check=False)
        if done.returncode == 0 and Path(path).exists() and Path(path).stat().st_size > 0:
            return True
        error = done.stderr.strip().splitlines()[-1:] if done.stderr else []
    warn(f"gnuplot failed; no chart ({' '.join(error)})")
    return False


def main():
    args = parse_arguments()
    build = Path(args.build).resolve() if args.build else REPO / "build"
    out = Path(args.out).resolve() if args.out else REPO / "results"
    workloads = select_workloads(args.only)
    if args.list:
        for w in workloads:
            print(f"{w.name:<14} {w.program} THREADS {' '.join(w.full):<11} (standard "
                  f"{' '.join(sizes_of(w, 'standard'))}, quick {' '.join(w.quick)}): {w.what}")
        return 0
    if not build.is_dir():
        fail(f"build folder {build} not found: meson setup {build} && ninja -C {build}")
    allocators = resolve_allocators(args.allocators, build)
    names = list(allocators)
    confs = dict(item.partition("=")[::2] for item in args.conf)
    for name in confs:
        if name not in allocators:
            fail(f"--conf {name}=...: no allocator named {name}")
    baseline = args.baseline
    if baseline not in allocators:
        fallback = "glibc" if "glibc" in allocators else names[0]
        warn(f"baseline {baseline} not available; ratios are to {fallback}")
        baseline = fallback
    bench_dir = build / "tools" / "bench"
    launcher = bench_dir / "launch"
    for program in {w.program for w in workloads} | {"launch"}:
        if not (bench_dir / program).exists():
            fail(f"{bench_dir / program} not found: run ninja -C {build} "
                 "(and check the build was configured with -Dbenchmarks=true)")

    results = []
    for w in workloads:
        for t in args.threads:
            command = [str(bench_dir / w.program), str(t), *sizes_of(w, args.sizes)]
            results.append({"workload": w.name, "program": w.program, "threads": t, "command": command,
                            "allocators": {n: {"preload": allocators[n], "samples": []} for n in names}})
    failures = []
    load = os.getloadavg()[0]
    if load > 0.5:
        warn(f"load average is {load:.1f} before the first run: other work on this machine will add noise")
    total_runs = len(results) * len(names) * args.rounds
    expected = expected_seconds(workloads, args, len(names))
    print(f"run.py: {len(results)} workload x thread cases, {len(names)} allocators, {args.rounds} round(s), "
          f"{args.sizes} sizes: {total_runs} runs, expect about {format_duration(expected)} "
          f"(measured on 2 CPUs; --quick: a smoke run, --full: the long run); build {build}",
          file=sys.stderr, flush=True)
    started = time.monotonic()
    done_runs = 0
    for round_index in range(args.rounds):
        for case_index, entry in enumerate(results):
            shift = (round_index + case_index) % len(names)
            progress = []
            for name in names[shift:] + names[:shift]:
                sample, error = run_once(str(launcher), allocators[name], entry["command"], args.timeout,
                                         confs.get(name))
                sample["round"] = round_index
                if error:
                    sample["error"] = error
                    repro = reproduction(allocators[name], entry["command"])
                    failures.append(f"{entry['workload']} t{entry['threads']} {name}: {error}\n    reproduce: {repro}")
                    progress.append(f"{name} FAILED")
                else:
                    progress.append(f"{name} {sample['seconds']:.3f}s")
                entry["allocators"][name]["samples"].append(sample)
            done_runs += len(names)
            elapsed = time.monotonic() - started
            left = elapsed / done_runs * (total_runs - done_runs)
            print(f"  [{done_runs}/{total_runs} runs, {format_duration(elapsed)}, about {format_duration(left)} left] "
                  f"round {round_index + 1}/{args.rounds} {entry['workload']} t{entry['threads']}: "
                  + ", ".join(progress), file=sys.stderr, flush=True)

    failures += check_checksums(results, names, build)

    geomean, scaling = summarise(results, names, baseline, args.threads)
    print_tables(results, names, baseline, args.threads, geomean, scaling)

    machine = machine_info(build)
    out.mkdir(parents=True, exist_ok=True)
    machine["loadavg_at_start"] = load
    report = {
        "machine": machine,
        "config": {"quick": args.quick, "sizes": args.sizes, "wall_seconds": round(time.monotonic() - started, 1),
                   "threads": args.threads, "rounds": args.rounds, "baseline": baseline,
                   "timeout_s": args.timeout},
        "allocators": {n: {"preload": p, "resolved": os.path.realpath(p) if p else None}
                       for n, p in allocators.items()},
        "rss_note": "maxrss_kb is ru_maxrss of the workload as its parent `launch` reads it with wait4; "
                    "launch is small, so the workload's RSS is not floored at the Python runner's",
        "results": results,
        "geomean": geomean,
        "scaling": scaling,
        "failures": failures,
    }
    (out / "bench.json").write_text(json.dumps(report, indent=1) + "\n")
    chart = draw_chart(out / "bench.png", results, names, baseline, geomean, machine)
    print(f"\nwrote {out / 'bench.json'}" + (f" and {out / 'bench.png'}" if chart else ""))
    return exit_status(failures)


if __name__ == "__main__":
    sys.exit(main())
