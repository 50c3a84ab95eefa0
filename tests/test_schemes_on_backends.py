"""Every scheme's headline behaviour, through the public API, on every backend.

The figures are checked against independent references computed inside the
analyses (plain-numpy backprop, Almeida–Pineda solves, implicit
differentiation of the numpy faces) and against a plain numpy computation
here where one is short; the in-process and cluster runs must also agree
byte for byte on the log.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import asyncnet
from asyncnet.reference import backprop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def scenario(name: str) -> asyncnet.Scenario:
    return asyncnet.Scenario.from_toml(os.path.join(ROOT, "scenarios", name + ".toml"))


@pytest.mark.parametrize("name", ["diffusion_exact", "leastaction_exact"])
def test_exact_gradient_at_2L(backend, name, tmp_path):
    res = backend(scenario(name), log=str(tmp_path / "x.log"))
    ex = res.summary["exactness"]
    assert ex["exact"] and ex["max_error_from_2L"] <= 1e-12
    # and not before: layer 0 is still off at t = 2L - 1
    row0 = [r for r in ex["layers"] if r["layer"] == 0][0]
    assert row0["error_at_2L_minus_1"] > 1e-6


def test_final_synapse_gradient_is_backprop(backend):
    # the saved state alone: grad of every synapse = plain numpy backprop
    sc = scenario("diffusion_exact")
    res = backend(sc)
    net = sc.build_network()
    stream = sc.build_stream(net)
    u, y = stream.frame_value(0.0)
    ref = backprop(net, stream.input_map(u), stream.target_map(y))["grad"]
    for (pre, post), g in ref.items():
        np.testing.assert_allclose(res.state(f"{pre}->{post}")["grad"], g, rtol=1e-10,
                                   atol=1e-13)


def test_continuous_settles_to_almeida_pineda(backend):
    s = backend(scenario("continuous_cyclic")).summary["settling"]
    assert s["final_error"] <= 1e-10 and not s["acyclic"]


@pytest.mark.parametrize("name", ["ep_gradient", "coupled_gradient"])
def test_energy_estimates_match_implicit_differentiation(backend, name):
    rows = backend(scenario(name)).summary["gradient"]
    assert rows[0]["cosine"] > 0.999 and rows[0]["free_state_error"] < 1e-8


def test_xor_learns(backend, tmp_path):
    res = backend(scenario("quickstart"), log=str(tmp_path / "q.log"))
    assert res.summary["result"]["accuracy"] == 1.0
    assert res.summary["locality"]["share"] == 1.0


def test_backends_write_the_same_log(backend, tmp_path):
    if backend.workers == 1:
        pytest.skip("the in-process run is the reference")
    sc = scenario("leastaction_async")
    rec = {"h1": ["state"], "h0->h1": ["weight", "grad"]}
    a = asyncnet.run(sc, log=str(tmp_path / "a.log"), record=rec, period=2)
    b = backend(sc, log=str(tmp_path / "b.log"), record=rec, period=2)
    assert (tmp_path / "a.log").read_bytes() == (tmp_path / "b.log").read_bytes()
    assert a.summary["settling"] == b.summary["settling"]
    for agent, variables in rec.items():
        for v in variables:
            np.testing.assert_array_equal(a.recorded[agent][v], b.recorded[agent][v])
