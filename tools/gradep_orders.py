"""The GradEP estimator's error against finite differences, as a function of β.

Prints the relative error of the symmetric (±β) and one-sided estimators
against central finite differences of ½ mean‖v(θ) − u‖² on the small float64
instance of tests/test_gradep_physics.py, and the fitted log-log slopes.

    python tools/gradep_orders.py
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from asyncnet.schemes.gradep import physics as P
from asyncnet.schemes.gradep.face import Face
from tests.test_gradep_physics import SMALL, _fd, problem


def main() -> None:
    """Print the table and the slopes."""
    threadpool_limits(1)
    lam, alpha = 2.0, 1.0
    p, xt, u = problem()
    ref = _fd(p, xt, u, lam, alpha)
    betas = np.array([0.0125, 0.025, 0.05, 0.1])
    sym, one = [], []
    print("    beta   symmetric   one-sided   (relative error vs central FD, h = 1e-5)")
    for b in betas:
        c = P.Config(lam=lam, alpha=alpha, beta=b, dtype="float64", free_steps=2000,
                     nudge_steps=2000, sizes=SMALL)
        face = Face(c, p, len(xt))
        _, g = face.gradient(xt, u)
        est = np.concatenate([g[k].ravel() for k in P.PARAMS])
        free = face.relax(face.reset(xt), xt, u, 0.0, c.free_steps)
        s0, s1 = Face.sums(free), Face.sums(face.relax(free, xt, u, 1.0, c.nudge_steps))
        g1 = np.concatenate([((s0[k] - s1[k]) / (b * len(xt))).ravel() for k in P.PARAMS])
        sym.append(np.linalg.norm(est - ref) / np.linalg.norm(ref))
        one.append(np.linalg.norm(g1 - ref) / np.linalg.norm(ref))
        print(f"  {b:6.4f}   {sym[-1]:.3e}   {one[-1]:.3e}")
    print(f"slopes: symmetric {np.polyfit(np.log(betas), np.log(sym), 1)[0]:.3f}, "
          f"one-sided {np.polyfit(np.log(betas), np.log(one), 1)[0]:.3f}")


if __name__ == "__main__":
    main()
