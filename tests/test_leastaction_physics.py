"""Least-action relaxation (numpy face) against independently written backprop.

The references here (layer-wise matrix backprop, per-node DAG backprop,
finite differences) share no code with :mod:`asyncnet.schemes.leastaction`.
"""

import networkx as nx
import numpy as np
import pytest

from asyncnet.network import Network, layered
from asyncnet.schemes import leastaction as la

# The reference's own activations, written out here (not asyncnet.network's:
# a wrong derivative there would otherwise be copied into the reference).
ACT = {
    "tanh": (np.tanh, lambda a: 1 / np.cosh(a) ** 2),
    "sigmoid": (lambda a: 1 / (1 + np.exp(-a)), lambda a: np.exp(-a) / (1 + np.exp(-a)) ** 2),
    "softplus": (lambda a: np.log1p(np.exp(a)), lambda a: 1 / (1 + np.exp(-a))),
}


def layered_backprop(Ws, bs, acts, u, y):
    """Plain textbook backprop on a chain; returns dC/dW per layer, C = ½‖x_L - y‖²."""
    xs, as_ = [np.asarray(u, float)], []
    for W, b, act in zip(Ws, bs, acts, strict=True):
        a = W @ xs[-1] + b
        as_.append(a)
        xs.append(ACT[act][0](a))
    g = xs[-1] - y
    grads = [None] * len(Ws)
    for k in reversed(range(len(Ws))):
        d = ACT[acts[k]][1](as_[k]) * g
        grads[k] = np.outer(d, xs[k])
        g = Ws[k].T @ d
    return grads


def random_dag(rng, n, p):
    """Random DAG on nodes 0..n-1 (edges i<j); sources are inputs, sinks outputs."""
    while True:
        A = np.triu(rng.random((n, n)) < p, 1)  # A[j, i]: edge j -> i
        g = nx.DiGraph()
        g.add_nodes_from(range(n))
        g.add_edges_from(zip(*np.nonzero(A), strict=True))
        if nx.is_weakly_connected(g) and nx.dag_longest_path_length(g) >= 2:
            return g


def dag_backprop(g, W, b, u_of, y_of):
    """Per-node backprop in topological order with tanh, written from scratch."""
    x, a = {}, {}
    for n in nx.topological_sort(g):
        ps = list(g.predecessors(n))
        if not ps:
            x[n] = u_of[n]
            continue
        a[n] = sum(W[(p, n)] * x[p] for p in ps) + b[n]
        x[n] = np.tanh(a[n])
    lam = {}
    for n in reversed(list(nx.topological_sort(g))):
        s = x[n] - y_of[n] if n in y_of else 0.0
        for c in g.successors(n):
            s += W[(n, c)] * (1 - np.tanh(a[c]) ** 2) * lam[c]
        lam[n] = s
    return {(p, n): (1 - np.tanh(a[n]) ** 2) * lam[n] * x[p] for (p, n) in g.edges}


def relerr(G, R):
    return np.linalg.norm(G - R) / np.linalg.norm(R)


def run_sync(dn, u, y, steps, rng, dt=1.0):
    x = rng.standard_normal(dn.N) * 2
    lam = rng.standard_normal(dn.N) * 2
    errs = []
    out = []
    for _ in range(steps):
        x, lam = la.step(dn, x, lam, u, y, dt)
        out.append(la.gradient(dn, x, lam))
    return out, errs


@pytest.mark.parametrize("seed", range(6))
def test_layered_exact_at_2L_not_before(seed):
    rng = np.random.default_rng(seed)
    L = int(rng.integers(2, 7))
    sizes = [int(s) for s in rng.integers(1, 6, L + 1)]
    act = ["tanh", "sigmoid", "softplus"][seed % 3]
    g = layered(sizes, activation=act, out_activation="tanh", scale=1.5)
    for n in g.nodes:
        if g.nodes[n]["role"] != "input":
            g.nodes[n]["bias"] = rng.standard_normal(g.nodes[n]["size"]) * 0.3
    net = Network.from_graph(g, seed=seed)
    dn = la.DenseNet.from_network(net)
    u = rng.standard_normal(sizes[0])
    y = rng.standard_normal(sizes[-1])
    Ws = [net.projections[(f"l{i}", f"l{i+1}")].weight for i in range(L)]
    bs = [net.populations[f"l{i+1}"].bias for i in range(L)]
    acts = [net.populations[f"l{i+1}"].activation for i in range(L)]
    ref = layered_backprop(Ws, bs, acts, u, y)
    R = np.zeros((dn.N, dn.N))
    for i in range(L):
        R[dn.slices[f"l{i+1}"], dn.slices[f"l{i}"]] = ref[i]
    grads, _ = run_sync(dn, u, y, 2 * L + 3, rng)
    err = [relerr(G, R) for G in grads]  # err[k-1] is after step k
    assert err[2 * L - 1] <= 1e-12
    assert max(err[2 * L - 1:]) <= 1e-12
    assert err[2 * L - 2] > 1e-9  # far above rounding: generically not exact


@pytest.mark.parametrize("seed", range(6))
def test_random_dag_exact_at_2L_not_before(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(6, 14))
    g = random_dag(rng, n, 0.35)
    L = nx.dag_longest_path_length(g)
    W = {e: rng.standard_normal() * 1.2 for e in g.edges}
    b = {k: rng.standard_normal() * 0.3 for k in g.nodes}
    ins = sorted(k for k in g if g.in_degree(k) == 0)
    outs = sorted(k for k in g if g.out_degree(k) == 0)
    u = rng.standard_normal(len(ins))
    y = rng.standard_normal(len(outs))
    ref = dag_backprop(g, W, b, dict(zip(ins, u, strict=True)), dict(zip(outs, y, strict=True)))
    Wm = np.zeros((n, n))
    for (p, c), w in W.items():
        Wm[c, p] = w
    bv = np.array([0.0 if k in ins else b[k] for k in range(n)])
    dn = la.DenseNet(Wm, bv, ins, outs, "tanh", mask=Wm != 0)
    R = np.zeros((n, n))
    for (p, c), v in ref.items():
        R[c, p] = v
    grads, _ = run_sync(dn, u, y, 2 * L + 3, rng)
    err = [relerr(G, R) for G in grads]
    assert max(err[2 * L - 1:]) <= 1e-12
    assert err[2 * L - 2] > 1e-9  # far above rounding: generically not exact


def test_reference_backprop_matches_finite_differences():
    """The test's own reference is itself checked (so a shared mistake would show)."""
    rng = np.random.default_rng(7)
    g = random_dag(rng, 8, 0.4)
    W = {e: rng.standard_normal() for e in g.edges}
    b = {k: 0.1 * k for k in g.nodes}
    ins = [k for k in g if g.in_degree(k) == 0]
    outs = [k for k in g if g.out_degree(k) == 0]
    u = dict(zip(ins, rng.standard_normal(len(ins)), strict=True))
    y = dict(zip(outs, rng.standard_normal(len(outs)), strict=True))

    def loss(W):
        x = {}
        for n in nx.topological_sort(g):
            ps = list(g.predecessors(n))
            x[n] = u[n] if not ps else np.tanh(sum(W[(p, n)] * x[p] for p in ps) + b[n])
        return 0.5 * sum((x[o] - y[o]) ** 2 for o in outs)

    ref = dag_backprop(g, W, b, u, y)
    h = 1e-6
    for e in g.edges:
        Wp, Wm = dict(W), dict(W)
        Wp[e] += h
        Wm[e] -= h
        assert abs((loss(Wp) - loss(Wm)) / (2 * h) - ref[e]) < 1e-8


def test_async_firing_is_exact_after_finite_events():
    """Neurons fire one at a time in a random order (no clock); exact after finitely many."""
    rng = np.random.default_rng(3)
    g = random_dag(rng, 10, 0.35)
    n = 10
    Wm = np.zeros((n, n))
    for (p, c) in g.edges:
        Wm[c, p] = rng.standard_normal()
    ins = sorted(k for k in g if g.in_degree(k) == 0)
    outs = sorted(k for k in g if g.out_degree(k) == 0)
    dn = la.DenseNet(Wm, np.zeros(n), ins, outs, "tanh", mask=Wm != 0)
    u, y = rng.standard_normal(len(ins)), rng.standard_normal(len(outs))
    x, lam = rng.standard_normal(n), rng.standard_normal(n)
    ref = dag_backprop(g, {(p, c): Wm[c, p] for (p, c) in g.edges}, dict.fromkeys(g, 0.0),
                       dict(zip(ins, u, strict=True)), dict(zip(outs, y, strict=True)))
    R = np.zeros((n, n))
    for (p, c), v in ref.items():
        R[c, p] = v
    errs = []
    for _ in range(400):
        x, lam = la.async_fire(dn, x, lam, int(rng.integers(n)), u, y)
        errs.append(relerr(la.gradient(dn, x, lam), R))
    k = next(i for i, e in enumerate(errs) if e <= 1e-12)
    assert errs[0] > 1e-3
    assert max(errs[k:]) <= 1e-12  # once exact, stays exact


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "linear", "relu", "softplus",
                                  "hardsigmoid"])
def test_activation_derivatives_match_finite_differences(name):
    """Every rule and asyncnet.reference take f' from asyncnet.network: check it
    against central differences (away from the kinks of relu and hardsigmoid)."""
    from asyncnet.network import ACTIVATIONS
    f, fp = ACTIVATIONS[name]
    a = np.linspace(-4.0, 4.0, 161)
    a = a[(np.abs(a) > 1e-3) & (np.abs(a - 1.0) > 1e-3)]
    h = 1e-6
    fd = (f(a + h) - f(a - h)) / (2 * h)
    assert np.abs(fp(a) - fd).max() < 1e-8
    assert np.abs(fp(a)).max() > 0.1  # not trivially flat


def test_tension_view_is_activity_and_credit():
    x, lam = np.array([0.3, -1.0]), np.array([2.0, 0.5])
    u, v = la.tension(x, lam)
    assert np.allclose((u + v) / 2, x) and np.allclose((u - v) / 2, lam)
