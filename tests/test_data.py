"""Data streams against their closed forms, and what the sources deliver."""

import math

import numpy as np
import pytest

from asyncnet.data import XOR_INPUTS, DataError, make_stream
from asyncnet.engine import Engine
from asyncnet.messages import CONTROL, QUANTA
from asyncnet.network import Network, layered
from asyncnet.rules.diffusion import Diffusion


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
