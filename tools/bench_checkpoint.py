"""Checkpoint size, write time and restore time against network size.

The layered tanh network of ``tools/bench_engine.py`` (diffusion, learning on
a piecewise stream), per neuron (one agent per neuron and per synapse) and
with vector populations, is run to ``--until``; then a checkpoint of every
agent is captured and written (as ``asyncnet run --checkpoint-every`` does),
read back, and restored into a freshly built engine (as ``asyncnet resume``
does, without the log). Scenario files (``--scenario``) are measured the
same way through ``build_engine``. Time-dependent: a benchmark, not a test.

    python tools/bench_checkpoint.py [--sizes 8,16,16,4 60,120,120,60] [--repeat 3]
    python tools/bench_checkpoint.py --scenario scenarios/ep_digits.toml --until 300
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from asyncnet import checkpoint as ckp
from asyncnet.data import make_stream
from asyncnet.engine import Engine
from asyncnet.network import Network, expand_to_neurons, layered
from asyncnet.schemes.diffusion import Diffusion


def layered_engines(sizes: list[int], duration: float):
    """``{label: build()}`` for the population and per-neuron networks."""
    L = len(sizes) - 1
    pop = Network.from_graph(layered(sizes), seed=0)
    stream = make_stream("piecewise", n_in=sizes[0], n_out=sizes[-1], input_node="l0",
                         output_node=f"l{L}", seed=0, duration=duration, hold=10)
    fine = Network.from_graph(expand_to_neurons(pop), seed=0)
    fsrc = {}
    for node in ("l0", f"l{L}"):
        for k in range(pop.populations[node].size):
            fsrc[f"{node}_{k}"] = (lambda t, n=node, k=k: stream.value(n, t)[k:k + 1])
    return {"population": lambda: Engine(pop, Diffusion(eta=0.01), seed=1,
                                         sources=stream.sources()),
            "per-neuron": lambda: Engine(fine, Diffusion(eta=0.01), seed=1, sources=fsrc)}


def scenario_engine(path: str):
    from asyncnet.scenario import load
    from asyncnet.simulation import build_engine
    sc = load(path)
    return {sc.name: lambda: build_engine(sc)[0]}


def measure(build, until: float, repeat: int, directory: str) -> dict:
    eng = build()
    eng.run(until)
    skip = [eng.rule, eng.net]
    caps, writes, reads, restores = [], [], [], []
    size = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        body = {"t": eng.env.now, "scenario_id": "bench", "meta": {},
                "agents": {n: ckp.capture_agent(eng, a, skip) for n, a in eng.agents.items()},
                "global": ckp.capture_global(eng, [], skip), "log": None, "wall": 0.0}
        t1 = time.perf_counter()
        path = ckp.write(directory, body)
        t2 = time.perf_counter()
        caps.append(t1 - t0)
        writes.append(t2 - t1)
        size = os.path.getsize(path)
        t3 = time.perf_counter()
        ck = ckp.read(path)
        t4 = time.perf_counter()
        fresh = build()
        t5 = time.perf_counter()
        for n, a in fresh.agents.items():
            ckp.restore_agent(fresh, a, ck["agents"][n])
        ckp.resume_clock(fresh, ck["t"])
        t6 = time.perf_counter()
        reads.append(t4 - t3)
        restores.append(t6 - t5)
        build_s = t5 - t4
    return {"agents": len(eng.agents), "bytes": size, "capture": statistics.median(caps),
            "write": statistics.median(writes), "read": statistics.median(reads),
            "build": build_s, "restore": statistics.median(restores)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="*", default=["8,16,16,4", "30,60,60,30", "60,120,120,60"])
    ap.add_argument("--scenario", nargs="*", default=[])
    ap.add_argument("--until", type=float, default=20.0)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    rows = []
    for s in a.sizes if not a.scenario else []:
        sizes = [int(x) for x in s.split(",")]
        for label, build in layered_engines(sizes, a.until + 10).items():
            rows.append((f"{s} {label}", build))
    for p in a.scenario:
        rows += list(scenario_engine(p).items())
    print(f"{'network':<28} {'agents':>7} {'MB':>8} {'capture s':>9} {'write s':>8} "
          f"{'read s':>7} {'build s':>8} {'restore s':>9}")
    with tempfile.TemporaryDirectory() as d:
        for label, build in rows:
            r = measure(build, a.until, a.repeat, d)
            print(f"{label:<28} {r['agents']:>7} {r['bytes'] / 1e6:>8.3f} {r['capture']:>9.3f} "
                  f"{r['write']:>8.3f} {r['read']:>7.3f} {r['build']:>8.3f} "
                  f"{r['restore']:>9.3f}", flush=True)


if __name__ == "__main__":
    main()
