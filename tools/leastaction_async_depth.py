"""Asynchronous least-action neurons: events and time to an exact gradient, against depth.

For each depth L, random DAGs (a chain of L projections plus random skip
edges, populations of 1-3 neurons, unit delays) run with every neuron on its
own jittered timer (period 1 ± 0.5 drawn once, ± 30% per firing). The
``settling`` analysis reports when every synapse's gradient became exact
against plain backprop, after how many neuron firings and messages.

    python tools/leastaction_async_depth.py [--seeds 5] [--depths 2 4 6 8 10 12]
"""

from __future__ import annotations

import argparse
import sys

import networkx as nx
import numpy as np

from asyncnet.analysis.relaxation import attach_settling
from asyncnet.data import make_stream
from asyncnet.engine import Engine
from asyncnet.network import Network
from asyncnet.schemes.leastaction import LeastAction


def random_deep_dag(depth: int, seed: int, p_skip: float = 0.3) -> nx.DiGraph:
    """A chain ``n0 -> ... -> n{depth}`` plus random forward skip edges."""
    rng = np.random.default_rng(seed)
    g = nx.DiGraph()
    for i in range(depth + 1):
        role = "input" if i == 0 else "output" if i == depth else "hidden"
        g.add_node(f"n{i}", size=int(rng.integers(1, 4)), role=role,
                   activation="linear" if i == 0 else "tanh")
    for i in range(depth):
        g.add_edge(f"n{i}", f"n{i + 1}", delay=1.0)
        for j in range(i + 2, depth + 1):
            if rng.random() < p_skip / (j - i):
                g.add_edge(f"n{i}", f"n{j}", delay=1.0)
    return g


def measure(depth: int, seed: int) -> dict:
    """One run: the settling summary."""
    net = Network.from_graph(random_deep_dag(depth, seed), seed=seed)
    inp, out = "n0", f"n{depth}"
    stream = make_stream("constant", n_in=net.populations[inp].size,
                         n_out=net.populations[out].size, input_node=inp, output_node=out,
                         seed=seed, duration=1.0)
    eng = Engine(net, LeastAction(mode="async"), seed=seed, sources=stream.sources())
    res = attach_settling(eng, net, stream, {})
    eng.run(6 * depth + 20)
    return res()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--depths", type=int, nargs="+", default=[2, 4, 6, 8, 10, 12])
    a = p.parse_args(argv)
    print("| L | runs | time to exact (mean, min-max) | time / 2L | firings per neuron agent | "
          "messages | sync steps |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for L in a.depths:
        rs = [measure(L, s) for s in range(a.seeds)]
        if any(r["exact_from"] is None for r in rs):
            print(f"| {L} | {len(rs)} | NOT exact in some runs | | | | |")
            continue
        t = np.array([r["exact_from"] for r in rs])
        fpn = np.mean([r["firings_per_neuron_to_exact"] for r in rs])
        msg = np.mean([r["messages_to_exact"] for r in rs])
        print(f"| {L} | {len(rs)} | {t.mean():.2f} ({t.min():.2f}-{t.max():.2f}) | "
              f"{t.mean() / (2 * L):.2f} | {fpn:.1f} | {msg:,.0f} | {2 * L} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
