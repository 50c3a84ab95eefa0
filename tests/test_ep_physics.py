"""The numpy face of EP (asyncnet.schemes.ep.hopfield) against finite differences."""

import numpy as np
import pytest

from asyncnet.schemes.ep import hopfield as H


def _setup(act="sigmoid", seed=1):
    net = H.random_net(3, 5, 2, seed=seed, act=act, scale=0.5)
    x = np.zeros(net.n)
    x[:3] = np.random.default_rng(seed).normal(size=3)
    return net, x, np.array([0.2, 0.7])


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "hardsigmoid", "linear"])
def test_grad_s_is_the_derivative_of_the_energy(act):
    net, x, y = _setup(act)
    s = x + np.random.default_rng(3).normal(size=net.n) * net.free
    beta, h = 0.3, 1e-6
    g = H.grad_s(net, s, beta, y)
    for i in np.flatnonzero(net.free):
        e = np.zeros(net.n)
        e[i] = h
        F = lambda z: H.energy(net, z) + beta * H.cost(net, z, y)  # noqa: E731
        assert abs((F(s + e) - F(s - e)) / (2 * h) - g[i]) < 1e-8


def test_implicit_gradient_matches_finite_differences():
    net, x, y = _setup()
    s = H.newton_polish(net, H.relax(net, x, tol=1e-14))
    assert np.abs(H.grad_s(net, s)).max() < 1e-14
    g = net.flat(*H.implicit_gradient(net, s, y))
    th = net.theta()
    fd = np.zeros_like(th)
    h = 1e-6
    for k in range(len(th)):
        vals = []
        for sgn in (1, -1):
            n2 = net.copy()
            t2 = th.copy()
            t2[k] += sgn * h
            n2.set_theta(t2)
            vals.append(H.loss_at_equilibrium(n2, s.copy(), y))
        fd[k] = (vals[0] - vals[1]) / (2 * h)
    assert np.abs(g - fd).max() < 1e-8 * max(1.0, np.abs(fd).max())


def test_ep_bias_orders():
    """One-sided EP: error O(β); symmetric: O(β²) (ratios over a decade of β)."""
    net, x, y = _setup()
    s = H.newton_polish(net, H.relax(net, x, tol=1e-14))
    ref = net.flat(*H.implicit_gradient(net, s, y))
    err = {}
    for sym in (False, True):
        for beta in (1e-2, 1e-3):
            est = net.flat(*H.ep_gradient(net, x, y, beta, symmetric=sym, polish=True)[:2])
            err[sym, beta] = np.abs(est - ref).max() / np.abs(ref).max()
    assert 8 < err[False, 1e-2] / err[False, 1e-3] < 12
    assert 80 < err[True, 1e-2] / err[True, 1e-3] < 120
    assert err[True, 1e-3] < 1e-5
