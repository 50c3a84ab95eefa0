"""2 workers ÷ in-process counted in instructions (valgrind), where CPU time is too noisy.

``tools/bench_cluster.py`` divides CPU times, and on a shared box a run's CPU
time moves by 20–60% from one repetition to the next (and a window's by as
much, which inflates the critical path: the larger of two noisy values). The
instructions each process executes do not move. This script runs the L net
(``tools/bench_cluster.py``'s scenario, log on) under valgrind's cachegrind
(``--cache-sim=no``, children traced) at two durations, in one process
(``simulate``) and on two workers (``simulate_distributed``), and differences
the counts, so start-up, imports and the end's analysis cancel:

- **work-based**: 2 × the in-process run's instructions ÷ both workers'
  summed: what distributing adds to the work, per message delivered;
- **busier worker**: the in-process run's ÷ the busier worker's;
- the coordinator's instructions a message (it includes the coordinator's
  waiting on its sockets, so it moves by a few per cent between runs: 976
  and 1,024 for one tree, 4 December; a worker's, which waits less, by
  ≈ 0.3%: 10,918 and 10,886; the in-process figure repeated exactly).

Instructions are not time: a cache miss costs none, so a worker holding half
the net (fewer misses) looks no better here than it is. ≈ 20 minutes on two
cores (a first run per tree is not counted: numba's build for valgrind);
the workers' time-outs are set long (valgrind runs ≈ 50× slower).

``--cache`` simulates the caches as ``bench_instructions.py --cache`` does
(a 32 KiB L1, a 1 MiB last level: this box's L2) and prints each process's
data misses a message delivered as well: whether a worker's instructions
cost it more time each than the in-process run's do (≈ 2× slower again).

    python tools/bench_cluster_instructions.py [--sizes 60,120,120,60] [--duration 4]
        [--tree DIR] [--cache]

Needs ``valgrind`` (``apt install valgrind``); without it, says so and exits 2.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(HERE, "tools"))
from bench_cluster import write_scenario  # noqa: E402
from bench_instructions import CACHES, require_valgrind  # noqa: E402

CHILD = r"""
import json, os, sys
root, path, workers, log = sys.argv[1:5]
sys.path.insert(0, root)
from asyncnet.scenario import load
sc = load(path)
if int(workers):
    from asyncnet.cluster import simulate_distributed
    s = simulate_distributed(sc, workers=int(workers), log_path=log, timeout=600.0,
                             join_timeout=3000.0, step_timeout=3000.0)
else:
    from asyncnet import logsends  # the compiled packing loop, as the workers load it
    logsends.warm(logsends.kernel(logsends.MIN_RECORDS))
    from asyncnet.simulation import simulate
    s = simulate(sc, log_path=log)
print("messages", s["messages"]["total"], flush=True)
"""


def run(root: str, scenario: str, workers: int, tmp: str, cache: bool = False
        ) -> tuple[int, dict[str, dict]]:
    """Messages, and by process (``run``; ``worker`` by partition) of one run its
    instructions, or with ``cache`` ``(instructions, L1 data misses, last-level
    data misses)``."""
    out = tempfile.mkdtemp(dir=tmp)
    # the workers load the log's compiled packing loop before they join
    # (ASYNCNET_WARM_LOG; older trees did so by partition size), the in-process run
    # before it runs (CHILD): the same loop on both sides, loaded outside the windows
    env = {**os.environ, "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1",
           "PYTHONPATH": root, "ASYNCNET_WARM_LOG": "1"}
    sim = CACHES if cache else ["--cache-sim=no"]
    got = subprocess.run(["valgrind", "--tool=cachegrind", *sim, "--trace-children=yes",
                          f"--cachegrind-out-file={out}/cg.%p", sys.executable, "-c", CHILD,
                          root, scenario, str(workers), os.path.join(out, "x.log")],
                         # in the tree: `python -m asyncnet worker` puts its working
                         # directory ahead of PYTHONPATH, so run from another tree
                         # its workers would import that tree's asyncnet
                         capture_output=True, text=True, env=env, cwd=root)
    msgs = re.search(r"^messages (\d+)$", got.stdout, re.M)
    if got.returncode or msgs is None:
        raise SystemExit(f"{root} {scenario} {workers}: the run failed:\n{got.stderr[-2000:]}")
    by: dict[str, dict[str, Any]] = {"run": {}, "worker": {}}
    for f in glob.glob(f"{out}/cg.*"):
        text = open(f, encoding="utf-8", errors="replace").read()
        cmd = re.search(r"^cmd: (.*)$", text, re.M)
        events = re.search(r"^events:(.*)$", text, re.M)
        total = re.search(r"^summary:(.*)$", text, re.M)
        if cmd is None or total is None or events is None:
            continue
        count = dict(zip(events.group(1).split(), map(int, total.group(1).split()),
                         strict=True))
        value: Any = count["Ir"]
        if cache:  # data misses, reads and writes
            value = (count["Ir"], count["D1mr"] + count["D1mw"], count["DLmr"] + count["DLmw"])
        words = cmd.group(1).split()
        if "worker" in words and "--token" in words:  # a worker, by its partition
            by["worker"][words[words.index("--token") + 1]] = value
        elif "-c" in words:
            by["run"]["run"] = value
    shutil.rmtree(out, ignore_errors=True)
    return int(msgs.group(1)), by


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="60,120,120,60")
    ap.add_argument("--duration", type=float, default=4.0,
                    help="the longer of the two durations (the shorter is half)")
    ap.add_argument("--tree", action="append", default=[],
                    help="another checkout to count as well (repeatable)")
    ap.add_argument("--cache", action="store_true",
                    help="simulate the caches too: each process's data misses a message")
    a = ap.parse_args()
    require_valgrind("bench_cluster_instructions")
    sizes = [int(x) for x in a.sizes.split(",")]
    tmp = tempfile.mkdtemp()
    durations = (a.duration / 2, a.duration)
    paths = {d: write_scenario(sizes, d, tmp) for d in durations}
    trees = [HERE, *map(os.path.abspath, a.tree)]
    jobs = [(t, d, w) for t in trees for w in (0, 2) for d in durations]
    # two at a time: a two-worker run is three processes, valgrind's each one thread
    with ThreadPoolExecutor(2) as pool:
        # first a run not counted: under valgrind numba needs a build of the workers'
        # packing loop for the CPU valgrind presents, and a worker that compiles it
        # counts far more (a fresh checkout's first count, 4 December: 11,905 and
        # 12,903 a message for its workers, then 10,896 and 10,887)
        list(pool.map(lambda t: run(t, paths[durations[0]], 2, tmp), trees))
        got = dict(zip(jobs, pool.map(lambda j: run(j[0], paths[j[1]], j[2], tmp, a.cache),
                                      jobs), strict=True))
    shutil.rmtree(tmp, ignore_errors=True)
    if a.cache:
        print_cache(got, trees, durations, sizes)
        return
    print(f"per-neuron {sizes}, diffusion, log on; durations {durations[0]:g} and "
          f"{durations[1]:g}, differenced; instructions (valgrind)\n")
    print("| tree | in-process / message | workers / message (each) | coordinator / message "
          "| work-based | busier worker |")
    print("|---|---|---|---|---|---|")
    for t in trees:
        dm, (ip0, ip1), (cl0, cl1) = _differenced(got, t, durations)
        d_in = ip1["run"]["run"] - ip0["run"]["run"]
        d_w = [cl1["worker"][k] - cl0["worker"][k] for k in sorted(cl0["worker"])]
        d_co = cl1["run"]["run"] - cl0["run"]["run"]
        print(f"| {t} | {d_in / dm:,.0f} | {', '.join(f'{x / dm:,.0f}' for x in d_w)} "
              f"| {d_co / dm:,.0f} | {2 * d_in / sum(d_w):.3f} | {d_in / max(d_w):.3f} |")


def _differenced(got: dict, tree: str, durations: tuple[float, float]
                 ) -> tuple[int, tuple[dict, dict], tuple[dict, dict]]:
    """One tree's messages between the two durations, and its in-process and
    two-worker counts at each (shorter first)."""
    lo, hi = durations
    (m0, ip0), (m1, ip1) = got[tree, lo, 0], got[tree, hi, 0]
    (n0, cl0), (n1, cl1) = got[tree, lo, 2], got[tree, hi, 2]
    assert m1 - m0 == n1 - n0, "the runs delivered alike"
    return m1 - m0, (ip0, ip1), (cl0, cl1)


def print_cache(got: dict, trees: list[str], durations: tuple[float, float],
                sizes: list[int]) -> None:
    """``--cache``'s table: each process's instructions and data misses a message."""
    print(f"per-neuron {sizes}, diffusion, log on; durations {durations[0]:g} and "
          f"{durations[1]:g}, differenced; a message delivered: instructions, L1 and "
          "1 MiB data misses (valgrind's cache model)\n")
    print("| tree | process | instructions | L1 misses | 1 MiB misses "
          "| 1 MiB misses an instruction ÷ in-process's |")
    print("|---|---|---|---|---|---|")
    for t in trees:
        dm, (ip0, ip1), (cl0, cl1) = _differenced(got, t, durations)
        rows = [("in-process", [b - a for a, b in zip(ip0["run"]["run"], ip1["run"]["run"],
                                                       strict=True)])]
        rows += [(f"worker {k}", [b - a for a, b in zip(cl0["worker"][k], cl1["worker"][k],
                                                         strict=True)])
                 for k in sorted(cl0["worker"])]
        base = rows[0][1][2] / rows[0][1][0]  # the in-process run's misses an instruction
        for name, (ir, d1, ll) in rows:
            print(f"| {t} | {name} | {ir / dm:,.0f} | {d1 / dm:,.1f} | {ll / dm:,.2f} "
                  f"| {ll / ir / base:.2f} |")


if __name__ == "__main__":
    main()
