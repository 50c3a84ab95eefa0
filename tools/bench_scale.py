"""How large a per-neuron network runs here, and what one time unit of it costs.

Builds the per-neuron net of a layered tanh network (``--sizes``, default
700-1400-1400-700: 3.92 M synapse agents) with the data sources of
``tools/bench_engine.py``, builds the engine, runs a first time unit (every
agent starts), then a second one, the steady state, and prints for each
stage its CPU and wall seconds, the messages of the steady time unit, and
the process's peak resident memory per synapse agent. The event log is off.

Time- and memory-dependent: a benchmark, not a test. One BLAS thread.

    python tools/bench_scale.py [--sizes 700,1400,1400,700]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_engine import per_neuron  # noqa: E402

from asyncnet.engine import Engine  # noqa: E402
from asyncnet.schemes.diffusion import Diffusion  # noqa: E402


def peak_rss() -> int:
    """This process's peak resident memory, bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def stage(label: str, fn) -> object:
    """Run ``fn()``, print its CPU and wall time, return what it returns."""
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    print(f"{label:<28} {time.process_time() - c0:8.1f} CPU-s {time.perf_counter() - w0:8.1f} s"
          f"   peak RSS {peak_rss() / 1e9:.2f} GB", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="700,1400,1400,700")
    a = ap.parse_args()
    sizes = [int(x) for x in a.sizes.split(",")]
    with threadpool_limits(1):
        net, src = stage("network", lambda: per_neuron(sizes, 3.0))
        syn = len(net.projections)
        print(f"{syn:,} synapse agents, {syn + len(net.populations):,} agents", flush=True)
        eng = stage("engine", lambda: Engine(net, Diffusion(eta=0.01), seed=1, sources=src))
        stage("first time unit (starts)", lambda: eng.run(1.0))
        before = eng.messages()
        c0 = time.process_time()
        stage("steady time unit", lambda: eng.run(2.0))
        n = eng.messages() - before
        cpu = time.process_time() - c0
    print(f"steady time unit: {n:,} messages, {1e6 * cpu / n:.2f} µs a message; peak RSS "
          f"{peak_rss() / 1e9:.2f} GB = {peak_rss() / syn:,.0f} B per synapse agent")


if __name__ == "__main__":
    main()
