"""The least-action rule *through the engine*: agents, messages, delays, timers.

References: tests/npref.py (from-scratch backprop, checked against finite
differences in test_diffusion_exact.py) and, for asynchronous neurons, a
causal prediction of the settling time computed from the firing times alone.
"""

import math

import networkx as nx
import numpy as np
import pytest

from asyncnet.engine import Engine
from asyncnet.messages import QUANTA
from asyncnet.network import Network, layered
from asyncnet.schemes.leastaction import LeastAction

from . import npref
from .helpers import exact_problem, gradient_trace, random_dag

TOL = 1e-12


def _relerr(g, r):
    return float(np.max(np.abs(g - r)) / np.max(np.abs(r)))


def _sync_errors(net, seed):
    u, y, ref = exact_problem(net, seed)
    L = net.depth()
    trace, _ = gradient_trace(net, LeastAction(mode="sync"), u, y, until=2 * L + 4, seed=seed)
    after = before = 0.0
    for (name, frame), g in trace.items():
        e = _relerr(g, ref[tuple(name.split("->"))])
        if frame >= 2 * L:
            after = max(after, e)
        elif frame == 2 * L - 1:
            before = max(before, e)
    return after, before


@pytest.mark.parametrize("seed", range(4))
def test_engine_sync_layered_exact_at_2L_not_2L_minus_1(seed):
    rng = np.random.default_rng(200 + seed)
    sizes = [int(s) for s in rng.integers(1, 6, size=int(rng.integers(3, 8)))]
    net = Network.from_graph(layered(sizes, scale=1.5), seed=seed)
    after, before = _sync_errors(net, seed)
    assert after <= TOL
    assert before > 1e-10  # far above rounding


@pytest.mark.parametrize("seed", [0, 1, 2, 4, 6])
def test_engine_sync_random_dag_exact_at_2L_not_2L_minus_1(seed):
    net = Network.from_graph(random_dag(seed, n_hidden=int(3 + seed % 4)), seed=seed)
    after, before = _sync_errors(net, seed)
    assert after <= TOL
    assert before > 1e-10


def _predicted_settle(net, fire_times, t_data=1.0):
    """When every synapse's gradient must become exact, from firing times alone.

    With Δt = 1 a neuron's firing overwrites its x and λ from what it holds,
    so (by induction over the DAG) its x is settled at its first firing once
    every parent's settled x has arrived, and its δ = σ'(a)λ at its first
    firing once that holds and every child's settled δ has arrived (the
    output: once its x is settled and the target has arrived). A synapse is
    exact once both settled values have reached it.
    """
    def first_fire(n, t):
        return min(f for f in fire_times[n] if f >= t - 1e-9)

    sx, sd = {}, {}
    order = list(nx.topological_sort(net.graph))
    for n in order:
        p = net.populations[n]
        if p.role == "input":
            sx[n] = first_fire(n, t_data)
        else:
            sx[n] = first_fire(n, max(sx[q] + net.projections[(q, n)].delay for q in net.pre(n)))
    for n in reversed(order):
        p = net.populations[n]
        if p.role == "input":
            continue
        need = max(sx[q] + net.projections[(q, n)].delay for q in net.pre(n))
        if p.role == "output":
            need = max(need, t_data)
        for c in net.post(n):
            need = max(need, sd[c] + net.projections[(n, c)].delay)
        sd[n] = first_fire(n, need)
    t = 0.0
    for (a, b), pr in net.projections.items():
        first, second = (q / QUANTA for q in pr.legs)
        t = max(t, sx[a] + first, sd[b] + second)
    return t


@pytest.mark.parametrize("seed", range(5))
def test_engine_async_exact_when_causally_settled(seed):
    """Neurons on their own jittered timers: exact after a finite number of
    firings, at exactly the instant the causal prediction gives."""
    delays = (lambda r: float(r.choice([0.5, 1.0, 1.5]))) if seed % 2 else 1.0
    net = Network.from_graph(random_dag(seed, n_hidden=5 + seed, delay=delays), seed=seed)
    u, y, ref = exact_problem(net, seed)
    rule = LeastAction(mode="async", period=1.0, period_spread=0.5, jitter=0.3)
    inp, out = net.inputs()[0], net.outputs()[0]
    eng = Engine(net, rule, seed=seed, sources={inp: lambda t: u, out: lambda t: y})
    fire_times = {n: [] for n in net.populations}
    last_fires = dict.fromkeys(net.populations, 0)
    err = dict.fromkeys((p.name for p in net.projections.values()), math.inf)
    became_exact = [None]
    firings_at_exact = [None]

    def mon(agent, t):
        m = agent.model
        if agent.name in fire_times and m.fires > last_fires[agent.name]:
            fire_times[agent.name].append(t / QUANTA)
            last_fires[agent.name] = m.fires
        if agent.name in err:
            err[agent.name] = _relerr(m.grad, ref[tuple(agent.name.split("->"))])
            ok = max(err.values()) <= TOL
            if ok and became_exact[0] is None:
                became_exact[0] = t / QUANTA
                firings_at_exact[0] = sum(last_fires.values())
            elif not ok:
                became_exact[0] = None

    eng.monitors.append(mon)
    L = net.depth()
    eng.run(12 * L + 20)
    assert became_exact[0] is not None, "never exact"
    # no global tick: firing instants differ between neurons
    firsts = {round(ts[0], 6) for ts in fire_times.values()}
    assert len(firsts) == len(fire_times)
    pred = _predicted_settle(net, fire_times)
    assert became_exact[0] == pytest.approx(pred, abs=1e-9)
    # a finite number of events; and never before the 2L waves could travel
    assert firings_at_exact[0] < 40 * len(net.populations)
    min_d = min(p.delay for p in net.projections.values())
    assert became_exact[0] >= 2 * L * min_d


@pytest.mark.parametrize("dt", [0.3, 0.5])
def test_engine_small_steps_converge_at_predicted_rate(dt):
    """Δt < 1: error ~ poly(t)·(1-Δt)^t; the fitted rate matches -ln(1-Δt)."""
    from asyncnet.analysis.relaxation import attach_settling
    from asyncnet.data import make_stream
    net = Network.from_graph(layered([3, 5, 5, 2]), seed=1)
    stream = make_stream("constant", n_in=3, n_out=2, input_node="l0", output_node="l3",
                         seed=1, duration=1.0)
    rule = LeastAction(mode="sync", dt=dt)
    eng = Engine(net, rule, seed=1, sources=stream.sources())
    res = attach_settling(eng, net, stream, {})
    eng.run(150 if dt < 0.4 else 90)
    r = res()
    pred = -math.log(1 - dt)
    assert r["predicted_rate"] == pytest.approx(pred)
    assert r["measured_rate_poly"] == pytest.approx(pred, rel=0.03)
    assert r["final_error"] <= 1e-12


def test_engine_tension_view_is_activity_and_credit():
    """(u+v)/2 is the forward activity and (u-v)/2 the credit dV/dx, at every neuron."""
    net = Network.from_graph(random_dag(5, n_hidden=4), seed=5)
    u, y, _ = exact_problem(net, 5)
    order, parents, W, b, act = npref.from_network(net)
    x_ref, a_ref = npref.forward(order, parents, W, b, act, {"in": u})
    _, eng = gradient_trace(net, LeastAction(mode="sync"), u, y, until=2 * net.depth() + 3)
    eps = 1e-6
    for n, p in net.populations.items():
        st = eng.state(n)
        assert np.allclose(st["u"], st["state"] + st["lam"])
        assert np.allclose(st["v"], st["state"] - st["lam"])
        assert np.allclose(st["activity"], x_ref[n], atol=1e-12)
        if p.role == "input":
            continue
        # credit = dV/dx_n: finite differences of the loss in n's bias, divided by σ'(a)
        for i in range(p.size):
            bp = {k: v.copy() for k, v in b.items()}
            bm = {k: v.copy() for k, v in b.items()}
            bp[n][i] += eps
            bm[n][i] -= eps
            dVdb = (npref.loss(order, parents, W, bp, act, {"in": u}, {"out": y})
                    - npref.loss(order, parents, W, bm, act, {"in": u}, {"out": y})) / (2 * eps)
            dsig = 1 - np.tanh(a_ref[n][i]) ** 2
            assert st["credit"][i] * dsig == pytest.approx(dVdb, abs=1e-8)
