"""Continuous-time leaky dynamics (numpy face) against independent references.

DAGs: the steady state equals plain backprop (``asyncnet.reference``, which
shares no code with the rule). Graphs with cycles: the steady state equals the
Almeida–Pineda gradient of the fixed point, computed here independently by
scipy's root finder plus (a) a direct linear solve and (b) finite differences.
"""

import warnings

import networkx as nx
import numpy as np
import pytest
from scipy.optimize import fsolve

from asyncnet.network import Network
from asyncnet.reference import backprop
from asyncnet.schemes import continuous as ct
from tests.helpers import random_dag


@pytest.mark.parametrize("seed", range(4))
def test_dag_steady_state_is_backprop(seed):
    net = Network.from_graph(random_dag(seed, n_hidden=5), seed=seed)
    dn = ct.DenseNet.from_network(net)
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(net.populations["in"].size)
    y = rng.uniform(-0.8, 0.8, net.populations["out"].size)
    ref = backprop(net, {"in": u}, {"out": y})["grad"]
    _, _, G, _ = ct.fixed_point_gradient(dn, u, y)
    for (a, b), R in ref.items():
        got = G[dn.slices[b], dn.slices[a]]
        assert np.linalg.norm(got - R) <= 1e-10 * max(1.0, np.linalg.norm(R))


def cyclic_net(seed, n=7, p=0.45, gain=0.9):
    """A random digraph with cycles; weights scaled so the forward map contracts."""
    rng = np.random.default_rng(seed)
    while True:
        A = (rng.random((n, n)) < p) & ~np.eye(n, dtype=bool)  # A[i, j]: edge j -> i
        A[0, :] = False  # neuron 0 is the input: nothing enters it
        A[:, 0] = False
        if not nx.is_directed_acyclic_graph(nx.DiGraph(A.T)):
            break
    W = rng.standard_normal((n, n)) * A
    W[1:, 0] = rng.standard_normal(n - 1)  # input fans out to everyone
    Wr = W.copy()
    Wr[:, 0] = 0
    Wr *= gain / max(np.linalg.norm(Wr, 2), 1e-12)  # recurrent part: a contraction
    Wr[:, 0] = W[:, 0]
    b = rng.standard_normal(n) * 0.2
    b[0] = 0
    return Wr, b


def ap_reference(W, b, u, y, outs):
    """Fixed point by scipy root finding; gradient by implicit differentiation."""
    n = len(b)
    hid = np.arange(1, n)

    def fp(W):
        def res(z):
            x = np.concatenate([[u], z])
            return z - np.tanh(W[hid] @ x + b[hid])
        # the tightest tolerance on purpose: scipy may warn it cannot improve
        # further, so the residual is checked here instead
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            z = fsolve(res, np.zeros(n - 1), xtol=1e-14)
        assert np.max(np.abs(res(z))) < 1e-13
        return np.concatenate([[u], z])

    x = fp(W)
    a = W @ x + b
    D = 1 - np.tanh(a) ** 2
    dV = np.zeros(n)
    dV[outs] = x[outs] - y
    J = (D[:, None] * W)[np.ix_(hid, hid)]  # ∂f_i/∂x_j among free neurons
    lam = np.zeros(n)
    lam[hid] = np.linalg.solve(np.eye(n - 1) - J.T, dV[hid])
    G = np.outer(D * lam, x)
    G[0] = 0

    def V(W):
        x = fp(W)
        return 0.5 * np.sum((x[outs] - y) ** 2)

    return G, V


@pytest.mark.parametrize("seed", range(3))
def test_cyclic_steady_state_is_almeida_pineda(seed):
    W, b = cyclic_net(seed)
    n = len(b)
    outs = np.array([n - 2, n - 1])
    u, y = 0.7, np.array([0.3, -0.5])
    dn = ct.DenseNet(W, b, [0], outs, "tanh", mask=W != 0)
    assert not nx.is_directed_acyclic_graph(nx.DiGraph(dn.mask.T))
    _, _, G, _ = ct.fixed_point_gradient(dn, np.array([u]), y)
    R, V = ap_reference(W, b, u, y, outs)
    R = R * dn.mask
    assert np.linalg.norm(G - R) <= 1e-9 * np.linalg.norm(R)
    # finite differences of the fixed point's loss, a few weights
    rng = np.random.default_rng(seed)
    edges = np.argwhere(dn.mask)
    for i, j in edges[rng.choice(len(edges), 5, replace=False)]:
        Wp, Wm = W.copy(), W.copy()
        eps = 1e-5
        Wp[i, j] += eps
        Wm[i, j] -= eps
        fd = (V(Wp) - V(Wm)) / (2 * eps)
        assert abs(fd - G[i, j]) <= 1e-7 + 1e-5 * abs(fd)


def test_paper_sign_diverges_forward_in_time():
    """Negative control: c⁻¹λ̇ = +(I - Jᵀ)λ + ∇V run forward blows up; ours settles."""
    W, b = cyclic_net(1)
    n = len(b)
    dn = ct.DenseNet(W, b, [0], [n - 1], "tanh", mask=W != 0)
    u, y = np.array([0.5]), np.array([0.2])
    x, lam, _, _ = ct.fixed_point_gradient(dn, u, y)
    lam_bad = lam + 1e-6
    for _ in range(400):
        _, dl = ct.rhs(dn, x, lam_bad, u, y, 1.0)
        lam_bad = lam_bad - 0.05 * dl  # the unflipped sign
    lam_ok = lam + 1e-6
    for _ in range(400):
        _, dl = ct.rhs(dn, x, lam_ok, u, y, 1.0)
        lam_ok = lam_ok + 0.05 * dl
    assert np.max(np.abs(lam_bad - lam)) > 1e-3
    assert np.max(np.abs(lam_ok - lam)) < 1e-8


def test_finite_c_error_shrinks_like_one_over_c():
    """Sinusoidal input: the tracking error of the gradient falls ~1/c."""
    from tools.continuous_c_error import gradient_error
    e = {c: gradient_error(c, seed=0, T=30.0) for c in (5.0, 20.0)}
    ratio = e[5.0] / e[20.0]
    assert 3.0 < ratio < 5.5, e
