"""The alignment analysis scores each (layer, frame) while the run goes.

It held every synapse's gradient of every frame until the run's end (a layer of
10⁷ weights ran a 24 GiB box out of memory). Scored as soon as a frame is
complete, it must give the same cosines in the same order, so the same means
to the last bit: checked against the scoring after the run, written here
again, on a DAG whose layers hold synapses of different delays (so a frame
of a layer completes over several instants).
"""

from __future__ import annotations

import math

import numpy as np

import asyncnet
from asyncnet.analysis.alignment import _Frames
from asyncnet.analysis.exactness import synapse_layers
from asyncnet.ids import split_synapse
from asyncnet.messages import QUANTA
from asyncnet.metrics import cosine
from asyncnet.reference import backprop
from asyncnet.simulation import build_engine


def _dag() -> asyncnet.Scenario:
    g = asyncnet.layered([2, 3, 1], activation="tanh")
    g.add_node("b", size=2, activation="tanh", role="hidden")
    g.add_edge("l0", "b", delay=2.5)
    g.add_edge("b", "l2", delay=0.5)
    g.add_edge("l0", "l2", delay=3.0)  # a skip: layer 0 has legs 1, 2.5 and 3
    return asyncnet.Scenario(g, "diffusion", params={"eta": 0.05}, duration=60, seed=3,
                             data={"kind": "piecewise", "hold": 2, "patterns": 3})


def _after_the_run(got: dict, names, refs, stream) -> tuple[dict, dict]:
    """The scoring as it was: every (layer, frame) in the order first seen."""
    cur: dict[int, list[float]] = {}
    wave: dict[int, list[float]] = {}
    for (lay, f), grads in got.items():
        ns = [n for n in names if n in grads]
        g = np.concatenate([grads[n].ravel() for n in ns])
        for store, shown in ((cur, f), (wave, f - lay)):
            r = refs[stream.pattern(shown)]
            c = cosine(g, np.concatenate([r[split_synapse(n)].ravel() for n in ns]))
            if not math.isnan(c):
                store.setdefault(lay, []).append(c)
    return cur, wave


def test_frames_scored_during_the_run_are_the_frames_scored_after_it():
    eng, net, stream = build_engine(_dag())
    layers = synapse_layers(net)
    legs = {p.name: p.legs[0] for p in net.projections.values()}
    assert len({legs[n] for n in layers if layers[n] == 0}) == 3
    refs = [backprop(net, stream.input_map(stream.inputs[i]),
                     stream.target_map(stream.targets[i]))["grad"]
            for i in range(len(stream.inputs))]
    warm = 2.0
    # the reference below scores the wave at f - layer: the lags given so
    frames = _Frames(layers, legs, warm, refs, stream, {lay: float(lay) for lay in layers.values()})
    kept: dict = {}
    held = []

    def keep_all(agent, t):
        if agent.name in layers:
            f = (t - legs[agent.name]) / QUANTA
            if f >= warm:
                kept.setdefault((layers[agent.name], f), {})[agent.name] = agent.model.grad
            held.append(len(frames.got))

    eng.monitors += [frames.monitor, keep_all]
    eng.run(60)
    frames.flush(math.inf)
    cur, wave = _after_the_run(kept, sorted(layers), refs, stream)
    assert frames.cur == cur and frames.wave == wave  # the same floats, the same order
    assert sum(map(len, cur.values())) > 50
    assert max(held) <= 8 and 8 * max(held) < len(kept)  # a few frames held, not the run's
