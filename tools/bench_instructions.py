"""The engine's and the log's cost as instructions (valgrind), where time is too noisy to read.

On a shared box the same run's CPU time moves by 30–60% from one run to the
next, and so do the ratios of ``tools/bench_engine.py``. The number of
instructions a run executes does not: counted by valgrind's cachegrind
(``--cache-sim=no``), with ``PYTHONHASHSEED`` fixed, it is the same to
within a few in a million from run to run. It is not time — a cache miss
costs no instruction, so L ÷ S per message here shows only the work that
grows with the net (heap, dicts), not the memory's share — but it shows a
change in the work the code does, exactly, and which side of a threshold
a ratio of work lies.

Each figure runs fresh processes under valgrind (≈ 50× slower than
native; S ≈ 1–3 minutes a process, numba's cache warm):

- ``setup``: the net and the engine built, not run;
- ``off``: the same, then the run without the event log;
- ``on``: the same, then the run with the event log (compiled packing loop
  where numba is, as a log past 1 M records loads it).

Printed: instructions a message of the run (``off − setup``, ``on −
setup``, ÷ messages), and with the log ÷ without. ``--tree DIR`` counts
another checkout too (``git worktree add``), for a before/after.

``--cache`` simulates the caches as well (``setup`` and ``off`` only; ≈ 100×
slower than native): data misses a message in a 32 KiB L1 and in a 1 MiB
last level, the L2 of this box's cores (valgrind's model has two levels; a
miss there is what the L3's latency is paid for). With ``--sizes S,L``
it prints L ÷ S of instructions and of those misses: where the per-message
cost of a large net comes from, in figures that do not move with the
box's load. Each process ends with ``os._exit``: the interpreter's last
collection, which walks everything still alive, is no part of a run.

    python tools/bench_instructions.py [--sizes S] [--tree DIR] [--cache]

Needs ``valgrind`` (``apt install valgrind``); without it, says so and exits 2.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

CHILD = r"""
import os, sys
root, mode, size = sys.argv[1:4]
sys.path[:0] = [root, os.path.join(root, "tools")]
from bench_engine import DURATION, NETS, per_neuron
from asyncnet.engine import Engine
from asyncnet.eventlog import EventLogWriter
from asyncnet import logsends
from asyncnet.schemes.diffusion import Diffusion
logsends.warm(logsends.kernel(logsends.MIN_RECORDS))
net, src = per_neuron(NETS[size], DURATION[size])
eng = Engine(net, Diffusion(eta=0.01), seed=1, sources=src)
if mode == "on":
    w = EventLogWriter(os.path.join(sys.argv[4], "i.log"),
                       {"agents": eng.names, "scenario": "", "seed": 1})
    eng.record(w.record)
if mode != "setup":
    eng.run(DURATION[size])
    if mode == "on":
        w.close()
print("messages", eng.messages() if mode != "setup" else 0, flush=True)
os._exit(0)  # no interpreter shutdown: its last collection walks whatever the run left
"""


CACHES = ["--cache-sim=yes", "--I1=32768,8,64", "--D1=32768,8,64", "--LL=1048576,8,64"]
"""``--cache``: L1 32 KiB, and a 1 MiB last level (this box's L2)."""


def _figure(label: str, text: str) -> int:
    got = re.search(rf"{label}:\s+([\d,]+)", text)
    if got is None:
        raise SystemExit(f"cachegrind printed no {label!r}")
    return int(got.group(1).replace(",", ""))


def require_valgrind(tool: str) -> None:
    """Exit 2 with one line if valgrind is not installed."""
    if shutil.which("valgrind") is None:
        print(f"{tool}: valgrind is not installed (apt install valgrind)", file=sys.stderr)
        sys.exit(2)


def count(root: str, mode: str, size: str, tmp: str,
          cache: bool = False) -> tuple[int, int, int, int]:
    """Instructions, messages, and (``cache``) L1 and last-level data misses of one
    fresh process (``CHILD``) under cachegrind (misses 0 without ``cache``)."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1"}
    sim = CACHES if cache else ["--cache-sim=no"]
    out = subprocess.run(["valgrind", "--tool=cachegrind", *sim,
                          "--cachegrind-out-file=/dev/null", sys.executable, "-c", CHILD,
                          root, mode, size, tmp], capture_output=True, text=True, env=env)
    msgs = re.search(r"^messages (\d+)$", out.stdout, re.M)
    if out.returncode or msgs is None or "I   refs" not in out.stderr:
        raise SystemExit(f"{root} {mode} {size}: the child failed:\n{out.stderr[-2000:]}")
    misses = (_figure("D1  misses", out.stderr), _figure("LLd misses", out.stderr)) \
        if cache else (0, 0)
    return _figure("I   refs", out.stderr), int(msgs.group(1)), *misses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="S", help="nets among S, M, L (comma-separated)")
    ap.add_argument("--tree", action="append", default=[],
                    help="another checkout to count as well (repeatable)")
    ap.add_argument("--cache", action="store_true",
                    help="simulate the caches (log off only): data misses a message")
    a = ap.parse_args()
    require_valgrind("bench_instructions")
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    trees = [here, *map(os.path.abspath, a.tree)]
    sizes = [s for s in a.sizes.split(",") if s]
    modes = ("setup", "off") if a.cache else ("setup", "off", "on")
    jobs = [(t, m, s) for s in sizes for t in trees for m in modes]
    tmp = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"bench_instr_{os.getpid()}")
    os.makedirs(tmp, exist_ok=True)
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        # first a process not counted: under valgrind numba needs a build of the
        # packing loop for the CPU valgrind presents, and a process that compiles it
        # counts far more than one that reads it from the cache
        list(pool.map(lambda t: count(t, "setup", sizes[0], tmp), trees))
        got = dict(zip(jobs, pool.map(lambda j: count(*j, tmp, a.cache), jobs), strict=True))
    shutil.rmtree(tmp, ignore_errors=True)
    if a.cache:
        print_cache(got, trees, sizes)
        return
    for s in sizes:
        for t in trees:
            base = got[t, "setup", s][0]
            (off, n), (on, n_on) = got[t, "off", s][:2], got[t, "on", s][:2]
            assert n == n_on, "the runs with and without the log delivered alike"
            print(f"instr  {s} {t}: {(off - base) / n:,.0f} a message log off, "
                  f"{(on - base) / n:,.0f} log on; log on ÷ off {(on - base) / (off - base):.3f}"
                  f"  ({n:,} messages)")


def print_cache(got: dict, trees: list[str], sizes: list[str]) -> None:
    """``--cache``'s figures: a message's instructions and data misses, and L ÷ S."""
    for t in trees:
        per = {}
        for s in sizes:
            base, off = got[t, "setup", s], got[t, "off", s]
            n = off[1]
            per[s] = [(off[k] - base[k]) / n for k in (0, 2, 3)]
            print(f"cache  {s} {t}: a message {per[s][0]:,.0f} instructions, "
                  f"{per[s][1]:.1f} L1 and {per[s][2]:.1f} 1 MiB data misses  ({n:,} messages)")
        if "S" in per and "L" in per:
            r = [x / y for x, y in zip(per["L"], per["S"], strict=True)]
            print(f"cache  L ÷ S {t}: instructions {r[0]:.3f}, L1 misses {r[1]:.2f}, "
                  f"1 MiB misses {r[2]:.2f}")


if __name__ == "__main__":
    main()
