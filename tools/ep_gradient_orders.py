"""Bias of the engine's EP and CL estimates against nudge size, as a figure.

Runs the gradient analysis of scenarios/ep_gradient.toml, ep_symmetric.toml,
ep_async.toml and coupled_gradient.toml over a denser list of nudges (each
point: an engine run, estimates read from the synapse agents, compared with
implicit differentiation) and plots the relative error against the nudge.

    python tools/ep_gradient_orders.py [--png docs/figures/ep_gradient_orders.png]
"""

from __future__ import annotations

import argparse
import os
import re

from asyncnet.scenario import load
from asyncnet.simulation import simulate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUDGES = [0.3, 0.1, 0.03, 0.01, 0.003, 0.001, 0.0003, 0.0001]
CASES = (("ep_gradient", "EP one-sided"), ("ep_symmetric", "EP symmetric ±β"),
         ("ep_async", "EP one-sided, asynchronous neurons"),
         ("coupled_gradient", "CL (vs the H-weighted cost)"))


def table() -> dict[str, list[tuple[float, float]]]:
    """{label: [(nudge, relative error), ...]} from engine runs."""
    out = {}
    for name, label in CASES:
        path = os.path.join(ROOT, "scenarios", f"{name}.toml")
        text = open(path, encoding="utf-8").read()
        text = re.sub(r"(?m)^betas\s*=.*$", f"betas = {NUDGES[1:]}", text)
        text = re.sub(r"(?m)^(beta|eta)\s*=\s*[0-9.e+-]+", rf"\g<1> = {NUDGES[0]}", text,
                      count=1)
        s = simulate(load(path, text=text))
        out[label] = [(r["nudge"], r["error"]) for r in s["gradient"]]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--png", help="write the figure here")
    args = ap.parse_args(argv)
    tab = table()
    labels = list(tab)
    print("| nudge | " + " | ".join(labels) + " |")
    print("|---:|" + "---:|" * len(labels))
    for i, nu in enumerate(NUDGES):
        print(f"| {nu:g} | " + " | ".join(f"{tab[lb][i][1]:.2e}" for lb in labels) + " |")
    if args.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 4.2))
        for (lb, rows), mk in zip(tab.items(), "os^d", strict=False):
            ax.loglog([r[0] for r in rows], [r[1] for r in rows], mk + "-", label=lb)
        ax.set_xlabel("nudge (β or η)")
        ax.set_ylabel("relative error vs implicit differentiation")
        ax.set_title("clockless EP / CL through the engine")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.png, dpi=120)
        print(f"figure: {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
