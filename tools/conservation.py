"""The conservation law of EP and CL (SCHEMES.md §4): Q = Σθ², measured.

Network: ``resistor.random_network(12, 26, seed=0)`` (3 voltage inputs + a
ground, 2 outputs, 26 resistors); task: ``nudge.load_dataset("linear")``,
16 patterns (full batch). Everything is the numpy face (direct solves).

1. cos(θ, θ̇) at the initial conductances against the nudge (β or η), for
   one-sided EP, symmetric EP, CL (voltage sources), and the negative
   control — EP and CL with current-source inputs; plus EP on the nonlinear
   Hopfield energy of physics/hopfield.py (not homogeneous in θ).
2. A long run (training time 100, step τ): Q's relative drift against τ and
   the nudge; split into the finite-step part Σ τ²‖θ̇‖² and the nudge part
   Σ 2τ θ·θ̇.
3. The positivity floor: a run where it binds, drift with and without it.

    python tools/conservation.py [--png docs/figures/conservation.png]
"""

from __future__ import annotations

import argparse

import numpy as np

from asyncnet.nudge import load_dataset
from asyncnet.schemes.coupled import resistor as R
from asyncnet.schemes.ep import hopfield as H

NUDGES = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3)


def data():
    ds = load_dataset("linear", n_in=3, n_out=2, seed=1, patterns=16)
    return ds.inputs, ds.targets


def grad(rule: str, net, X, Y, nudge: float) -> np.ndarray:
    """θ̇ = −g for one of the rules."""
    if rule == "ep":
        return -R.ep_gradient(net, X, Y, nudge)
    if rule == "ep-sym":
        return -R.ep_gradient(net, X, Y, nudge, symmetric=True)
    return -R.cl_gradient(net, X, Y, nudge)


def cosine(a, b) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def cos_table(X, Y) -> dict:
    """|cos(θ, θ̇)| per rule and nudge at the initial parameters."""
    volt = R.random_network(seed=0)
    cur = R.random_network(seed=0, mode="current")
    hop = H.layered_net([3, 6, 2], act="sigmoid", seed=0)
    rows = {}
    for nu in NUDGES:
        row = {}
        for rule in ("ep", "ep-sym", "cl"):
            row[rule] = abs(cosine(volt.k, grad(rule, volt, X, Y, nu)))
        row["ep current"] = abs(cosine(cur.k, grad("ep", cur, X, Y, nu)))
        row["cl current"] = abs(cosine(cur.k, grad("cl", cur, X, Y, nu)))
        hs = []
        for x, y in zip(X[:4], Y[:4], strict=True):
            s = np.zeros(hop.n)
            s[:3] = x
            gW, gb, _ = H.ep_gradient(hop, s, y, nu, symmetric=True, polish=True)
            hs.append(hop.flat(gW, gb))
        row["hopfield ep-sym"] = abs(cosine(hop.theta(), -np.mean(hs, axis=0)))
        rows[nu] = row
    return rows


def long_run(X, Y, rule: str, nudge: float, tau: float, T: float = 100.0,
             mode: str = "voltage", floor: float | None = 1e-3, record: int = 0) -> dict:
    """Q's drift over training time T in steps τ (with its two parts)."""
    net = R.random_network(seed=0, mode=mode)
    if floor is not None:
        net.floor = floor
    Q0 = float(net.k @ net.k)
    steps = int(round(T / tau))
    fin = nud = flo = 0.0
    trace = []
    L0 = R.loss(net, X, Y)
    for i in range(steps):
        v = grad(rule, net, X, Y, nudge)
        fin += tau * tau * float(v @ v)
        nud += 2 * tau * float(net.k @ v)
        k = net.k + tau * v
        if floor is not None:
            kc = np.maximum(k, net.floor)
            flo += float(kc @ kc - k @ k)
            k = kc
        net.k = k
        if record and i % max(1, steps // record) == 0:
            trace.append((i * tau, float(net.k @ net.k) / Q0 - 1))
    Q1 = float(net.k @ net.k)
    return {"drift": Q1 / Q0 - 1, "finite_step": fin / Q0, "nudge_part": nud / Q0,
            "floor_part": flo / Q0, "loss0": L0, "loss": R.loss(net, X, Y),
            "at_floor": int(np.sum(net.k <= net.floor)), "trace": trace}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--png", help="write the figure here")
    args = ap.parse_args(argv)
    X, Y = data()

    print("## 1. |cos(θ, θ̇)| at the initial parameters, against the nudge\n")
    tab = cos_table(X, Y)
    cols = list(next(iter(tab.values())))
    print("| nudge | " + " | ".join(cols) + " |")
    print("|---:|" + "---:|" * len(cols))
    for nu, row in tab.items():
        print(f"| {nu:g} | " + " | ".join(f"{row[c]:.2e}" for c in cols) + " |")
    for c in ("ep", "ep-sym", "cl"):
        slope = np.polyfit(np.log(NUDGES), np.log([tab[n][c] for n in NUDGES]), 1)[0]
        print(f"\nslope of log|cos| vs log nudge, {c}: {slope:.2f}", end="")
    print("\n")

    print("## 2. Q's relative drift over training time 100 (CL, voltage sources)\n")
    print("| η | τ | steps | loss start → end | drift ΔQ/Q | Σ τ²‖θ̇‖²/Q | Σ 2τ θ·θ̇/Q |")
    print("|---:|---:|---:|---|---:|---:|---:|")
    runs = {}
    for eta in (1e-1, 1e-2, 1e-3):
        for tau in (1.0, 0.1, 0.01):
            r = long_run(X, Y, "cl", eta, tau)
            runs[eta, tau] = r
            print(f"| {eta:g} | {tau:g} | {int(100 / tau)} | {r['loss0']:.4f} → "
                  f"{r['loss']:.2e} | {r['drift']:+.2e} | {r['finite_step']:.2e} | "
                  f"{r['nudge_part']:+.2e} |")
    print("\nsymmetric EP (β = 1e-3) and one-sided EP, τ = 0.01:\n")
    print("| rule | β | drift ΔQ/Q | Σ τ²‖θ̇‖²/Q | Σ 2τ θ·θ̇/Q | loss start → end |")
    print("|---|---:|---:|---:|---:|---|")
    for rule, b in (("ep-sym", 1e-3), ("ep", 1e-3), ("ep", 1e-1)):
        r = long_run(X, Y, rule, b, 0.01)
        print(f"| {rule} | {b:g} | {r['drift']:+.2e} | {r['finite_step']:.2e} | "
              f"{r['nudge_part']:+.2e} | {r['loss0']:.4f} → {r['loss']:.2e} |")

    print("\n## 3. Negative control: current-source inputs (CL and EP, τ = 0.01)\n")
    print("| rule | nudge | drift ΔQ/Q | Σ 2τ θ·θ̇/Q | loss start → end |")
    print("|---|---:|---:|---:|---|")
    for rule, nu in (("cl", 1e-3), ("ep", 1e-3), ("ep-sym", 1e-3)):
        r = long_run(X, Y, rule, nu, 0.01, mode="current")
        print(f"| {rule} current | {nu:g} | {r['drift']:+.2e} | {r['nudge_part']:+.2e} | "
              f"{r['loss0']:.4f} → {r['loss']:.2e} |")

    print("\n## 4. The positivity floor (CL, η = 1e-3, τ = 0.01)\n")
    print("| floor | conductances at the floor | drift ΔQ/Q | floor part/Q | nudge part/Q |")
    print("|---:|---:|---:|---:|---:|")
    for fl in (1e-3, 0.5, 0.8):
        r = long_run(X, Y, "cl", 1e-3, 0.01, floor=fl)
        print(f"| {fl:g} | {r['at_floor']} | {r['drift']:+.2e} | {r['floor_part']:+.2e} | "
              f"{r['nudge_part']:+.2e} |")

    if args.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
        for c, mk in zip(cols, "os^vdx", strict=False):
            ax[0].loglog(NUDGES, [tab[n][c] for n in NUDGES], mk + "-", label=c)
        ax[0].set_xlabel("nudge (β or η)")
        ax[0].set_ylabel("|cos(θ, θ̇)|")
        ax[0].set_title("alignment of the update with θ")
        ax[0].legend(fontsize=8)
        cases = [("CL η=1e-3, τ=0.01", dict(rule="cl", nudge=1e-3, tau=0.01)),
                 ("CL η=1e-1, τ=0.01", dict(rule="cl", nudge=1e-1, tau=0.01)),
                 ("CL η=1e-3, τ=1", dict(rule="cl", nudge=1e-3, tau=1.0)),
                 ("CL current sources", dict(rule="cl", nudge=1e-3, tau=0.01,
                                             mode="current")),
                 ("CL floor 0.8", dict(rule="cl", nudge=1e-3, tau=0.01, floor=0.8))]
        for lab, kw in cases:
            r = long_run(X, Y, record=200, **kw)
            t, d = zip(*r["trace"], strict=True)
            ax[1].plot(t, d, label=lab)
        ax[1].set_xlabel("training time")
        ax[1].set_ylabel("Q/Q₀ − 1")
        ax[1].set_yscale("symlog", linthresh=1e-6)
        ax[1].set_title("Q = Σk² during training")
        ax[1].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.png, dpi=120)
        print(f"\nfigure: {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
