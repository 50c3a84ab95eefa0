"""GradEP physics against independent float64 references (SCHEMES.md §5).

The references here are written from the energy's formula alone: the test's
own gradient of E_s, its own relaxation to equilibrium, finite differences of
½‖v(θ) − u‖². Only the estimator under test comes from the package.
"""

import numpy as np
import pytest

from asyncnet.schemes.gradep import physics as P
from asyncnet.schemes.gradep.face import Face

SMALL = (3, 4, 3)


def a_ref(h):
    return 10 * np.tanh(h / (1 + np.exp(-h)) / 10)


def da_ref(h):
    sig = 1 / (1 + np.exp(-h))
    silu = h * sig
    return (1 - np.tanh(silu / 10) ** 2) * (sig + silu * (1 - sig))


def grad_E(p, x, h1, h2, xt, u, lam, alpha, beta_m):
    """∂E_s/∂(x, h1, h2) written from the energy."""
    a1, a2 = a_ref(h1), a_ref(h2)
    gx = x - p["bx"] - a1 @ p["W0"] + lam * (x - xt) \
        + beta_m * (alpha * lam) ** 2 * (x - xt - u / (alpha * lam))
    g1 = h1 - da_ref(h1) * (x @ p["W0"].T + p["c0"] + a2 @ p["W1"])
    g2 = h2 - da_ref(h2) * (a1 @ p["W1"].T + p["c1"])
    return gx, g1, g2


def equilibrium(p, xt, u, lam, alpha, beta_m=0.0, eps=0.1, steps=4000, s=None):
    x, h1, h2 = s if s is not None else (xt.copy(), np.zeros((len(xt), p["W0"].shape[0])),
                                          np.zeros((len(xt), p["W1"].shape[0])))
    for _ in range(steps):
        gx, g1, g2 = grad_E(p, x, h1, h2, xt, u, lam, alpha, beta_m)
        x, h1, h2 = x - eps * gx, h1 - eps * g1, h2 - eps * g2
    return x, h1, h2


def problem(sizes=SMALL, B=6, seed=2):
    rng = np.random.default_rng(seed)
    p = P.init_params(sizes, seed)
    p["bx"] = rng.normal(0, 0.3, sizes[0])  # a nonzero b_x, so its gradient is tested too
    xt = rng.normal(0, 1, (B, sizes[0]))
    u = rng.normal(0, 1, (B, sizes[0]))
    return p, xt, u


def test_parameter_count():
    assert P.count((64, 128, 128)) == 24_896
    p = P.init_params((64, 128, 128), 0)
    assert sum(v.size for v in p.values()) == 24_896


def test_init_statistics():
    p = P.init_params((64, 128, 128), 0)
    assert np.all(p["bx"] == 0)
    assert abs(p["W1"].std() - 0.5 * np.sqrt(2 / 256)) < 0.01 * 0.5 * np.sqrt(2 / 256) * 5
    assert np.abs(p["c0"]).max() <= 1 / 8 and np.abs(p["c1"]).max() <= 1 / np.sqrt(128)


def test_activation_and_derivative():
    h = np.linspace(-30, 30, 20001)
    a, d = P.act_d(h)
    assert np.abs(a - a_ref(h)).max() < 1e-12
    assert np.abs(d - da_ref(h)).max() < 1e-12


def test_velocity_is_minus_alpha_grad_x_at_equilibrium():
    c = P.Config(dtype="float64", free_steps=3000)
    p, xt, u = problem((64, 128, 128), B=8)
    face = Face(c, p, len(xt))
    x, _, a1, _, _, _, _ = face.relax(face.reset(xt), xt, u, 0.0, c.free_steps)
    v = c.alpha * c.lam * (x - xt)
    grad_x = x - p["bx"] - a_ref(_h1(face, xt, u, c)) @ p["W0"]  # ∂E/∂x, no spring
    assert np.abs(v - (-c.alpha * grad_x)).max() <= 1e-10
    assert np.abs(v).max() > 1e-2  # a real displacement, not a trivial zero


def _h1(face, xt, u, c):
    return face.relax(face.reset(xt), xt, u, 0.0, c.free_steps)[1]


def _fd(p, xt, u, lam, alpha, h=1e-5):
    """Central differences of ½ mean‖v(θ) − u‖², every parameter at once.

    Each perturbed copy of the parameters is one entry of a leading axis, and
    all copies relax together (batched matmuls) with the test's own gradient.
    """
    keys = list(P.PARAMS)
    n = sum(p[k].size for k in keys)
    many = {k: np.repeat(p[k][None], 2 * n, axis=0) for k in keys}
    j = 0
    for k in keys:
        for i in np.ndindex(p[k].shape):
            many[k][(2 * j, *i)] += h
            many[k][(2 * j + 1, *i)] -= h
            j += 1
    q = {"W0": many["W0"], "W1": many["W1"], "c0": many["c0"][:, None],
         "c1": many["c1"][:, None], "bx": many["bx"][:, None]}
    q["W0T"], q["W1T"] = q["W0"].transpose(0, 2, 1), q["W1"].transpose(0, 2, 1)
    x = np.repeat(xt[None], 2 * n, axis=0)
    h1 = np.zeros((2 * n, len(xt), p["W0"].shape[0]))
    h2 = np.zeros((2 * n, len(xt), p["W1"].shape[0]))
    for _ in range(2000):
        a1, a2 = a_ref(h1), a_ref(h2)
        gx = x - q["bx"] - a1 @ q["W0"] + lam * (x - xt)
        g1 = h1 - da_ref(h1) * (x @ q["W0T"] + q["c0"] + a2 @ q["W1"])
        g2 = h2 - da_ref(h2) * (a1 @ q["W1T"] + q["c1"])
        x, h1, h2 = x - 0.1 * gx, h1 - 0.1 * g1, h2 - 0.1 * g2
    L = 0.5 * np.mean(np.sum((alpha * lam * (x - xt) - u) ** 2, axis=2), axis=1)
    return (L[0::2] - L[1::2]) / (2 * h)


def test_estimator_orders_against_finite_differences():
    lam, alpha = 2.0, 1.0  # a wide stable range of beta on a small instance
    p, xt, u = problem()
    ref = _fd(p, xt, u, lam, alpha)
    betas = np.array([0.0125, 0.025, 0.05, 0.1])
    sym, one = [], []
    for b in betas:
        c = P.Config(lam=lam, alpha=alpha, beta=b, dtype="float64", free_steps=2000,
                     nudge_steps=2000, sizes=SMALL)
        face = Face(c, p, len(xt))
        _, g = face.gradient(xt, u)
        est = np.concatenate([g[k].ravel() for k in P.PARAMS])
        sym.append(np.linalg.norm(est - ref) / np.linalg.norm(ref))
        free = face.relax(face.reset(xt), xt, u, 0.0, c.free_steps)
        plus = face.relax(free, xt, u, 1.0, c.nudge_steps)
        s0, s1 = Face.sums(free), Face.sums(plus)
        g1 = np.concatenate([((s0[k] - s1[k]) / (b * len(xt))).ravel() for k in P.PARAMS])
        one.append(np.linalg.norm(g1 - ref) / np.linalg.norm(ref))
    slope_sym = np.polyfit(np.log(betas), np.log(sym), 1)[0]
    slope_one = np.polyfit(np.log(betas), np.log(one), 1)[0]
    assert 1.8 < slope_sym < 2.2, (sym, slope_sym)
    assert 0.85 < slope_one < 1.15, (one, slope_one)
    assert sym[0] < 1e-2


@pytest.mark.parametrize("kw,key", [
    ({"eps": 0.2}, "eps"),            # 0.2 (1 + 15 + 1.125) >= 2
    ({"beta": 0.02, "eps": 0.01}, "beta"),  # 1 + 15 - 18 <= 0
    ({"clip_mode": "both"}, "clip_mode"),
    ({"dtype": "float16"}, "dtype"),
])
def test_validation_names_the_keys(kw, key):
    with pytest.raises(P.GradEPError, match=key):
        P.Config(**kw)


def test_stability_bounds_are_the_documented_ones():
    P.Config(eps=0.1, beta=1.25e-3)  # the paper's: 0.1 * 17.125 < 2
    with pytest.raises(P.GradEPError, match=r"< 2"):
        P.Config(eps=2 / 17.125 + 1e-6)
    with pytest.raises(P.GradEPError, match=r"> 0"):
        P.Config(lam=1.0, alpha=1.0, beta=2.0, eps=0.1)


def test_ot_assignment_equals_the_full_squared_distance_one():
    """ot_pairs solves -2 x0·x1ᵀ; the assignment of the full squared distances (a
    from-scratch cost matrix) is the same, and its total cost is minimal against
    random permutations."""
    from scipy.optimize import linear_sum_assignment

    from asyncnet.schemes.gradep.data import digits, ot_pairs
    rng = np.random.default_rng(7)
    X = digits()
    for n in (5, 60, 300):
        x0 = rng.standard_normal((n, 64))
        x1 = X[rng.permutation(len(X))[:n]]
        C = ((x0[:, None, :] - x1[None, :, :]) ** 2).sum(-1)
        _, ref = linear_sum_assignment(C)
        col = ot_pairs(x0, x1)
        assert np.array_equal(col, ref)
        best = C[np.arange(n), col].sum()
        assert all(best <= C[np.arange(n), rng.permutation(n)].sum() for _ in range(20))
