"""Messages per second of the in-process engine: per-neuron vs populations.

The same layered tanh network is run twice — written with vector
populations, and with one agent per neuron and per synapse
(``expand_to_neurons``) — learning on a piecewise stream, with and without
the event log. Prints a table; time-dependent, so a benchmark, not a test.

    python tools/bench_engine.py [--sizes 8,16,16,4] [--duration 200]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from asyncnet.data import make_stream
from asyncnet.engine import Engine
from asyncnet.eventlog import EventLogWriter
from asyncnet.network import Network, expand_to_neurons, layered
from asyncnet.schemes.diffusion import Diffusion


def run(net: Network, sources: dict, duration: float, log: bool) -> tuple[float, int]:
    eng = Engine(net, Diffusion(eta=0.01), seed=1, sources=sources)
    writer = None
    if log:
        path = os.path.join(tempfile.mkdtemp(), "bench.log")
        writer = EventLogWriter(path, {"agents": eng.names, "scenario": "", "seed": 1})
        eng.sinks.append(writer)
    t0 = time.perf_counter()
    eng.run(duration)
    if writer:
        writer.close()
    return time.perf_counter() - t0, eng.messages()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="8,16,16,4")
    ap.add_argument("--duration", type=float, default=200.0)
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    L = len(sizes) - 1
    pop = Network.from_graph(layered(sizes), seed=0)
    stream = make_stream("piecewise", n_in=sizes[0], n_out=sizes[-1], input_node="l0",
                         output_node=f"l{L}", seed=0, duration=a.duration, hold=10)
    fine = Network.from_graph(expand_to_neurons(pop), seed=0)
    fsrc = {}
    for node in ("l0", f"l{L}"):
        for k in range(pop.populations[node].size):
            fsrc[f"{node}_{k}"] = (lambda t, n=node, k=k: stream.value(n, t)[k:k + 1])
    print(f"layered {sizes}: {sum(p.weight.size for p in pop.projections.values())} "
          f"synapses, duration {a.duration:g}")
    print(f"{'granularity':<12} {'agents':>7} {'log':>4} {'messages':>10} {'wall s':>8} "
          f"{'msg/s':>9}")
    for label, net, src in (("population", pop, stream.sources()), ("per-neuron", fine, fsrc)):
        for log in (False, True):
            wall, n = run(net, src, a.duration, log)
            agents = len(net.populations) + len(net.projections) + len(src)
            print(f"{label:<12} {agents:>7} {'yes' if log else 'no':>4} {n:>10,} "
                  f"{wall:>8.2f} {n / wall:>9,.0f}")


if __name__ == "__main__":
    main()
