"""Does STLP's update follow the gradient on a stream? A measurement (SCHEMES.md §3).

Random small recurrent nets (an input, ``n`` fully connected leaky tanh
neurons, a linear readout neuron), frozen weights (β = 0), a sinusoidal
target and an input that is either constant or white noise (one N(0, 1)
value per step, from the net's seed). After ``T`` steps the STLP update direction
is ``−p_w`` (``Δw = −Δt β p_w``); the reference is the BPTT gradient of the
stream's loss ``Σ_t ½ q ‖x_t − y_t‖²`` over the same ``T`` steps. The cosine
of the two, per weight group: recurrent (hidden → hidden), input
(input → hidden) and readout (hidden → output). Nothing here is asserted.

    python tools/stlp_alignment.py [--nets 30] [--steps 200]

BLAS threads are set to 1 with threadpoolctl.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import networkx as nx
import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asyncnet.network import Network  # noqa: E402
from asyncnet.schemes.stlp.physics import STLP, Dense  # noqa: E402
from asyncnet.schemes.stlp.reference import Leaky, bptt  # noqa: E402


def random_net(seed: int, n: int = 4) -> Network:
    """Input ``in``, hidden ``h0..h{n-1}`` fully connected, readout ``out``."""
    rng = np.random.default_rng(seed)
    g = nx.DiGraph()
    g.add_node("in", size=1, activation="linear", role="input")
    hs = [f"h{i}" for i in range(n)]
    for h in hs:
        g.add_node(h, size=1, activation="tanh", role="hidden")
    g.add_node("out", size=1, activation="linear", role="output")
    for h in hs:
        g.add_edge("in", h, weight=[[rng.normal()]])
        g.add_edge(h, "out", weight=[[rng.normal() / np.sqrt(n)]])
        for k in hs:
            if k != h:
                g.add_edge(h, k, weight=[[rng.normal() * 1.2 / np.sqrt(n)]])
    return Network.from_graph(g)


def groups(d: Dense, net: Network) -> dict[str, np.ndarray]:
    """Boolean masks of ``W`` per weight group."""
    m = {k: np.zeros_like(d.mask) for k in ("recurrent", "input", "readout")}
    for (u, v) in net.projections:
        k = "input" if u == "in" else "readout" if v == "out" else "recurrent"
        m[k][d.slices[v], d.slices[u]] = True
    return m


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two vectors."""
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def measure(seed: int, steps: int, theta: float, dt: float, period: float,
            drive: str = "noise") -> dict:
    """Cosines per group for one random net (``drive``: ``constant`` or ``noise`` input)."""
    net = random_net(seed)
    d = Dense(net)
    t = np.arange(steps + 1)
    U = np.ones((steps + 1, 1))
    if drive == "noise":
        U = np.random.default_rng(1000 + seed).standard_normal((steps + 1, 1))
    U[0] = 0.0
    Y = (0.8 * np.sin(2 * np.pi * t / period))[:, None]
    Y[0] = np.nan
    rule = STLP(dt=dt, theta=theta, beta=0.0, gamma=1.0, q=1.0, r_w=0.0, learn_bias=False)
    st, _ = d.run(rule, U, Y, d.initial(), 0, steps)
    ref = Leaky(d.mask, d.act_names, d.inputs, d.outputs, dt, 1.0)
    gW, _, _ = bptt(ref, d.W, d.b, U, Y, np.zeros(d.N))
    return {k: cosine(st["PW"][m], gW[m]) for k, m in groups(d, net).items()}


def main() -> None:
    """Print the statistics per group and setting."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", type=int, default=30)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    print("| input | θ | Δt | T | group | mean cos | median | min | max | share > 0.9 |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    with threadpool_limits(1):
        for drive, theta, dt, steps in (("noise", 0.1, 0.1, args.steps),
                                        ("noise", 0.0, 0.1, args.steps),
                                        ("noise", 0.1, 0.1, 20), ("noise", 0.1, 0.5, args.steps),
                                        ("constant", 0.1, 0.1, args.steps),
                                        ("constant", 0.0, 0.1, args.steps)):
            res = [measure(s, steps, theta, dt, 60.0, drive) for s in range(args.nets)]
            for k in ("recurrent", "input", "readout"):
                c = np.array([r[k] for r in res])
                print(f"| {drive} | {theta:g} | {dt:g} | {steps} | {k} | {c.mean():.3f} | "
                      f"{np.median(c):.3f} | {c.min():.3f} | {c.max():.3f} | "
                      f"{np.mean(c > 0.9):.2f} |")


if __name__ == "__main__":
    main()
