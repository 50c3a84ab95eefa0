"""Weights and biases change in place: same numbers, nothing sent is ever changed.

- the diffusion engine run equals the delay model written in plain in-place
  numpy (``tools/bench_populations.py``'s reference, which shares no code
  with the rule) bit for bit;
- every payload, once sent, keeps its bits to the end of the run (receivers
  and the log hold on to them), and ``state()`` hands out values that later
  learning does not change.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from asyncnet.data import make_stream
from asyncnet.engine import Engine
from asyncnet.network import Network, layered
from asyncnet.schemes.batching import outer
from asyncnet.schemes.continuous import Continuous
from asyncnet.schemes.diffusion import Diffusion
from asyncnet.schemes.leastaction import LeastAction

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import bench_populations  # noqa: E402


@pytest.mark.parametrize("width,depth", [(3, 3), (8, 4)])
def test_diffusion_equals_plain_inplace_numpy_bit_for_bit(width, depth):
    net, stream = bench_populations.setup(width, depth, 60)
    _, got = bench_populations.engine_run(net, stream, 0.05, 60)
    _, want = bench_populations.reference(net, stream, 0.05, 60)
    for name, W in want.items():
        assert np.array_equal(got[name], W), name
        pre, post = name.split("->")
        assert np.abs(W - net.projections[(pre, post)].weight).max() > 1e-3  # it learned


@pytest.mark.parametrize("rule", [Diffusion(eta=0.05, eta_bias=0.05),
                                  LeastAction(mode="async", eta=0.05, period=0.7),
                                  Continuous(c=2.0, h=0.3, jitter=0.2, gamma=3.0)],
                         ids=["diffusion", "leastaction", "continuous"])
@pytest.mark.parametrize("batch", [1, 3])
def test_nothing_sent_or_handed_out_changes_afterwards(rule, batch):
    net = Network.from_graph(layered([2, 4, 3, 2]), seed=1)
    stream = make_stream("piecewise", n_in=2, n_out=2, input_node="l0", output_node="l3",
                         seed=1, duration=40, hold=3, patterns=4, batch=batch)
    eng = Engine(net, rule, seed=2, sources=stream.sources())
    sent = []
    eng.sinks.append(lambda b: sent.extend((m.payload, np.array(m.payload)) for m in b))
    states = []

    def probe(engine, t):
        for name in engine.names:
            if not name.startswith("src:"):
                st = engine.state(name)
                states.append((st, {k: np.array(v) for k, v in st.items()}))

    for t in (5.25, 20.25):
        eng.at(t, probe)
    eng.run(40)
    assert len(sent) > 300 and states
    for ref, copy in sent:
        assert np.array_equal(np.asarray(ref), copy)
    for st, copy in states:
        for k, v in st.items():
            assert np.array_equal(np.asarray(v), copy[k]), k
    W0 = net.projections[("l0", "l1")].weight
    assert np.abs(eng.state("l0->l1")["weight"] - W0).max() > 1e-4  # it learned


def test_outer_product_has_the_bits_of_the_broadcast_product():
    """Signs of zeros included: W - η·(-0.0) and W - η·(+0.0) differ where W is -0.0."""
    rng = np.random.default_rng(3)
    d, x = rng.standard_normal(37), rng.standard_normal(29)
    d[::5], x[::4], d[2] = 0.0, -0.0, -0.0
    want = d[:, None] * x[None, :]
    for got in (outer(d, x), outer(d, x, out=np.full((37, 29), 7.0))):
        assert np.array_equal(got, want)
        assert np.array_equal(np.signbit(got), np.signbit(want))
    assert np.signbit(want[want == 0]).any() and not np.signbit(want[want == 0]).all()


def test_one_neuron_synapse_gives_the_bits_of_plain_numpy():
    """Diffusion's 1 x 1 synapse works on Python floats: its relays and steps
    are those of numpy's matrix–vector product and in-place step, written out
    here in numpy (special values, signed zeros and batched payloads too)."""
    from asyncnet.messages import DELTA, FORWARD, Message
    from asyncnet.network import Projection
    from asyncnet.schemes.diffusion import OneSynapse
    rng = np.random.default_rng(11)
    special = [0.0, -0.0, 1e-310, -1e-310, 1e300, -1e300, np.inf, -np.inf, 0.5, -3.0]
    values = list(rng.standard_normal(40)) + special
    rule = Diffusion(eta=0.03)
    for k in range(400):
        w0 = float(values[k % len(values)])
        x = np.array([values[(7 * k + 1) % len(values)]])
        d = np.array([values[(13 * k + 5) % len(values)]])
        syn = rule.synapse(Projection("a", "b", np.array([[w0]]), 2), None, None)
        assert type(syn) is OneSynapse
        with np.errstate(all="ignore"):
            out = syn.react(1.0, [Message(FORWARD, "a", "s", 0, 1, 1, x),
                                  Message(DELTA, "b", "s", 0, 1, 1, d)])
            W = np.array([[w0]])
            want_f, want_d = W @ x, W.T @ d
            g = np.empty((1, 1))
            g[...] = x
            np.multiply(g, d[:, None], out=g)
            np.multiply(g, 0.03, out=g)
            np.subtract(W, g, out=W)
        assert [(p, kd) for p, kd, _ in out] == [("out", FORWARD), ("in", DELTA)]
        assert out[0][2].tobytes() == want_f.tobytes() and out[0][2].shape == (1,)
        assert out[1][2].tobytes() == want_d.tobytes()
        assert syn.W.tobytes() == W.tobytes()
    # a batch of samples goes the array path: one row per sample, the mean step
    syn = rule.synapse(Projection("a", "b", np.array([[0.7]]), 2), None, None)
    xb, db = np.array([[1.0], [2.0]]), np.array([[0.5], [-1.0]])
    out = syn.react(1.0, [Message(FORWARD, "a", "s", 0, 1, 1, xb),
                          Message(DELTA, "b", "s", 0, 1, 1, db)])
    assert np.array_equal(out[0][2], 0.7 * xb) and np.array_equal(out[1][2], 0.7 * db)
    assert syn.W[0, 0] == 0.7 - 0.03 * ((0.5 * 1.0 + -1.0 * 2.0) / 2)


def test_one_neuron_sum_gives_the_bits_of_the_array_sum():
    """A single neuron sums its contributions on floats: the same bits as
    numpy adding the arrays in the same order (signed zeros, infinities, and
    a batched contribution falling back to arrays)."""
    from asyncnet.schemes.diffusion import sum_in_order, sum_one
    rng = np.random.default_rng(5)
    special = [0.0, -0.0, 1e-310, 1e308, -1e308, np.inf, 3.0, -3.0]
    for k in range(300):
        n = 1 + k % 9
        vals = [float(v) for v in rng.standard_normal(n) * 10.0 ** rng.integers(-5, 5, n)]
        for j in range(n):
            if rng.random() < 0.3:
                vals[j] = special[rng.integers(len(special))]
        d = {f"s{j}": np.array([v]) for j, v in enumerate(vals)}
        names = list(d)
        with np.errstate(all="ignore"):
            want = d[names[0]]
            for nm in names[1:]:
                want = want + d[nm]  # numpy, in order: the reference
            ref = sum_in_order(d, names)
            got = sum_one(d, names)
        assert got.shape == (1,) and got.tobytes() == want.tobytes()
        assert np.array_equal(ref, want, equal_nan=True)
    d = {"a": np.array([1.0]), "b": np.array([[2.0], [3.0]])}  # a batch of 2
    assert sum_one(d, ["a", "b"]).tolist() == [[3.0], [4.0]]


def test_one_neuron_sum_of_kept_floats_and_arrays_gives_the_array_bits():
    """What a single neuron keeps (Python floats; arrays where a batch came, or
    from a checkpoint of older code) sums to the bits numpy gives the arrays."""
    from asyncnet.schemes.diffusion import sum_one
    rng = np.random.default_rng(9)
    special = [0.0, -0.0, 1e-310, 1e308, -1e308, np.inf, -np.inf, 2.5]
    for k in range(400):
        n = 1 + k % 7
        vals = [float(v) for v in rng.standard_normal(n) * 10.0 ** rng.integers(-4, 4, n)]
        for j in range(n):
            if rng.random() < 0.3:
                vals[j] = special[rng.integers(len(special))]
        arrays = [np.array([v]) for v in vals]
        if k % 5 == 0:  # a batch of 3 at one place: the rest of the sum is arrays
            arrays[k % n] = rng.standard_normal((3, 1))
        kept = {f"s{j}": (a if a.ndim == 2 or rng.random() < 0.3 else a.item())
                for j, a in enumerate(arrays)}
        with np.errstate(all="ignore"):
            want = arrays[0]
            for a in arrays[1:]:
                want = want + a  # numpy on the arrays, in order: the reference
            got = sum_one(kept, list(kept))
        assert got.shape == want.shape and got.tobytes() == want.tobytes()


def test_a_single_neuron_keeps_no_payload_it_was_sent():
    """A per-neuron net's neuron keeps its synapses' values as floats: the arrays
    that brought them die once delivered (two a synapse agent, ≈ 170 B resident
    each), and the run's numbers are the population net's (test_batch checks
    them); a population keeps the arrays it was sent (read-only, never copied)."""
    import weakref

    from asyncnet.messages import DELTA, FORWARD, Message
    from asyncnet.network import Population
    from asyncnet.schemes.diffusion import Neuron

    class Ports:
        inputs, outputs = ("s0", "s1"), ("s2",)

    rule = Diffusion(eta=0.1)
    for size in (1, 3):
        pop = Population("h", size, "tanh", "hidden", np.zeros(size))
        neuron = Neuron(rule, pop, Ports(), np.random.default_rng(0))
        sent = [np.full(size, 0.5), np.full(size, -0.25), np.full(size, 2.0)]
        refs = [weakref.ref(a) for a in sent]
        batch = [Message(FORWARD, "s0", "h", 0, 1, 1, sent[0]),
                 Message(FORWARD, "s1", "h", 0, 1, 1, sent[1]),
                 Message(DELTA, "s2", "h", 0, 1, 1, sent[2])]
        x0 = neuron.x.copy()  # the delta meets the activity before this instant's
        out = neuron.react(1.0, batch)
        del batch, sent
        alive = [r() is not None for r in refs]
        assert alive == ([False] * 3 if size == 1 else [True] * 3)
        np.testing.assert_array_equal(neuron.a, np.full(size, 0.25))
        np.testing.assert_allclose(neuron.delta, (1 - x0 ** 2) * 2.0, rtol=1e-15)
        assert [kind for _, kind, _ in out] == [FORWARD, DELTA]
