"""The engine's figures of issue 13, each a ratio measured in one run.

Per-neuron layered tanh nets learning by backprop diffusion (S = 8-16-16-8,
M = 30-60-60-30, L = 60-120-120-60 by default), one agent per neuron and
per synapse. Printed, each with the median and min–max over ``--reps``
interleaved repetitions (CPU time of this process, so a loaded box skews
it less than wall time):

- ``engine``: messages per CPU-second ÷ SimPy ``env.timeout`` + callback
  events per CPU-second, at each size (log off); the cost per message L ÷ S
  (and heapq's own push+pop cost, heap as large as L's agents ÷ S's); and
  L ÷ S again with each run in a new process, S and L interleaved.
- ``log``: run time with the event log ÷ without (S and M), with the
  compiled packing loop (:mod:`asyncnet.logsends`, loaded as a log past
  1 M records or a process with numba loads it) and with the numpy path.
- ``stats``: ``asyncnet stats`` records per CPU-second on a log of the
  quickstart scenario, and the reader's peak memory (tracemalloc) on that
  log ÷ on one 4× as long (flat: ≈ 1); then the same with the compiled
  scanner loaded (``asyncnet.logcols``, where numba is), and what loading
  it costs once a process.
- ``traffic``: run time with the run summary's traffic counter ÷ without
  (S), fed batch by batch (``Traffic``) and an instant at a time
  (``Traffic.instant``, what ``asyncnet run`` uses without a log); and
  with the log on, against the same run with the log and no counter
  (``Traffic.sends``: from the log's sends); the counters must give the
  same summary.
- ``memory``: traced memory per synapse agent of the L net after one time
  unit (the network, the engine, the messages in flight), and the engine's
  part alone.

Time-dependent: a benchmark, not a test. To compare two trees, run it with
``PYTHONPATH`` set to each (it uses only long-standing public APIs).

    python tools/bench_engine.py [--figures engine,log,stats,traffic,memory] [--reps 3]
        [--traffic-sizes S,L]
"""

from __future__ import annotations

import argparse
import gc
import heapq
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc

import simpy
from threadpoolctl import threadpool_limits

from asyncnet import simulation
from asyncnet.data import make_stream
from asyncnet.engine import Engine
from asyncnet.eventlog import EventLogWriter
from asyncnet.network import Network, expand_to_neurons, layered
from asyncnet.schemes.diffusion import Diffusion
from asyncnet.simulation import new_traffic

NETS = {"S": [8, 16, 16, 8], "M": [30, 60, 60, 30], "L": [60, 120, 120, 60]}
DURATION = {"S": 60.0, "M": 8.0, "L": 3.0}  # ~1e5 to 1e6 messages each


def per_neuron(sizes: list[int], duration: float) -> tuple[Network, dict]:
    """The per-neuron net of a layered population net, with its data sources.

    Parameters
    ----------
    sizes:
        layer widths.
    duration:
        how long the piecewise input stream runs.

    Returns
    -------
    ``(network, sources)`` for :class:`~asyncnet.engine.Engine`.
    """
    n = len(sizes) - 1
    pop = Network.from_graph(layered(sizes), seed=0)
    stream = make_stream("piecewise", n_in=sizes[0], n_out=sizes[-1], input_node="l0",
                         output_node=f"l{n}", seed=0, duration=duration + 10, hold=10)
    fine = Network.from_graph(expand_to_neurons(pop), seed=0)
    src = {}
    for node in ("l0", f"l{n}"):
        for k in range(pop.populations[node].size):
            src[f"{node}_{k}"] = (lambda t, nd=node, k=k: stream.value(nd, t)[k:k + 1])
    return fine, src


def run_engine(net: Network, src: dict, duration: float, log: bool,
               traffic: str | None = None) -> tuple[float, int]:
    """CPU seconds and messages of one run (the engine built outside the clock).

    ``traffic``: ``"batch"`` or ``"instant"`` feeds a run summary's counter
    (``run_engine.summary`` keeps its summary), ``None`` none.
    """
    eng = Engine(net, Diffusion(eta=0.01), seed=1, sources=src)
    writer = None
    if log:
        path = os.path.join(tempfile.mkdtemp(), "bench.log")
        writer = EventLogWriter(path, {"agents": eng.names, "scenario": "", "seed": 1})
        eng.record(writer.record)
    if traffic:  # (after the writer, as a run attaches it: with a log, from its sends)
        tr = new_traffic(eng.links, net)
        if traffic == "batch":
            eng.sinks.append(tr)
        elif hasattr(simulation, "feed_traffic"):  # as a run feeds it
            simulation.feed_traffic(eng, tr)
        else:  # a checkout from before 4 December, fourth session
            eng.instant_sinks.append(tr.instant)
    gc.collect()
    t0 = time.process_time()
    eng.run(duration)
    if writer:
        writer.close()
    dt = time.process_time() - t0
    if writer:
        os.remove(writer.path)
    if traffic:
        run_engine.summary = tr.summary()  # type: ignore[attr-defined]
    return dt, eng.messages()


def simpy_rate(events: int = 300_000, width: int = 1000) -> float:
    """SimPy ``env.timeout`` + callback events per CPU-second (``width`` chains)."""
    env = simpy.Environment()
    left = [events]

    def fire(ev: simpy.Event, k: int) -> None:
        left[0] -= 1
        if left[0] > 0:
            nxt = env.timeout(1 + k % 7)
            nxt.callbacks.append(lambda e, k=k: fire(e, k))

    for k in range(width):
        ev = env.timeout(k % 7)
        ev.callbacks.append(lambda e, k=k: fire(e, k))
    t0 = time.process_time()
    env.run()
    return (events + width - 1) / (time.process_time() - t0)


def heapq_cost(size: int, ops: int = 300_000) -> float:
    """CPU seconds per push+pop on a heap of ``size`` entries (SimPy's queue)."""
    rnd = random.Random(0)
    heap = [(rnd.random(), i) for i in range(size)]
    heapq.heapify(heap)
    t0 = time.process_time()
    for i in range(ops):
        t, _ = heapq.heappop(heap)
        heapq.heappush(heap, (t + rnd.random(), i))
    return (time.process_time() - t0) / ops


SPREADS: list[float] = []
"""Each printed figure's max ÷ min over its repetitions (see :func:`main`'s last line)."""


def fmt(xs: list[float], digits: int = 2) -> str:
    """``median (min–max)``."""
    if len(xs) > 1 and min(xs) > 0:
        SPREADS.append(max(xs) / min(xs))
    return f"{statistics.median(xs):.{digits}f} ({min(xs):.{digits}f}–{max(xs):.{digits}f})"


def bench_engine(reps: int, sizes: list[str]) -> None:
    nets = {s: per_neuron(NETS[s], DURATION[s]) for s in sizes}
    ratio: dict[str, list[float]] = {s: [] for s in sizes}
    cost: dict[str, list[float]] = {s: [] for s in sizes}
    heap = []
    for _ in range(reps):
        for s in sizes:
            ev = simpy_rate()
            dt, n = run_engine(*nets[s], DURATION[s], log=False)
            ratio[s].append(n / dt / ev)
            cost[s].append(dt / n)
        if "S" in sizes and "L" in sizes:
            heap.append(heapq_cost(len(nets["L"][0].projections) + len(nets["L"][0].populations))
                        / heapq_cost(len(nets["S"][0].projections)
                                     + len(nets["S"][0].populations)))
    for s in sizes:
        print(f"engine   {s}: msgs/s ÷ SimPy timeout+callback events/s  {fmt(ratio[s])}"
              f"   ({1e6 * statistics.median(cost[s]):.2f} µs/msg)")
    if heap:
        lr = [a / b for a, b in zip(cost["L"], cost["S"], strict=True)]
        print(f"engine   cost per message L ÷ S  {fmt(lr)}   (heapq's own: {fmt(heap)})")
        fresh = {"S": [], "L": []}
        for _ in range(reps):
            for s in fresh:
                fresh[s].append(fresh_cost(s))
        lr = [a / b for a, b in zip(fresh["L"], fresh["S"], strict=True)]
        print(f"engine   the same, each run in a fresh process (as `asyncnet run` does)  "
              f"{fmt(lr)}   (S {1e6 * statistics.median(fresh['S']):.2f}, "
              f"L {1e6 * statistics.median(fresh['L']):.2f} µs/msg)")


def fresh_cost(size: str) -> float:
    """CPU seconds a message of one run of ``size`` in a new Python process.

    In one process the three nets and the runs before leave the allocator's
    free lists scattered, which moves S and L by a few per cent each.
    """
    out = subprocess.run([sys.executable, __file__, "--one", size], capture_output=True,
                         text=True, check=True)
    return float(out.stdout)


def bench_log(reps: int, sizes: list[str]) -> None:
    from asyncnet import logsends
    packers = ["numpy"]
    kern = logsends.kernel(logsends.MIN_RECORDS)  # what a log past 1 M records loads
    if kern is not None:
        logsends.warm(kern)  # compiled, or read from numba's cache, outside the clock
        packers.insert(0, "compiled")
    for s in sizes:
        net, src = per_neuron(NETS[s], DURATION[s])
        for packer in packers:
            logsends.COMPILED = packer == "compiled"
            rs, per = [], []
            for _ in range(reps):
                off, n = run_engine(net, src, DURATION[s], log=False)
                on, _ = run_engine(net, src, DURATION[s], log=True)
                rs.append(on / off)
                per.append((on - off) / n)
            print(f"log      {s}: run time with the event log ÷ without, {packer} packer  "
                  f"{fmt(rs)}   (writer {1e6 * statistics.median(per):.2f} µs/record)")
        logsends.COMPILED = True


def bench_traffic(reps: int, size: str = "S") -> None:
    """The counter fed batch by batch, by instant, and by instant with the log on
    (from the log's sends where the code does that), each ÷ the same run without it."""
    net, src = per_neuron(NETS[size], DURATION[size])
    ways = {"batch": ("batch", False), "instant": ("instant", False),
            "instant, log on": ("instant", True)}
    ratio: dict[str, list[float]] = {w: [] for w in ways}
    extra: dict[str, list[float]] = {w: [] for w in ways}
    for _ in range(reps):
        base = {log: run_engine(net, src, DURATION[size], log=log) for log in (False, True)}
        summaries = []
        for way, (how, log) in ways.items():
            on, _ = run_engine(net, src, DURATION[size], log=log, traffic=how)
            summaries.append(run_engine.summary)  # type: ignore[attr-defined]
            off, n = base[log]
            ratio[way].append(on / off)
            extra[way].append((on - off) / n)
        if any(x != summaries[0] for x in summaries):
            raise SystemExit("the traffic counters disagree: they did not do the same work")
    for way, rs in ratio.items():
        print(f"traffic  {size}: run time with the traffic counter ({way}) ÷ without  {fmt(rs)}"
              f"   ({1e6 * statistics.median(extra[way]):.2f} µs/message)")


def bench_stats(reps: int) -> None:
    from asyncnet.scenario import load
    from asyncnet.simulation import simulate
    from asyncnet.stats import log_stats
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "scenarios", "quickstart.toml")
    text = open(root).read()
    d = tempfile.mkdtemp()
    paths = []
    for dur in (5000, 20000):
        sc_path = os.path.join(d, f"qs{dur}.toml")
        with open(sc_path, "w") as f:
            f.write(text.replace("duration = 4000", f"duration = {dur}"))
        log = os.path.join(d, f"qs{dur}.log")
        simulate(load(sc_path), log_path=log)
        paths.append(log)

    def measure(label: str) -> list[float]:
        rates, peaks = [], []
        for _ in range(reps):
            t0 = time.process_time()
            s = log_stats(paths[1])
            rates.append(s["messages"]["total"] / (time.process_time() - t0) / 1e6)
            pk = []
            for p in paths:
                tracemalloc.start()
                log_stats(p)
                pk.append(tracemalloc.get_traced_memory()[1])
                tracemalloc.stop()
            peaks.append(pk[1] / pk[0])
        size = os.path.getsize(paths[1]) / 1e6
        print(f"stats    records/s (M/s), {size:.1f} MB log{label}  {fmt(rates)}")
        print(f"stats    reader peak memory, 4× longer log ÷ shorter{label}  {fmt(peaks)}"
              f"   ({pk[0] / 1e6:.1f} MB, {pk[1] / 1e6:.1f} MB)")
        return rates

    rates = measure("")
    try:  # the compiled scanner (asyncnet.logcols, numba): loaded once a process
        from asyncnet import logcols
    except ImportError:
        return
    if logcols.kernel(0) is not None:
        return  # already loaded: the line above measured it
    t0 = time.process_time()
    if logcols.kernel() is None:
        return
    s = log_stats(paths[1])
    first = time.process_time() - t0
    warm = measure(", scanner loaded")
    load = first - s["messages"]["total"] / statistics.median(warm) / 1e6
    # records (millions) whose saving pays for the load: load ÷ (time per M records saved)
    even = load / (1 / statistics.median(rates) - 1 / statistics.median(warm))
    mb = even * 1e6 * os.path.getsize(paths[1]) / s["messages"]["total"] / 1e6
    print(f"stats    loading the scanner (numba import + cached kernel), once a process: "
          f"{load:.2f} CPU-s, paid back after {even:.2f} M records ({mb:.0f} MB)")


def bench_memory(size: str) -> None:
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    net, src = per_neuron(NETS[size], 2.0)
    mid = tracemalloc.get_traced_memory()[0]
    eng = Engine(net, Diffusion(eta=0.01), seed=1, sources=src)
    eng.run(1.0)
    now, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    syn = len(net.projections)
    print(f"memory   {size} ({syn:,} synapse agents, {len(eng.agents):,} agents): per synapse "
          f"agent {(now - base) / syn:,.0f} B (peak {(peak - base) / syn:,.0f} B), "
          f"engine's part {(now - mid) / syn:,.0f} B, the network's {(mid - base) / syn:,.0f} B")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--figures", default="engine,log,stats,traffic,memory")
    ap.add_argument("--sizes", default="S,M,L", help="engine figure: nets among S, M, L")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--traffic-sizes", default="S", help="traffic figure: nets among S, M, L")
    ap.add_argument("--one", choices=list(NETS), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:  # a child of fresh_cost: one run, its CPU seconds a message
        with threadpool_limits(1):
            dt, n = run_engine(*per_neuron(NETS[a.one], DURATION[a.one]), DURATION[a.one],
                               log=False)
        print(dt / n)
        return
    figures = a.figures.split(",")
    sizes = [s for s in a.sizes.split(",") if s]
    traffic_sizes = [s for s in a.traffic_sizes.split(",") if s]
    if bad := [s for s in sizes + traffic_sizes if s not in NETS] + [f for f in figures if f not in
                                                       ("engine", "log", "stats", "traffic",
                                                        "memory")]:
        ap.error(f"unknown size or figure: {', '.join(bad)}")
    with threadpool_limits(1):
        if "engine" in figures:
            bench_engine(a.reps, sizes)
        if "log" in figures:
            bench_log(a.reps, [s for s in sizes if s != "L"] or ["S"])
        if "stats" in figures:
            bench_stats(a.reps)
        if "traffic" in figures:
            for size in traffic_sizes:
                bench_traffic(a.reps, size)
        if "memory" in figures:
            bench_memory("L")
    if SPREADS and max(SPREADS) > 1.25:  # a loaded box: say so beside the figures
        print(f"note: repetitions of one figure were up to {max(SPREADS):.2f}× apart (a "
              f"loaded box); `tools/bench_instructions.py` counts a change in the work "
              f"exactly, `--cache` the misses that make L cost more")


if __name__ == "__main__":
    main()
