"""Data streams against their closed forms, and what the sources deliver."""

import math

import numpy as np
import pytest

from asyncnet.data import XOR_INPUTS, DataError, make_stream
from asyncnet.engine import Engine
from asyncnet.messages import CONTROL, QUANTA
from asyncnet.network import Network, layered
from asyncnet.schemes.diffusion import Diffusion


def test_piecewise_holds_each_pattern_k_ticks():
    s = make_stream("piecewise", n_in=3, n_out=2, input_node="a", output_node="b", seed=4,
                    duration=100, hold=7, patterns=5, order="cycle")
    for t in range(100):
        assert np.array_equal(s.value("a", t), s.inputs[(t // 7) % 5])
        assert np.array_equal(s.value("b", t + 0.5), s.targets[(t // 7) % 5])


def test_shuffle_shows_every_pattern_once_per_epoch():
    s = make_stream("xor", n_in=2, n_out=1, input_node="a", output_node="b", seed=9,
                    duration=400, hold=1)
    for e in range(100):
        assert sorted(s.schedule[4 * e:4 * e + 4]) == [0, 1, 2, 3]
    # and it is a shuffle: the epochs do not all repeat one order
    assert len({tuple(s.schedule[4 * e:4 * e + 4]) for e in range(100)}) > 5
    for t in (0.0, 1.0, 7.5, 399.0):  # hold 1: frame t shows schedule[floor(t)]
        assert np.array_equal(s.value("a", t), XOR_INPUTS[s.schedule[int(t)]])
    assert np.array_equal(s.inputs, XOR_INPUTS)


def test_sinusoid_closed_form():
    s = make_stream("sinusoid", n_in=2, n_out=1, input_node="a", output_node="b", seed=0,
                    duration=50, period=20.0)
    for t in (0.0, 3.0, 17.5):
        assert np.allclose(s.value("a", t), [math.sin(2 * math.pi * t / 20),
                                             math.sin(2 * math.pi * t / 20 + math.pi)])


def test_bad_streams():
    with pytest.raises(DataError, match="hold"):
        make_stream("piecewise", n_in=1, n_out=1, input_node="a", output_node="b", seed=0,
                    duration=10, hold=0)
    with pytest.raises(DataError, match="unknown data kind"):
        make_stream("zigzag", n_in=1, n_out=1, input_node="a", output_node="b", seed=0,
                    duration=10)


def test_sources_deliver_value_at_arrival_every_unit():
    net = Network.from_graph(layered([2, 2, 1]), seed=0)
    s = make_stream("piecewise", n_in=2, n_out=1, input_node="l0", output_node="l2",
                    seed=1, duration=30, hold=3, patterns=4)
    eng = Engine(net, Diffusion(), seed=0, sources=s.sources())
    got = []
    eng.sinks.append(lambda b: got.extend(m for m in b if m.kind == CONTROL))
    eng.run(20)
    to_l0 = [m for m in got if m.dst == "l0"]
    assert [m.t_arrive // QUANTA for m in to_l0] == list(range(1, 20))
    for m in to_l0:  # hold 3: the value shown at arrival is schedule[floor(t / 3)]
        t = m.t_arrive // QUANTA
        assert np.array_equal(m.payload, s.inputs[s.schedule[t // 3]])
    assert len({m.payload.tobytes() for m in to_l0}) > 1  # the input really changes


def test_nudge_stream_schedule_closed_form():
    """Energy-rule teacher: per window, m = 0 while settling, −1 on the first leg
    (symmetric), +1 on the last, 0 while releasing; batches cover every
    training pattern once per epoch; the linear task is y = A x."""
    from asyncnet.nudge import NudgeStream, load_dataset
    d = load_dataset("linear", n_in=3, n_out=2, seed=5, patterns=12)
    A = np.linalg.lstsq(d.inputs, d.targets, rcond=None)[0].T
    assert np.allclose(d.test_inputs @ A.T, d.test_targets, atol=1e-12)
    assert np.all(A >= -1e-12) and np.all((A.sum(1) > 0.5 - 1e-12) & (A.sum(1) < 0.8 + 1e-12))
    s = NudgeStream("linear", d, "in", "out", batch=4, settle=10, leg=5, sides=2, seed=1,
                    duration=300, release=2)
    assert s.hold == 22
    for w in (0, 3):
        t0 = 22 * w
        for off, m in ((0, 0.0), (9.5, 0.0), (10, -1.0), (14.5, -1.0), (15, 1.0),
                       (19.5, 1.0), (20, 0.0), (21.5, 0.0)):
            assert s.multiplier(t0 + off) == m, (w, off)
            v = s.value("out", t0 + off)
            assert v[0] == m and np.array_equal(v[1:], d.targets[s.rows(w)].ravel())
    for e in range(4):  # 12 patterns, batches of 4: epochs of 3 windows
        rows = np.concatenate([s.rows(3 * e + k) for k in range(3)])
        assert sorted(rows) == list(range(12))
    assert len({tuple(s.rows(3 * e)) for e in range(4)}) > 1  # reshuffled


@pytest.mark.parametrize("kind,keys,words", [
    ("latch", {"period": 2.0, "hold": 1.0}, "latch: pulses (duration / period): 10,002 rows"),
    ("piecewise", {"patterns": 10_000, "hold": 1.0}, "piecewise: patterns: 10,000 rows"),
])
def test_a_table_of_patterns_larger_than_memory_is_refused(kind, keys, words, monkeypatch):
    """A latch over 10⁷ inputs made a 12 GiB table before anything ran (numpy's
    MemoryError, a traceback); the machine's memory is fixed here at 1 GiB."""
    from asyncnet.data import DataError, make_stream
    monkeypatch.setattr("asyncnet.data.machine_memory", lambda: 1 << 30)
    with pytest.raises(DataError) as e:
        make_stream(kind, n_in=10_000, n_out=1, input_node="in", output_node="out",
                    duration=20_000.0, seed=0, **keys)
    assert words in str(e.value)
