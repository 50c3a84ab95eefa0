"""Finite diffusion speed c: how far the continuous-time gradient lags the exact one.

A layered tanh net [2, 6, 6, 1] with frozen weights sees a sinusoidal input
u(t) = sin(ωt + φ_k) and target y(t) = 0.6 sin(ωt/2); the leaky dynamics
(eqs. 18–20, forward-stable sign) are integrated by scipy's RK45 (rtol 1e-9).
Error = mean_t ‖G(t) - ∇V(t)‖ / mean_t ‖∇V(t)‖ over the second half of the run,
where ∇V(t) is plain backprop (asyncnet.reference) on the input shown at t.

    python tools/continuous_c_error.py [--png docs/figures/continuous_c_error.png]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from scipy.integrate import solve_ivp

from asyncnet.network import Network, layered
from asyncnet.reference import backprop
from asyncnet.schemes import continuous as ct

OMEGA = 2 * np.pi / 10.0  # input period: 10 time units


def setup(seed: int = 0):
    g = layered([2, 6, 6, 1], activation="tanh", scale=1.2)
    net = Network.from_graph(g, seed=seed)
    return net, ct.DenseNet.from_network(net)


def u_of(t):
    return np.array([np.sin(OMEGA * t), np.cos(OMEGA * t)])


def y_of(t):
    return np.array([0.6 * np.sin(OMEGA * t / 2)])


def gradient_error(c: float, seed: int = 0, T: float = 40.0, n_eval: int = 200) -> float:
    """Relative tracking error of the gradient at diffusion speed ``c``."""
    net, dn = setup(seed)
    N = dn.N

    def f(t, z):
        dx, dl = ct.rhs(dn, z[:N], z[N:], u_of(t), y_of(t), c)
        return np.concatenate([dx, dl])

    ts = np.linspace(T / 2, T, n_eval)
    sol = solve_ivp(f, (0.0, T), np.zeros(2 * N), t_eval=ts, rtol=1e-9, atol=1e-12)
    num = den = 0.0
    for k, t in enumerate(ts):
        x = sol.y[:N, k].copy()
        x[dn.inputs] = u_of(t)
        G = ct.gradient(dn, x, sol.y[N:, k])
        ref = backprop(net, {"l0": u_of(t)}, {"l3": y_of(t)})["grad"]
        for (a, b), R in ref.items():
            num += np.linalg.norm(G[dn.slices[b], dn.slices[a]] - R) / len(ref)
            den += np.linalg.norm(R) / len(ref)
    return num / den


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--png", help="also draw the figure here")
    a = p.parse_args(argv)
    cs = [0.25, 0.5, 1, 2, 5, 10, 20, 50, 100, 200]
    errs = [gradient_error(c) for c in cs]
    print("| c | relative gradient error | error × c |")
    print("|---|---|---|")
    for c, e in zip(cs, errs, strict=True):
        print(f"| {c:g} | {e:.3e} | {e * c:.3f} |")
    if a.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(5, 3.6))
        ax.loglog(cs, errs, "o-", label="measured")
        ax.loglog(cs, errs[-1] * cs[-1] / np.array(cs, float), "--", c="gray",
                  label="∝ 1/c")
        ax.set_xlabel("diffusion speed c")
        ax.set_ylabel("relative gradient error")
        ax.set_title("continuous-time lag, input period 10")
        ax.legend()
        fig.tight_layout()
        fig.savefig(a.png, dpi=120)
        print(f"wrote {a.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
