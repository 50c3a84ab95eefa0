"""The exactness analysis holds each layer to the time the waves need, in time.

With unit delays the paper's bound is ``2L`` (a synapse of layer ``l`` is
exact from ``2L - l``). With other delays the waves take longer or shorter;
the analysis predicts each synapse's first exact frame from the link delays
(:func:`asyncnet.analysis.exactness.predicted_frames`). Here the simulation's
own gradients, against the from-scratch backprop of ``tests/npref.py``, say
when each synapse became exact, and the prediction must name that frame: not
later (it would call an exact run NOT exact, as ``2L`` in hops did with delay
2), and not earlier (generically the frame before is not exact).
"""

import numpy as np
import pytest

import asyncnet
from asyncnet.analysis.exactness import predicted_frames
from asyncnet.messages import QUANTA
from asyncnet.network import Network, layered
from asyncnet.schemes.diffusion import Diffusion
from asyncnet.schemes.leastaction import LeastAction

from .helpers import exact_problem, gradient_trace, random_dag

TOL = 1e-12


def first_exact(net: Network, rule, seed: int, until: float) -> tuple[dict, dict, dict]:
    """Per synapse: the first frame from which every later gradient is exact, the
    error at the frame before it, and the prediction from the engine's links."""
    u, y, ref = exact_problem(net, seed)
    trace, eng = gradient_trace(net, rule, u, y, until=until, seed=seed)
    frames: dict[str, list[tuple[float, float]]] = {}
    for (name, frame), g in trace.items():
        r = ref[tuple(name.split("->"))]
        frames.setdefault(name, []).append((frame, np.max(np.abs(g - r)) / np.max(np.abs(r))))
    first, before = {}, {}
    for name, fe in frames.items():
        fe.sort()
        k = len(fe)
        while k > 0 and fe[k - 1][1] <= TOL:
            k -= 1
        assert k < len(fe), f"{name} never exact by t={until}"
        first[name] = fe[k][0]
        before[name] = fe[k - 1][1] if k else None
    return first, before, predicted_frames(net, eng.links)


@pytest.mark.parametrize("rule", [Diffusion(eta=0.0), LeastAction(eta=0.0)],
                         ids=["diffusion", "leastaction"])
@pytest.mark.parametrize("d", [0.3, 1.0, 2.0])
def test_layered_uniform_delay_closed_form(rule, d):
    """A layered net with every delay ``d`` (sources' delay 1): the synapse of layer
    ``l`` is exact from ``1 + (2L - l - 1) d`` (``2L - l`` with unit delays)."""
    sizes = [3, 4, 2, 3, 2]
    g = layered(sizes)
    for e in g.edges:
        g.edges[e]["delay"] = d
    net = Network.from_graph(g, seed=2)
    L = net.depth()
    first, before, predicted = first_exact(net, rule, seed=2, until=2 + 2 * L * d + 2)
    layer = net.layer_of()
    for pr in net.projections.values():
        want = 1 + (2 * L - layer[pr.pre] - 1) * d
        assert first[pr.name] == pytest.approx(want), pr.name
        assert predicted[pr.name] == pytest.approx(want), pr.name
    deepest = min(net.projections.values(), key=lambda p: layer[p.pre]).name
    assert before[deepest] > 1e-6  # generically not exact one wake earlier


@pytest.mark.parametrize("seed", range(5))
def test_random_dag_random_delays(seed):
    """Skip connections and a different delay on every edge (multiples of 1/4): the
    predicted frame is the simulated one for every synapse."""
    g = random_dag(seed, n_hidden=3 + seed % 3,
                   delay=lambda rng: 0.25 * int(rng.integers(1, 9)))
    net = Network.from_graph(g, seed=seed)
    first, _, predicted = first_exact(net, Diffusion(eta=0.0), seed, until=40)
    assert first == {k: pytest.approx(v) for k, v in predicted.items()}


def test_summary_calls_a_delay_two_run_exact():
    """``2L`` counted in hops called this run NOT exact: its waves need 2L·2 - 1."""
    g = layered([3, 4, 4, 2])
    for e in g.edges:
        g.edges[e]["delay"] = 2.0
    s = asyncnet.run(asyncnet.Scenario(g, "diffusion", params={"eta": 0.0}, seed=1,
                                       data={"kind": "constant"}, duration=20,
                                       analysis={"kind": "exactness"})).summary
    ex = s["exactness"]
    assert ex["exact"] is True
    assert ex["predicted_exact_from"] == 1 + (2 * 3 - 1) * 2.0
    assert ex["max_error_from_2L"] > 1e-3  # what the hop count would have held it to
    text = "\n".join(s["report"])
    assert "EXACT from each layer's t* on, the last t*=11" in text


def _layered_with_delay(d: float):
    g = layered([3, 4, 4, 2])
    for e in g.edges:
        g.edges[e]["delay"] = d
    return g


@pytest.mark.parametrize("d", [0.5, 2.0])
def test_a_layer_holds_the_input_shown_l_times_d_ago(d):
    """What the alignment's "wave" reference means: a synapse of layer ``l`` at
    frame ``f`` holds the activity of the input shown at ``f - l·d`` (``f - l``
    only with unit delays), here against a from-scratch forward pass."""
    from asyncnet.simulation import build_engine

    from . import npref

    sc = asyncnet.Scenario(_layered_with_delay(d), "diffusion", params={"eta": 0.0}, seed=4,
                           data={"kind": "piecewise", "hold": 3, "patterns": 5},
                           duration=20 + 20 * d)
    eng, net, stream = build_engine(sc)
    order, parents, W, b, act = npref.from_network(net)
    layer = net.layer_of()
    legs = {p.name: (p.legs[0], layer[p.pre], p.pre) for p in net.projections.values()}
    seen = []

    def monitor(agent, t):
        if agent.name in legs:
            leg, lay, pre = legs[agent.name]
            seen.append(((t - leg) / QUANTA, lay, pre, agent.model.x_pre.copy()))

    eng.monitors.append(monitor)
    eng.run(sc.duration)
    warm = 1 + (2 * net.depth() - 1) * d
    checked = 0
    for f, lay, pre, x in seen:
        if f < warm:
            continue
        u = stream.inputs[stream.pattern(f - lay * d)]
        want = npref.forward(order, parents, W, b, act, {net.inputs()[0]: u})[0][pre]
        assert np.allclose(x, want, rtol=0, atol=1e-12), (f, lay, pre)
        checked += 1
    assert checked > 100


def test_alignment_counts_its_frames_in_time():
    """The alignment analysis, delays 2: its warm-up is the waves' time (1 + (2L - 1)·2,
    not 2L) and its "wave" cosines are those of the input shown l·2 ago, recomputed
    here from the engine's gradients and from-scratch backprop."""
    from asyncnet.simulation import build_engine

    from . import npref

    d, hold = 2.0, 3
    sc = asyncnet.Scenario(_layered_with_delay(d), "diffusion", params={"eta": 0.0}, seed=4,
                           data={"kind": "piecewise", "hold": hold, "patterns": 5},
                           duration=40, analysis={"kind": "alignment", "holds": [hold]})
    al = asyncnet.run(sc).summary["alignment"]
    L = 3
    assert al["warmup"] == 1 + (2 * L - 1) * d
    eng, net, stream = build_engine(sc, hold=float(hold))
    order, parents, W, b, act = npref.from_network(net)
    layer = net.layer_of()
    info = {p.name: (p.legs[0], layer[p.pre], (p.pre, p.post)) for p in net.projections.values()}
    frames: dict = {}

    def monitor(agent, t):
        if agent.name in info:
            leg, lay, _ = info[agent.name]
            f = (t - leg) / QUANTA
            if f >= al["warmup"]:
                frames.setdefault((lay, f), {})[agent.name] = agent.model.grad.copy()

    eng.monitors.append(monitor)
    eng.run(sc.duration)
    ref = [npref.grads(order, parents, W, b, act, {net.inputs()[0]: u},
                       {net.outputs()[0]: y})
           for u, y in zip(stream.inputs, stream.targets, strict=True)]
    wave: dict = {}
    for (lay, f), grads in frames.items():
        names = sorted(grads)
        g = np.concatenate([grads[n].ravel() for n in names])
        r = ref[stream.pattern(f - lay * d)]
        gr = np.concatenate([r[info[n][2]].ravel() for n in names])
        wave.setdefault(lay, []).append(g @ gr / np.linalg.norm(g) / np.linalg.norm(gr))
    got = {int(k): v for k, v in al["rows"][0]["wave"].items()}
    assert got.keys() == wave.keys()
    for lay, cs in wave.items():
        assert got[lay] == pytest.approx(np.mean(cs), abs=1e-12), lay
