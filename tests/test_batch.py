"""``[data] batch = B`` in diffusion, leastaction and continuous.

What a batch means (``asyncnet/schemes/batching.py``): every row is one
sample with the arithmetic of a run on that sample alone; a synapse learns
the batch mean of ``δ_b x_bᵀ``, a bias the batch mean of ``δ``. Checked
against independent references:

- frozen weights: every message of a batched run, row ``k``, equals the
  message of a separate run on sample ``k`` alone — bit for bit;
- learning: diffusion against the delay model written here in plain numpy
  (with the batch mean as defined); every rule's weight change against the
  payloads the synapse received (mean of the outer products, summed here
  one sample at a time);
- one agent per neuron gives the same numbers with a batch too.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from asyncnet import registry
from asyncnet.cli import main
from asyncnet.data import DataError, make_stream
from asyncnet.engine import Engine
from asyncnet.messages import DELTA, FORWARD, QUANTA
from asyncnet.network import Network, agent_rng, expand_to_neurons, layered
from asyncnet.schemes.continuous import Continuous
from asyncnet.schemes.diffusion import Diffusion
from asyncnet.schemes.leastaction import LeastAction

from .helpers import random_dag

B = 3


def _rule(kind: str, learn: bool):
    if kind == "diffusion":
        return Diffusion(eta=0.05 if learn else 0.0, init_state="random")
    if kind == "leastaction-sync":
        return LeastAction(mode="sync", dt=0.7, eta=0.05 if learn else 0.0)
    if kind == "leastaction-async":
        return LeastAction(mode="async", eta=0.05 if learn else 0.0, period=0.7, jitter=0.3)
    return Continuous(c=2.0, h=0.3, jitter=0.3, gamma=4.0 if learn else 0.0,
                      init_state="random")


def _problem(seed: int = 4, duration: float = 40):
    net = Network.from_graph(random_dag(seed, n_hidden=4, delay=1.0), seed=seed)
    stream = make_stream("piecewise", n_in=net.populations["in"].size,
                         n_out=net.populations["out"].size, input_node="in",
                         output_node="out", seed=seed, duration=duration, hold=3,
                         patterns=5, batch=B)
    return net, stream


def _messages(net, rule, sources, until):
    eng = Engine(net, rule, seed=7, sources=sources)
    got = []
    eng.sinks.append(lambda batch: got.extend(
        (m.t_arrive, m.kind, m.src, m.dst, m.seq, m.payload) for m in batch))
    eng.run(until)
    return got, eng


@pytest.mark.parametrize("kind", ["diffusion", "leastaction-sync", "leastaction-async",
                                  "continuous"])
def test_frozen_batch_rows_are_separate_runs_bit_for_bit(kind):
    net, stream = _problem()
    batched, eng = _messages(net, _rule(kind, False), stream.sources(), 40)
    assert any(np.ndim(p) == 2 and np.shape(p)[0] == B for *_, p in batched)
    grads = {p.name: [] for p in net.projections.values()}
    for k in range(B):
        sources = {n: (lambda t, n=n, k=k: stream.value(n, t)[k]) for n in ("in", "out")}
        alone, eng_k = _messages(net, _rule(kind, False), sources, 40)
        assert len(alone) == len(batched)
        for (*meta_b, pb), (*meta_a, pa) in zip(batched, alone, strict=True):
            assert meta_b == meta_a
            row = np.broadcast_to(pb, (B, *np.shape(pa)))[k]
            assert np.array_equal(row, pa), (meta_b, k)
        for name in grads:
            grads[name].append(eng_k.agents[name].model.grad)
    for name, gs in grads.items():  # the batch's gradient: the mean of the samples'
        want = np.mean(gs, axis=0)
        got = eng.agents[name].model.grad
        assert np.allclose(got, want, rtol=1e-12, atol=1e-14), name


def _reference_diffusion(net, stream, eta, eta_b, until, seed):
    """The diffusion delay model on a chain, batched, in plain numpy (see module doc)."""
    names = [f"l{i}" for i in range(len(net.populations))]
    L = len(names) - 1
    f = np.tanh

    def fp(a):
        return 1.0 - np.tanh(a) ** 2

    W = [net.projections[(names[i], names[i + 1])].weight.copy() for i in range(L)]
    b = [net.populations[n].bias.copy() for n in names]
    a, d = [], []
    for n in names:
        rng = agent_rng(seed, n)
        a.append(rng.standard_normal(net.populations[n].size))
        d.append(rng.standard_normal(net.populations[n].size))
    x = [a[0]] + [f(v) for v in a[1:]]
    for k in range(int(until)):
        # projections at k + ½: relay, then learn the batch mean of δ xᵀ
        fwd = [np.atleast_2d(x[i]) @ W[i].T for i in range(L)]
        back = [np.atleast_2d(d[i + 1]) @ W[i] for i in range(L)]
        for i in range(L):
            X = np.atleast_2d(x[i])
            D = np.atleast_2d(d[i + 1])
            n_b = max(len(X), len(D))
            G = sum(np.outer(D[j % len(D)], X[j % len(X)]) for j in range(n_b)) / n_b
            W[i] = W[i] - eta * G
        if k + 1 >= until:
            break
        t = k + 1.0
        x[0] = stream.value(names[0], t)
        for i in range(1, L + 1):
            if i < L:
                d[i] = fp(a[i]) * back[i]
            a[i] = fwd[i - 1] + b[i]
            x[i] = f(a[i])
            if i == L:
                d[i] = fp(a[i]) * (x[i] - stream.value(names[L], t))
            b[i] = b[i] - eta_b * np.atleast_2d(d[i]).mean(axis=0)
    return W, b


def test_diffusion_batch_learning_matches_plain_numpy():
    sizes = [3, 5, 4, 2]
    net = Network.from_graph(layered(sizes), seed=3)
    stream = make_stream("piecewise", n_in=3, n_out=2, input_node="l0", output_node="l3",
                         seed=3, duration=80, hold=4, patterns=6, batch=4)
    eng = Engine(net, Diffusion(eta=0.05, eta_bias=0.03), seed=9, sources=stream.sources())
    eng.run(80)
    W, b = _reference_diffusion(net, stream, 0.05, 0.03, 80, seed=9)
    moved = 0.0
    for i in range(len(sizes) - 1):
        got = eng.state(f"l{i}->l{i + 1}")["weight"]
        assert np.allclose(got, W[i], rtol=1e-10, atol=1e-12)
        moved = max(moved, float(np.abs(got - net.projections[(f"l{i}", f"l{i + 1}")].weight)
                                 .max()))
    for i in range(1, len(sizes)):
        assert np.allclose(eng.state(f"l{i}")["bias"], b[i], rtol=1e-10, atol=1e-12)
    assert moved > 1e-2  # it did learn


@pytest.mark.parametrize("kind", ["diffusion", "leastaction-async", "continuous"])
def test_batch_weight_change_is_the_mean_of_the_samples_gradients(kind):
    """W changes by −rate · (1/B) Σ_b δ_b x_bᵀ of the payloads that reached it."""
    net, stream = _problem(seed=5, duration=50)
    rule = _rule(kind, True)
    eng = Engine(net, rule, seed=5, sources=stream.sources())
    W = {p.name: p.weight.copy() for p in net.projections.values()}
    x = {p.name: np.zeros(p.weight.shape[1]) for p in net.projections.values()}
    d = {p.name: np.zeros(p.weight.shape[0]) for p in net.projections.values()}
    held, last = {}, dict.fromkeys(W, 0)
    seen = {"batched": 0, "updates": 0}

    def mean_outer(dv, xv):
        D, X = np.atleast_2d(dv), np.atleast_2d(xv)
        n = max(len(D), len(X))
        return sum(np.outer(D[j % len(D)], X[j % len(X)]) for j in range(n)) / n

    def sink(batch):
        for m in batch:
            if m.dst in W:
                held.setdefault(m.dst, (x[m.dst], d[m.dst]))
                if m.kind == FORWARD:
                    x[m.dst] = m.payload
                elif m.kind == DELTA:
                    d[m.dst] = m.payload

    def mon(agent, t):
        name = agent.name
        if name not in held:
            return
        x0, d0 = held.pop(name)
        if kind == "continuous":
            step = (t - last[name]) / QUANTA / rule.gamma * mean_outer(d0, x0)
        else:
            step = rule.eta * mean_outer(d[name], x[name])
        last[name] = t
        now = eng.state(name)["weight"]
        assert np.allclose(now, W[name] - step, rtol=1e-12, atol=1e-14), (name, t)
        seen["updates"] += 1
        seen["batched"] += np.ndim(x[name]) == 2
        W[name] = now

    eng.sinks.append(sink)
    eng.monitors.append(mon)
    eng.run(50)
    assert seen["updates"] > 50 and seen["batched"] > 20


def test_per_neuron_agents_give_the_same_batched_numbers():
    net = Network.from_graph(layered([2, 3, 2]), seed=2)
    stream = make_stream("piecewise", n_in=2, n_out=2, input_node="l0", output_node="l2",
                         seed=2, duration=120, hold=4, patterns=5, batch=4)
    rule = Diffusion(eta=0.05, init_state="zero")
    pop = Engine(net, rule, seed=5, sources=stream.sources())
    pop.run(120)
    fine = Network.from_graph(expand_to_neurons(net), seed=0)
    src = {}
    for node in ("l0", "l2"):
        for k in range(2):
            src[f"{node}_{k}"] = (lambda t, n=node, k=k: stream.value(n, t)[..., k:k + 1])
    per = Engine(fine, Diffusion(eta=0.05, init_state="zero"), seed=5, sources=src)
    per.run(120)
    for (u, v) in net.projections:
        Wp = pop.state(f"{u}->{v}")["weight"]
        for i in range(Wp.shape[0]):
            for j in range(Wp.shape[1]):
                w1 = per.state(f"{u}_{j}->{v}_{i}")["weight"][0, 0]
                assert abs(w1 - Wp[i, j]) <= 1e-12
    for name, p in net.populations.items():
        xs = pop.state(name)["state"]
        assert xs.shape == (4, p.size)
        for k in range(p.size):
            assert np.allclose(per.state(f"{name}_{k}")["state"][:, 0], xs[:, k],
                               rtol=0, atol=1e-12)


# -- streams -------------------------------------------------------------------

@pytest.mark.parametrize("order", ["cycle", "shuffle", "random"])
def test_a_batch_shows_consecutive_schedule_entries(order):
    one = make_stream("piecewise", n_in=2, n_out=1, input_node="i", output_node="o",
                      seed=1, duration=30, hold=3, patterns=4, order=order)
    many = make_stream("piecewise", n_in=2, n_out=1, input_node="i", output_node="o",
                       seed=1, duration=30, hold=3, patterns=4, order=order, batch=3)
    assert np.array_equal(many.schedule[:len(one.schedule)], one.schedule)
    assert len(many.schedule) == 3 * len(one.schedule)
    for t in (0.0, 2.9, 3.0, 17.5):
        f = int(t // 3)
        rows = many.schedule[3 * f:3 * f + 3]
        assert np.array_equal(many.value("i", t), one.inputs[rows])
        assert np.array_equal(many.frame_value(t)[1], one.targets[rows])
        assert np.array_equal(one.value("i", t), one.inputs[one.schedule[f]])


def test_xor_full_batch_shows_every_pattern_each_frame():
    s = make_stream("xor", n_in=2, n_out=1, input_node="i", output_node="o", seed=0,
                    duration=40, hold=4, batch=4)
    for t in range(0, 40, 4):
        u = s.value("i", float(t))
        assert u.shape == (4, 2)
        assert sorted(map(tuple, u)) == sorted(map(tuple, s.inputs))


@pytest.mark.parametrize("kw,words", [
    ({"kind": "piecewise", "batch": 0}, "between 1"),
    ({"kind": "xor", "batch": 70_000}, "between 1"),
    ({"kind": "sinusoid", "batch": 2}, "piecewise and xor"),
    ({"kind": "constant", "batch": 2}, "piecewise and xor"),
])
def test_make_stream_refuses_a_bad_batch(kw, words):
    with pytest.raises(DataError, match=words):
        make_stream(n_in=2, n_out=1, input_node="i", output_node="o", seed=0, duration=10,
                    **kw)


# -- scenarios ----------------------------------------------------------------

SCENARIO = """
[scenario]
name = "b"
seed = 3
duration = {duration}
[network]
layers = [2, 4, 1]
[rule]
name = "{rule}"
{params}
[data]
kind = "{kind}"
hold = 8
batch = {batch}
{analysis}
"""


@pytest.fixture(autouse=True)
def _cli_env(monkeypatch):
    """The CLI sets MPLBACKEND for itself when matplotlib is not loaded yet: in-process
    that would leak into later tests (the tutorial notebook's kernel would draw nothing)."""
    monkeypatch.setenv("MPLBACKEND", "agg")


def _cli(tmp_path, *, rule="diffusion", params="eta = 0.05", kind="xor", batch=4,
         duration=400, analysis="", args=("--no-log",)):
    p = tmp_path / "s.toml"
    p.write_text(SCENARIO.format(rule=rule, params=params, kind=kind, batch=batch,
                                 duration=duration, analysis=analysis))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = main(["run", str(p), "-q", *args])
    return rc, out.getvalue(), [ln for ln in err.getvalue().splitlines() if ln.strip()]


@pytest.mark.parametrize("rule,params", [("diffusion", "eta = 0.05"),
                                         ("leastaction", "eta = 0.05"),
                                         ("continuous", "gamma = 5.0")])
def test_batched_scenario_runs_and_counts_every_sample(tmp_path, rule, params):
    import json
    rc, out, err = _cli(tmp_path, rule=rule, params=params, args=("--no-log", "--json"))
    assert rc == 0, err
    res = json.loads(out)["result"]
    assert res["evaluated"] == 4  # one frame of the last epoch, four samples in it
    assert res["loss"] is not None


@pytest.mark.parametrize("change,words", [
    ({"batch": 0}, "between 1"),
    ({"kind": "sinusoid"}, "does not apply to data kind 'sinusoid'"),
    ({"analysis": '[analysis]\nkind = "alignment"'}, "unbatched"),
    ({"rule": "leastaction", "params": "",
      "analysis": '[analysis]\nkind = "alignment"'}, "unbatched"),
])
def test_invalid_batch_is_one_clear_line(tmp_path, change, words):
    rc, _, err = _cli(tmp_path, **{"duration": 40, **change})
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("asyncnet: error: ") and words in err[0]


@dataclass
class NoBatch:
    """A scheme that does not declare ``batched``: it never gets to run here."""

    name: ClassVar[str] = "nobatch"

    def neuron(self, pop, ports, rng):
        raise AssertionError("must not run")

    synapse = neuron


def test_a_rule_without_batches_refuses_them(tmp_path, monkeypatch):
    monkeypatch.setitem(registry._REGISTERED, "nobatch", NoBatch)
    rc, _, err = _cli(tmp_path, rule="nobatch", params="", duration=40)
    assert rc == 2 and len(err) == 1, err
    assert "does not take batched data" in err[0] and "[data]" in err[0]
