"""The numpy face of resistor networks: Kirchhoff, finite differences, bias orders."""

import numpy as np
import pytest

from asyncnet.schemes.coupled import resistor as R


def _data(seed=0, B=5):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (B, 3)), rng.uniform(-0.3, 0.3, (B, 2))


@pytest.mark.parametrize("mode", ["voltage", "current"])
def test_free_state_obeys_kirchhoff(mode):
    net = R.random_network(seed=3, mode=mode)
    X, _ = _data()
    p = R.solve(net, X)
    # current into every node from its resistors, computed edge by edge
    inflow = np.zeros_like(p)
    for (i, j), k in zip(net.edges, net.k, strict=True):
        inflow[:, i] += k * (p[:, j] - p[:, i])
        inflow[:, j] += k * (p[:, i] - p[:, j])
    fixed = net.clamped_nodes()
    free = np.setdiff1d(np.arange(net.n), fixed)
    injected = np.zeros_like(p)
    if mode == "current":
        injected[:, net.inputs] = X
    assert np.abs(inflow[:, free] + injected[:, free]).max() < 1e-12
    if mode == "voltage":
        assert np.array_equal(p[:, net.inputs], X)
    assert np.all(p[:, net.ground] == 0)


def test_jacobi_relaxation_converges_to_the_solve():
    net = R.random_network(seed=4)
    X, _ = _data(1)
    p = np.zeros((len(X), net.n))
    p[:, net.inputs] = X
    fixed = np.zeros(net.n, bool)
    fixed[net.clamped_nodes()] = True
    for _ in range(2000):
        p = R.jacobi_step(net, p, fixed)
    assert np.abs(p - R.solve(net, X)).max() < 1e-12


@pytest.mark.parametrize("mode", ["voltage", "current"])
def test_implicit_gradient_matches_finite_differences(mode):
    net = R.random_network(seed=3, mode=mode)
    X, Y = _data()
    g = R.implicit_gradient(net, X, Y)
    fd = np.zeros_like(g)
    h = 1e-6
    for e in range(len(g)):
        n2 = net.copy()
        n2.k[e] += h
        lp = R.loss(n2, X, Y)
        n2.k[e] -= 2 * h
        fd[e] = (lp - R.loss(n2, X, Y)) / (2 * h)
    assert np.abs(g - fd).max() < 1e-8


def test_ep_and_cl_bias_orders():
    net = R.random_network(seed=3)
    X, Y = _data()
    g = R.implicit_gradient(net, X, Y)
    gH = R.implicit_gradient(net, X, Y, M=R.effective_conductance(net))
    err = {}
    for b in (1e-2, 1e-3):
        err["ep", b] = np.abs(R.ep_gradient(net, X, Y, b) - g).max() / np.abs(g).max()
        err["sym", b] = np.abs(R.ep_gradient(net, X, Y, b, True) - g).max() / np.abs(g).max()
        err["cl", b] = np.abs(R.cl_gradient(net, X, Y, b) - gH).max() / np.abs(gH).max()
    assert 8 < err["ep", 1e-2] / err["ep", 1e-3] < 12
    assert 80 < err["sym", 1e-2] / err["sym", 1e-3] < 120
    assert 8 < err["cl", 1e-2] / err["cl", 1e-3] < 12
    assert err["cl", 1e-3] < 1e-3


def test_effective_conductance_is_the_output_hessian():
    """H from the Schur complement equals the finite-difference Hessian of min_hidden P."""
    net = R.random_network(seed=5)
    x = np.array([0.3, -0.5, 0.9])
    o = np.array([0.1, -0.2])

    def pmin(v):
        return float(R.power(net, R.solve(net, x, clamp_out=v)))

    h = 1e-4
    Hfd = np.zeros((2, 2))
    for i in range(2):
        for j in range(2):
            ei, ej = np.eye(2)[i] * h, np.eye(2)[j] * h
            Hfd[i, j] = (pmin(o + ei + ej) - pmin(o + ei - ej) - pmin(o - ei + ej)
                         + pmin(o - ei - ej)) / (4 * h * h)
    assert np.abs(R.effective_conductance(net) - Hfd).max() < 1e-6


def test_conservation_orders_and_negative_control():
    """cos(θ, θ̇): O(β) one-sided, O(β²) symmetric, O(η) CL; O(1) with current sources."""
    X, Y = _data()
    net = R.random_network(seed=3)
    netc = R.random_network(seed=3, mode="current")

    def cos(n, g):
        return abs(n.k @ g) / (np.linalg.norm(n.k) * np.linalg.norm(g))

    c = {}
    for b in (1e-2, 1e-3):
        c["ep", b] = cos(net, R.ep_gradient(net, X, Y, b))
        c["sym", b] = cos(net, R.ep_gradient(net, X, Y, b, True))
        c["cl", b] = cos(net, R.cl_gradient(net, X, Y, b))
        c["cur", b] = cos(netc, R.ep_gradient(netc, X, Y, b))
    assert 8 < c["ep", 1e-2] / c["ep", 1e-3] < 12
    assert 80 < c["sym", 1e-2] / c["sym", 1e-3] < 120
    assert 8 < c["cl", 1e-2] / c["cl", 1e-3] < 12
    assert c["cur", 1e-3] > 0.05


def test_finite_step_adds_tau_squared_norm():
    """Q_{n+1} − Q_n ≈ τ²‖θ̇‖² when θ ⟂ θ̇ (symmetric EP, tiny β, floor not binding)."""
    net = R.random_network(seed=3)
    X, Y = _data()
    tr = R.train(net, X, Y, rule="ep-sym", nudge=1e-4, lr=0.5, steps=20)
    dQ = np.diff(tr["Q"])
    assert np.allclose(dQ, tr["step_sq"][:-1], rtol=1e-3)


def test_dQ_dt_is_the_energy_gap():
    """Homogeneity: dQ/dt = 2 k·θ̇ = −(2/β)[E(p^β) − E(p⁰)] (EP) and
    −(2/η)[P(p^C) − P(p^F)] (CL), batch means, with voltage sources."""
    net = R.random_network(seed=3)
    X, Y = _data()
    b = 0.05
    dQ = 2 * net.k @ -R.ep_gradient(net, X, Y, b)
    gap = np.mean(R.power(net, R.solve(net, X, beta=b, y=Y)) - R.power(net, R.solve(net, X)))
    assert abs(dQ + 2 / b * gap) < 1e-12 * max(1.0, abs(dQ))
    pf = R.solve(net, X)
    pc = R.solve(net, X, clamp_out=pf[:, net.outputs] + b * (Y - pf[:, net.outputs]))
    dQ = 2 * net.k @ -R.cl_gradient(net, X, Y, b)
    assert abs(dQ + 2 / b * np.mean(R.power(net, pc) - R.power(net, pf))) < 1e-12
    assert abs(dQ) > 1e-6  # not trivially zero at a finite nudge


def test_train_takes_clipped_gradient_steps():
    """One step of R.train is k ← max(k − lr·g, floor), with g the rule's estimate,
    and the floor really binds for a large enough step."""
    net = R.random_network(seed=3)
    X, Y = _data()
    k0 = net.k.copy()
    g = R.ep_gradient(net, X, Y, 1e-3)
    up = g > 0
    lr = 1.5 * np.min((k0[up] - net.floor) / g[up])  # the first edge overshoots the floor
    expected = np.maximum(k0 - lr * g, net.floor)
    assert np.any(k0 - lr * g < net.floor)
    tr = R.train(net, X, Y, rule="ep", nudge=1e-3, lr=lr, steps=1)
    assert np.allclose(net.k, expected, rtol=1e-13, atol=0)
    assert tr["Q"][0] == pytest.approx(k0 @ k0) and tr["Q"][1] == pytest.approx(expected @ expected)
    assert tr["step_sq"][0] == pytest.approx(lr * lr * (g @ g))
