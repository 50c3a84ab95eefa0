"""Backprop diffusion is exact from t = 2L on, and generically not before.

Reference: tests/npref.py, a from-scratch backprop (itself checked against
finite differences here).
"""

import numpy as np
import pytest

from asyncnet.network import Network, layered
from asyncnet.schemes.diffusion import Diffusion

from . import npref
from .helpers import exact_problem, gradient_trace, random_dag

TOL = 1e-12


def _check(net, seed):
    u, y, ref = exact_problem(net, seed)
    L = net.depth()
    trace, _ = gradient_trace(net, Diffusion(eta=0.0), u, y, until=2 * L + 4, seed=seed)
    worst_after, worst_before = 0.0, 0.0
    for (name, frame), g in trace.items():
        pre, post = name.split("->")
        r = ref[(pre, post)]
        err = np.max(np.abs(g - r)) / np.max(np.abs(r))
        if frame >= 2 * L:
            worst_after = max(worst_after, err)
        elif frame == 2 * L - 1:
            worst_before = max(worst_before, err)
    return worst_after, worst_before


def test_reference_matches_finite_differences():
    net = Network.from_graph(random_dag(3), seed=3)
    order, parents, W, b, act = npref.from_network(net)
    rng = np.random.default_rng(0)
    u = {"in": rng.standard_normal(net.populations["in"].size)}
    y = {"out": rng.uniform(-1, 1, net.populations["out"].size)}
    g = npref.grads(order, parents, W, b, act, u, y)
    for key in W:
        fd = npref.finite_diff(order, parents, W, b, act, u, y, key)
        assert np.allclose(g[key], fd, atol=1e-8), key


@pytest.mark.parametrize("seed", range(4))
def test_layered_exact_at_2L_not_before(seed):
    rng = np.random.default_rng(100 + seed)
    sizes = [int(s) for s in rng.integers(1, 6, size=int(rng.integers(3, 8)))]
    net = Network.from_graph(layered(sizes), seed=seed)
    after, before = _check(net, seed)
    assert after <= TOL
    assert before > 1e-6  # the earliest layer has not yet received the exact delta


@pytest.mark.parametrize("seed", range(6))
def test_random_dag_exact_at_2L_not_before(seed):
    net = Network.from_graph(random_dag(seed, n_hidden=int(3 + seed % 4)), seed=seed)
    after, before = _check(net, seed)
    assert after <= TOL
    assert before > 1e-6


def test_cycle_refused_for_diffusion():
    import networkx as nx

    from asyncnet.network import NetworkError
    g = layered([2, 3, 3, 1])
    g.add_edge("l2", "l1", delay=1.0)
    with pytest.raises(NetworkError, match="cycle"):
        Network.from_graph(g, require_dag=Diffusion().requires_dag)
    assert nx.is_directed_acyclic_graph(layered([2, 3, 1]))
