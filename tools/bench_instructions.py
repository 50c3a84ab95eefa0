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

    python tools/bench_instructions.py [--sizes S] [--tree DIR]

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
print("messages", eng.messages() if mode != "setup" else 0)
"""


def count(root: str, mode: str, size: str, tmp: str) -> tuple[int, int]:
    """Instructions and messages of one fresh process (``CHILD``) under cachegrind."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no",
                          "--cachegrind-out-file=/dev/null", sys.executable, "-c", CHILD,
                          root, mode, size, tmp], capture_output=True, text=True, env=env)
    refs = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    msgs = re.search(r"^messages (\d+)$", out.stdout, re.M)
    if out.returncode or refs is None or msgs is None:
        raise SystemExit(f"{root} {mode} {size}: the child failed:\n{out.stderr[-2000:]}")
    return int(refs.group(1).replace(",", "")), int(msgs.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="S", help="nets among S, M, L (comma-separated)")
    ap.add_argument("--tree", action="append", default=[],
                    help="another checkout to count as well (repeatable)")
    a = ap.parse_args()
    if shutil.which("valgrind") is None:
        print("bench_instructions: valgrind is not installed (apt install valgrind)",
              file=sys.stderr)
        sys.exit(2)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    trees = [here, *map(os.path.abspath, a.tree)]
    sizes = [s for s in a.sizes.split(",") if s]
    jobs = [(t, m, s) for s in sizes for t in trees for m in ("setup", "off", "on")]
    tmp = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"bench_instr_{os.getpid()}")
    os.makedirs(tmp, exist_ok=True)
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        got = dict(zip(jobs, pool.map(lambda j: count(*j, tmp), jobs), strict=True))
    shutil.rmtree(tmp, ignore_errors=True)
    for s in sizes:
        for t in trees:
            base = got[t, "setup", s][0]
            (off, n), (on, n_on) = got[t, "off", s], got[t, "on", s]
            assert n == n_on, "the runs with and without the log delivered alike"
            print(f"instr  {s} {t}: {(off - base) / n:,.0f} a message log off, "
                  f"{(on - base) / n:,.0f} log on; log on ÷ off {(on - base) / (off - base):.3f}"
                  f"  ({n:,} messages)")


if __name__ == "__main__":
    main()
