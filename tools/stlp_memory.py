"""Memory and work per step against stream length: STLP, RTRL, BPTT (measured).

Each learner computes its learning signal over a stream of ``T`` steps on
the ``stlp_sine`` network (6 neurons, 25 weights + 5 biases):

- STLP: the scheme's recursion (``Dense.run``, nothing recorded per step);
- RTRL: the total gradient carried forward (``stlp_reference.rtrl``);
- BPTT: the total gradient by one forward and one backward pass
  (``stlp_reference.bptt``), which stores the trajectory.

Measured: the peak of Python allocations during the call (``tracemalloc``;
the stream arrays are allocated before tracing starts) and wall seconds per
step (timed in a second call without tracing). Then RTRL against the
number of fully connected neurons ``n`` (a fixed ``T``), with STLP beside it.
BLAS threads are set to 1 (threadpoolctl).

    python tools/stlp_memory.py [--max-T 100000] [--fig-prefix docs/figures/stlp_]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import networkx as nx
import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asyncnet.network import Network  # noqa: E402
from asyncnet.scenario import load  # noqa: E402
from asyncnet.schemes.stlp.physics import Dense  # noqa: E402
from asyncnet.schemes.stlp.reference import Leaky, bptt, rtrl  # noqa: E402
from asyncnet.schemes.stlp.tasks import sequences  # noqa: E402


def measure(fn) -> tuple[int, float]:
    """Peak traced bytes of ``fn()`` and its seconds (a second, untraced call)."""
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    t0 = time.perf_counter()
    fn()
    return peak, time.perf_counter() - t0


def learners(d: Dense, rule, U, Y, T):
    """``{name: callable}`` computing each learner's signal over ``T`` steps."""
    ref = Leaky(d.mask, d.act_names, d.inputs, d.outputs, rule.dt, rule.q)
    x0 = np.zeros(d.N)
    return {"STLP": lambda: d.run(rule, U, Y, d.initial(x0), 0, T, record=False),
            "RTRL": lambda: rtrl(ref, d.W, d.b, U, Y, x0),
            "BPTT": lambda: bptt(ref, d.W, d.b, U, Y, x0)}


def full_net(n: int, seed: int = 0) -> Network:
    """An input, ``n`` fully connected tanh neurons (the last is the output)."""
    rng = np.random.default_rng(seed)
    g = nx.DiGraph()
    g.add_node("in", size=1, activation="linear", role="input")
    hs = [f"h{i:03d}" for i in range(n)]
    for i, h in enumerate(hs):
        g.add_node(h, size=1, activation="tanh", role="output" if i == n - 1 else "hidden")
    for h in hs:
        g.add_edge("in", h, weight=[[rng.normal()]])
        for k in hs:
            if k != h:
                g.add_edge(h, k, weight=[[rng.normal() / np.sqrt(n)]])
    return Network.from_graph(g)


def main() -> None:
    """Measure, print two tables, draw two figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-T", type=int, default=100_000)
    ap.add_argument("--fig-prefix", default=None)
    args = ap.parse_args()
    sc = load(ROOT / "scenarios" / "stlp_sine.toml")
    net = sc.build_network()
    stream = sc.build_stream(net)
    rule = sc.build_rule()
    d = Dense(net)
    Ts = [T for T in (1_000, 3_000, 10_000, 30_000, 100_000) if T <= args.max_T]
    U, Y = sequences(stream, Ts[-1])
    rows: dict[str, list] = {}
    print("| learner | T | peak bytes | µs per step |")
    print("|---|---:|---:|---:|")
    with threadpool_limits(1):
        for T in Ts:
            for name, fn in learners(d, rule, U[:T + 1], Y[:T + 1], T).items():
                b, s = measure(fn)
                rows.setdefault(name, []).append((T, b, s / T))
                print(f"| {name} | {T:,} | {b:,} | {1e6 * s / T:.1f} |")
        print()
        print("| n | parameters | RTRL peak bytes | RTRL µs/step | STLP peak bytes | "
              "STLP µs/step |")
        print("|---:|---:|---:|---:|---:|---:|")
        nrows = []
        for n in (4, 8, 16, 32, 64, 128):
            dn = Dense(full_net(n))
            Tn = 200 if n < 32 else 40 if n < 128 else 10
            t = np.arange(Tn + 1)
            Un = np.ones((Tn + 1, 1))
            Yn = (0.8 * np.sin(2 * np.pi * t / 60))[:, None]
            Yn[0] = np.nan
            f = learners(dn, rule, Un, Yn, Tn)
            rb, rs = measure(f["RTRL"])
            sb, ss = measure(f["STLP"])
            P = int(dn.mask.sum() + dn.learn.sum())
            nrows.append((n, rb, rs / Tn, sb, ss / Tn))
            print(f"| {n} | {P:,} | {rb:,} | {1e6 * rs / Tn:.0f} | {sb:,} | "
                  f"{1e6 * ss / Tn:.0f} |")
    if args.fig_prefix:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
        for name, r in rows.items():
            T, b, s = (np.array(c) for c in zip(*r, strict=True))
            ax[0].loglog(T, b, "o-", label=name)
            ax[1].loglog(T, 1e6 * s, "o-", label=name)
        ax[0].set(xlabel="stream length T (steps)", ylabel="peak bytes (tracemalloc)")
        ax[1].set(xlabel="stream length T (steps)", ylabel="µs per step")
        ax[0].legend()
        fig.tight_layout()
        fig.savefig(f"{args.fig_prefix}memory.png", dpi=110)
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
        n, rb, rs, sb, ss = (np.array(c) for c in zip(*nrows, strict=True))
        ax[0].loglog(n, rb, "o-", label="RTRL")
        ax[0].loglog(n, sb, "s-", label="STLP")
        ax[0].loglog(n, rb[-1] * (n / n[-1]) ** 3, "k:", label="∝ n³")
        ax[1].loglog(n, 1e6 * rs, "o-", label="RTRL")
        ax[1].loglog(n, 1e6 * ss, "s-", label="STLP")
        ax[1].loglog(n, 1e6 * rs[-1] * (n / n[-1]) ** 4, "k:", label="∝ n⁴")
        ax[0].set(xlabel="fully connected neurons n", ylabel="peak bytes")
        ax[1].set(xlabel="fully connected neurons n", ylabel="µs per step")
        ax[0].legend()
        ax[1].legend()
        fig.tight_layout()
        fig.savefig(f"{args.fig_prefix}rtrl_n.png", dpi=110)


if __name__ == "__main__":
    main()
