#!/usr/bin/env python3
"""Side by side in one run: the stream processor's core and Apache Flink on the same windowed
KPI job and the same generated events (../shared/bench: make_events.py, flink_window_job.py).

    python3 bench/processor_vs_flink.py [--sizes 1000000,6000000] [--repeats 3] [--flink-python PATH]

For each size N the events are generated once (seed 7, cached), then:
  * Flink (PyFlink, parallelism 1, 1-minute tumbling windows per event and OS: COUNT(*),
    COUNT(DISTINCT user_id), SUM(revenue)) runs the job; its CPU time is the user + system time
    of the whole process tree (the Python driver and the JVM), sampled from /proc.
  * the core benchmark (`cargo bench --bench core -- N file`) runs the equivalent catalog.
Flink's steady-state cost per event is the difference between the two sizes divided by the
difference in events, so its ~10 CPU-seconds of JVM start-up do not count; each size runs
`--repeats` times and the median counts (start-up varies by seconds between runs, so the sizes
must be far apart). The core's figure is measured inside the process around the processing
loop only (median of the repeats as well).

Setup for Flink (once, ~850 MB): python3 -m venv ~/.cache/northstar/flink &&
~/.cache/northstar/flink/bin/pip install apache-flink   (Java 17 must be on PATH)
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("NORTHSTAR_CACHE", Path.home() / ".cache" / "northstar"))
TICK = os.sysconf("SC_CLK_TCK")


def shared_bench() -> Path:
    for candidate in [os.environ.get("NORTHSTAR_SHARED_BENCH"), ROOT.parent / "shared" / "bench",
                      Path("/work/shared/bench")]:
        if candidate and (Path(candidate) / "make_events.py").exists():
            return Path(candidate)
    sys.exit("cannot find ../shared/bench (set NORTHSTAR_SHARED_BENCH)")


def tree_cpu(root_pid: int, seen: dict) -> None:
    """Updates seen[pid] with the CPU seconds of every process descending from root_pid."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        children.setdefault(int(fields[1]), []).append((int(d), fields))
    stack = [root_pid]
    while stack:
        pid = stack.pop()
        for child, fields in children.get(pid, []):
            seen[child] = (int(fields[11]) + int(fields[12])) / TICK
            stack.append(child)
    try:
        with open(f"/proc/{root_pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        seen[root_pid] = (int(fields[11]) + int(fields[12])) / TICK
    except OSError:
        pass


def run_measured(cmd: list) -> tuple:
    """Runs cmd; returns (CPU seconds of its process tree, wall seconds)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = {}
    while proc.poll() is None:
        tree_cpu(proc.pid, seen)
        time.sleep(0.1)
    err = proc.stderr.read()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return sum(seen.values()), time.monotonic() - start


def events_file(bench: Path, n: int) -> Path:
    path = CACHE / "bench" / f"events-{n}.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        subprocess.run([sys.executable, str(bench / "make_events.py"), str(n), str(tmp), "7"], check=True)
        tmp.rename(path)
    return path


def core(n: int, path: Path) -> float:
    out = subprocess.run(
        ["cargo", "bench", "-q", "-p", "northstar-stream-processor", "--bench", "core", "--",
         str(n), str(path)],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout
    print(out.strip())
    m = re.search(r"flink-equivalent job[^:]*: \d+ events, [\d.]+ CPU-s \([\d.]+ s wall\), ([\d.]+) µs/event", out)
    if not m:
        sys.exit(f"unexpected core bench output:\n{out}")
    return float(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000,6000000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--flink-python", default=str(CACHE / "flink" / "bin" / "python"))
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    bench = shared_bench()
    flink = {}
    core_us = {}
    for n in sizes:
        path = events_file(bench, n)
        runs = []
        for _ in range(args.repeats):
            cpu, wall = run_measured([args.flink_python, str(bench / "flink_window_job.py"), str(path)])
            runs.append(cpu)
            print(f"flink: {n} events, {cpu:.2f} CPU-s ({wall:.1f} s wall), {cpu * 1e6 / n:.2f} µs/event including start-up")
        flink[n] = statistics.median(runs)
        core_us[n] = statistics.median(core(n, path) for _ in range(args.repeats))
    lo, hi = sizes[0], sizes[-1]
    steady = (flink[hi] - flink[lo]) * 1e6 / (hi - lo)
    ours = core_us[hi]
    print()
    print(f"Flink steady state ({hi:,} − {lo:,} events): {steady:.2f} µs/event ({1e6 / steady:,.0f} events per CPU-second)")
    print(f"Northstar core ({hi:,} events):              {ours:.2f} µs/event ({1e6 / ours:,.0f} events per CPU-second)")
    print(f"ratio: the core is {steady / ours:.2f}x as fast per event (target: 2x)")


if __name__ == "__main__":
    main()
