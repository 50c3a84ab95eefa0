"""Finite diffusion speed c through the engine: the gradient's lag against c.

Runs scenarios/continuous_lag.toml (a [2, 6, 6, 1] tanh net, sinusoidal input
sampled once per unit, frozen weights) for several c, each neuron's timer
``h = min(0.01, 0.1 / c)``, and prints the ``tracking`` error: how far the
synapses' gradients are from plain backprop on the input shown at each instant.

    python tools/continuous_c_engine.py [--cs 0.5 1 2 5 10 20 50] [--png FILE.png]
"""

from __future__ import annotations

import argparse
import os
import sys

from asyncnet.scenario import load
from asyncnet.simulation import simulate

SCENARIO = os.path.join(os.path.dirname(__file__), "..", "scenarios", "continuous_lag.toml")


def tracking_error(c: float) -> dict:
    """The tracking summary of continuous_lag.toml at speed ``c``."""
    with open(SCENARIO, encoding="utf-8") as f:
        text = f.read()
    h = min(0.01, 0.1 / c)
    text = text.replace("c = 5.0", f"c = {c!r}").replace("h = 0.01", f"h = {h!r}")
    s = simulate(load(SCENARIO, text=text))
    return {**s["tracking"], "h": h, "messages": s["messages"]["total"],
            "wall": s["wall_seconds"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cs", type=float, nargs="+", default=[0.5, 1, 2, 5, 10, 20, 50])
    p.add_argument("--png", help="also draw the figure here")
    a = p.parse_args(argv)
    errs = []
    print("| c | h | relative error | error × c | messages | wall s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for c in a.cs:
        r = tracking_error(c)
        errs.append(r["relative_error"])
        print(f"| {c:g} | {r['h']:g} | {r['relative_error']:.4f} | {r['error_times_c']:.3f} | "
              f"{r['messages']:,} | {r['wall']:.2f} |")
    if a.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(5, 3.6))
        ax.loglog(a.cs, errs, "o-", label="engine (agents, timers, delays)")
        ax.loglog(a.cs, [errs[a.cs.index(5.0)] * 5.0 / c for c in a.cs] if 5.0 in a.cs
                  else [errs[0] * a.cs[0] / c for c in a.cs], "--", c="gray", label="∝ 1/c")
        ax.set_xlabel("diffusion speed c")
        ax.set_ylabel("relative gradient error")
        ax.set_title("continuous_lag.toml through the engine")
        ax.legend()
        fig.tight_layout()
        fig.savefig(a.png, dpi=120)
        print(f"wrote {a.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
