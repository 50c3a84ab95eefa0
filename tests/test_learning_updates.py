"""Online learning through the engine: every weight (and bias) change equals
the local rule applied to the messages the agent actually received or sent.

Reference: the delivered messages alone (recorded by an engine sink), with
the update ``W ← W − η δ_post x_preᵀ`` written out here from the most recent
forward and delta payloads that reached the synapse (continuous rule: the
values that held since the previous batch, times the interval over γ). The tests that compare
two runs of the same rule (per-neuron vs per-population, 1 vs n workers)
cannot see a wrong learning rate; this one can.
"""

import numpy as np
import pytest

from asyncnet.data import make_stream
from asyncnet.engine import Engine
from asyncnet.messages import DELTA, FORWARD, QUANTA
from asyncnet.network import Network, layered
from asyncnet.schemes.continuous import Continuous
from asyncnet.schemes.diffusion import Diffusion
from asyncnet.schemes.leastaction import LeastAction

from .helpers import random_dag

ETA = 0.05


def _watch(eng, net, eta=None, gamma=None):
    """Check each synapse's weight change at every wake; return the counts.

    ``eta``: the instant rule W ← W − η δ xᵀ with the values that just met.
    ``gamma``: the continuous one, W ← W − (Δt/γ) δ xᵀ with the values that
    held since the synapse's previous batch, Δt that interval.
    """
    names = [p.name for p in net.projections.values()]
    W = {p.name: p.weight.copy() for p in net.projections.values()}
    x = {p.name: np.zeros(p.weight.shape[1]) for p in net.projections.values()}
    d = {p.name: np.zeros(p.weight.shape[0]) for p in net.projections.values()}
    held = {}  # the (x, d) that held before this instant's batch
    last = dict.fromkeys(names, 0)
    checked = {"updates": 0, "moved": 0.0}

    def sink(batch):
        for m in batch:
            if m.dst in W:
                held.setdefault(m.dst, (x[m.dst], d[m.dst]))
                if m.kind == FORWARD:
                    x[m.dst] = np.asarray(m.payload, float)
                elif m.kind == DELTA:
                    d[m.dst] = np.asarray(m.payload, float)

    def mon(agent, t):
        name = agent.name
        if name not in W:
            return
        now = eng.state(name)["weight"]
        expected = W[name]  # woken without a message: nothing to learn from
        if name in held:
            x0, d0 = held.pop(name)
            if gamma is None:
                expected = W[name] - eta * np.outer(d[name], x[name])
            else:
                expected = W[name] - (t - last[name]) / QUANTA / gamma * np.outer(d0, x0)
            last[name] = t
            checked["updates"] += 1
        assert np.allclose(now, expected, rtol=1e-12, atol=1e-15), (name, t)
        checked["moved"] = max(checked["moved"], float(np.abs(now - W[name]).max()))
        W[name] = np.array(now, copy=True)

    eng.sinks.append(sink)
    eng.monitors.append(mon)
    return checked


@pytest.mark.parametrize("rule", ["diffusion", "leastaction-async", "continuous"])
def test_weight_change_is_minus_eta_delta_x_from_the_messages(rule):
    net = Network.from_graph(random_dag(4, n_hidden=4, delay=1.0), seed=4)
    stream = make_stream("piecewise", n_in=net.populations["in"].size,
                         n_out=net.populations["out"].size, input_node="in",
                         output_node="out", seed=4, duration=60, hold=4, patterns=3)
    if rule == "continuous":  # the weights flow with dW/dt = −grad/γ
        r, kw = Continuous(c=2.0, h=0.3, jitter=0.3, gamma=4.0), {"gamma": 4.0}
    elif rule == "diffusion":
        r, kw = Diffusion(eta=ETA, init_state="random"), {"eta": ETA}
    else:
        r, kw = LeastAction(mode="async", eta=ETA, period=0.7, jitter=0.3), {"eta": ETA}
    eng = Engine(net, r, seed=4, sources=stream.sources())
    checked = _watch(eng, net, **kw)
    eng.run(60)
    assert checked["updates"] > 50 and checked["moved"] > 1e-4


def test_diffusion_bias_change_is_minus_eta_b_times_the_delta_it_sends():
    """A neuron's bias moves by −η_b δ, δ being the delta it emits that instant."""
    net = Network.from_graph(layered([2, 3, 2]), seed=1)
    stream = make_stream("piecewise", n_in=2, n_out=2, input_node="l0", output_node="l2",
                         seed=1, duration=40, hold=3, patterns=3)
    eta_b = 0.07
    eng = Engine(net, Diffusion(eta=0.0, eta_bias=eta_b, init_state="random"), seed=1,
                 sources=stream.sources())
    b = {n: p.bias.copy() for n, p in net.populations.items() if p.role != "input"}
    sent = {}

    class Tap:
        """Stands in for a neuron's model (which may have __slots__): notes the delta it sends."""

        def __init__(self, inner, n):
            self.inner, self.n = inner, n

        def __getattr__(self, key):
            return getattr(self.inner, key)

        def react(self, now, batch):
            emits = self.inner.react(now, batch)
            ds = [p for port, kind, p in emits if kind == DELTA]
            sent[self.n] = np.asarray(ds[0], float) if ds else None
            return emits

    for n in b:
        eng.agents[n].model = Tap(eng.agents[n].model, n)
    count = 0

    def mon(agent, t):
        nonlocal count
        n = agent.name
        if n not in b or n not in sent:
            return
        d = sent.pop(n)
        now = eng.state(n)["bias"]
        expected = b[n] if d is None else b[n] - eta_b * d
        assert np.allclose(now, expected, rtol=1e-13, atol=1e-15), (n, t)
        count += d is not None
        b[n] = np.array(now, copy=True)

    eng.monitors.append(mon)
    eng.run(40)
    assert count > 30
    assert any(np.abs(b[n] - net.populations[n].bias).max() > 1e-3 for n in b)
