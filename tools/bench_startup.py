"""Start-up of a large per-neuron run: the whole ``asyncnet run`` command, timed.

A 1-unit run of the L net (60-120-120-60 written one agent per neuron and per
synapse: 29,160 agents; ``tools/bench_cluster.py`` writes the scenario) is
mostly start-up: reading the scenario, building the network, the engine and,
on workers, partitioning and starting the worker processes. The script runs
the command in-process and on 2 workers, interleaved (A, B, A, B), with the
event log on, and prints the wall time and the CPU time (this process's
children: the command and its workers) of each, medians with min–max, and
the ratio 2 workers ÷ in-process. With ``--before DIR`` (a checkout of older
code, e.g. a ``git worktree``) the same commands run there too, interleaved
with these, and each log is compared with the others byte for byte: both
sides must do the same work.

Wall times on a shared box are noisy: read the ratios, not a lone time.

    PYTHONPATH=. python tools/bench_startup.py [--reps 5] [--duration 1]
        [--before /path/to/old/checkout]
"""

from __future__ import annotations

import argparse
import filecmp
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(HERE, "tools"))
sys.path.insert(0, HERE)

from bench_cluster import write_scenario  # noqa: E402


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed_run(root: str, scenario: str, workers: int, log: str) -> tuple[float, float]:
    """Wall and CPU seconds of one ``asyncnet run`` (the code at ``root``)."""
    cmd = [sys.executable, "-m", "asyncnet", "run", scenario, "--log", log, "-q"]
    if workers:
        cmd += ["--workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": root}
    c0, t0 = children_cpu(), time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, children_cpu() - c0
    if r.returncode != 0:
        raise SystemExit(f"bench_startup: {' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return wall, cpu


def med(xs: list[float]) -> str:
    return f"{statistics.median(xs):.3g} ({min(xs):.3g}–{max(xs):.3g})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="60,120,120,60")
    ap.add_argument("--duration", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--before", metavar="DIR", help="a checkout of the code before")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    path = write_scenario([int(x) for x in a.sizes.split(",")], a.duration, tmp)
    codes = [("after", HERE)] + ([("before", os.path.abspath(a.before))] if a.before else [])
    ways = [(code, root, w) for code, root in codes for w in (0, 2)]
    for _, root, w in ways:  # once each outside the clock: numba's cache, the OS's
        timed_run(root, path, w, os.path.join(tmp, "warm.log"))
    wall: dict = {}
    cpu: dict = {}
    for _ in range(a.reps):
        for code, root, w in ways:
            log = os.path.join(tmp, f"{code}-{w}.log")
            t, c = timed_run(root, path, w, log)
            wall.setdefault((code, w), []).append(t)
            cpu.setdefault((code, w), []).append(c)
    logs = [os.path.join(tmp, f"{code}-{w}.log") for code, _, w in ways]
    if not all(filecmp.cmp(logs[0], x, shallow=False) for x in logs[1:]):
        raise SystemExit("bench_startup: the logs differ: the runs did not do the same work")
    units = "time unit" if a.duration == 1 else "time units"
    print(f"per-neuron {a.sizes} (L net), diffusion, {a.duration:g} {units}, log on; "
          f"{a.reps} interleaved repetitions; {os.cpu_count()} CPUs; "
          f"load {os.getloadavg()[0]:.2f}; every log byte-identical\n")
    print("| code | workers | wall s | CPU s (all processes) | wall ÷ in-process |")
    print("|---|---|---|---|---|")
    for code, _, w in ways:
        ratio = [x / y for x, y in zip(wall[(code, w)], wall[(code, 0)], strict=True)]
        print(f"| {code} | {w or 'in-process'} | {med(wall[(code, w)])} "
              f"| {med(cpu[(code, w)])} | {med(ratio)} |")
    if a.before:
        for w in (0, 2):
            r = [x / y for x, y in zip(wall[("after", w)], wall[("before", w)], strict=True)]
            print(f"\nafter ÷ before, {w or 'in-process'}{' workers' if w else ''}: wall "
                  f"{med(r)}")


if __name__ == "__main__":
    main()
