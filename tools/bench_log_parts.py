"""Where the event log's cost goes: the writer's work added one part at a time.

The per-neuron nets of ``tools/bench_engine.py`` (S, M) run with recorders
that do more and more of what the event log's writer does with each
instant the engine hands it:

- ``note``: nothing (what remains is the engine noting its sends);
- ``table``: and read the sends' numbers into an int64 table
  (:func:`asyncnet.capture.send_table`);
- ``payloads``: and check and join the payload arrays
  (:func:`asyncnet.logpack.payload_parts`);
- ``pack``: and pack the records (:func:`asyncnet.logcapture.pack_sends`,
  the compiled loop where numba is, loaded outside the clock);
- ``digest``: and hash the packed bytes (BLAKE2b, as the log does);
- ``writer``: the event log's writer itself (file, checkpoints, accounting).

Each is printed as its run time ÷ the run without a recorder (CPU time of
this process, the log's close included), median and min–max over
``--reps`` repetitions, every mode run once a repetition in turn. One
BLAS thread. Time-dependent: a benchmark, not a test.

    python tools/bench_log_parts.py [--sizes S,M] [--reps 5]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import statistics
import sys
import time
from collections.abc import Callable

from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_engine import DURATION, NETS, fmt, per_neuron, run_engine  # noqa: E402

from asyncnet import logcapture, logsends  # noqa: E402
from asyncnet.capture import Captured, send_table  # noqa: E402
from asyncnet.engine import Engine  # noqa: E402
from asyncnet.logpack import payload_parts  # noqa: E402
from asyncnet.schemes.diffusion import Diffusion  # noqa: E402

MODES = ("off", "note", "table", "payloads", "pack", "digest", "writer")
BIG = 10 ** 9  # a record count past MIN_RECORDS: the compiled loop, as a large log uses


def recorder(mode: str) -> Callable[[Captured], None] | None:
    """What a recorder of ``mode`` does with one instant (``None``: no recorder)."""
    if mode == "note":
        return lambda c: None
    if mode == "table":
        return lambda c: send_table(c.sends)
    if mode == "payloads":
        def parts(c: Captured) -> None:
            send_table(c.sends)
            payload_parts(c.sends[1])
        return parts
    if mode == "pack":
        return lambda c: logcapture.pack_sends(c, BIG)
    if mode == "digest":
        h = hashlib.blake2b(digest_size=16)

        def digest(c: Captured) -> None:
            got = logcapture.pack_sends(c, BIG)
            if got is not None:
                h.update(got[0])
        return digest
    return None


def run(net, src, size: str, mode: str) -> float:  # noqa: ANN001
    """CPU seconds of one run of ``mode``."""
    if mode == "writer":
        return run_engine(net, src, DURATION[size], log=True)[0]
    eng = Engine(net, Diffusion(eta=0.01), seed=1, sources=src)
    rec = recorder(mode)
    if rec is not None:
        eng.record(rec)
    gc.collect()
    t0 = time.process_time()
    eng.run(DURATION[size])
    return time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="S,M")
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    sizes = [s for s in a.sizes.split(",") if s]
    if bad := [s for s in sizes if s not in NETS]:
        ap.error(f"unknown size: {', '.join(bad)} (known: {', '.join(NETS)})")
    kern = logsends.kernel(logsends.MIN_RECORDS)
    logsends.warm(kern)
    print(f"the log's parts, run time ÷ the run without a recorder; {a.reps} repetitions; "
          f"packing loop {'compiled' if kern is not None else 'numpy (no numba)'}; "
          f"BLAS threads 1")
    with threadpool_limits(1):
        for size in sizes:
            net, src = per_neuron(NETS[size], DURATION[size])
            times: dict[str, list[float]] = {m: [] for m in MODES}
            for _ in range(a.reps):
                for m in MODES:
                    times[m].append(run(net, src, size, m))
            off = times["off"]
            print(f"{size} (log off: {1e3 * statistics.median(off):.0f} ms)")
            for m in MODES[1:]:
                print(f"  {m:<9} {fmt([x / o for x, o in zip(times[m], off, strict=True)], 3)}")


if __name__ == "__main__":
    main()
