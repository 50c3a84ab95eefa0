"""The issue-3 scenarios run as they are and their summaries say what they claim.

The numbers are measured against the independent references built into the
analyses (plain backprop; Newton + linear-solve Almeida–Pineda) — those
references are themselves checked in test_continuous_engine.py and against
tests/npref.py here.
"""

import os

import numpy as np
import pytest

from asyncnet.reference import backprop
from asyncnet.scenario import load
from asyncnet.simulation import simulate

from . import npref

SCEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scenarios")


def run(name):
    return simulate(load(os.path.join(SCEN, f"{name}.toml")))


@pytest.mark.parametrize("name", ["leastaction_exact", "leastaction_dag"])
def test_sync_scenarios_exact_at_2L_not_before(name):
    s = run(name)
    ex = s["exactness"]
    assert ex["exact"] and ex["max_error_from_2L"] <= 1e-12
    first = ex["layers"][0]
    assert first["exact_from_frame"] == 2 * ex["depth"]
    assert first["error_at_2L_minus_1"] > 1e-9


def test_async_scenario_exact_after_finite_firings():
    s = run("leastaction_async")["settling"]
    assert s["reference"] == "backprop"
    assert s["exact_from"] is not None and s["final_error"] <= 1e-12
    assert 0 < s["firings_to_exact"] < s["total_firings"]
    assert s["messages_to_exact"] < s["total_messages"]


def test_rate_scenario_matches_prediction():
    s = run("leastaction_rate")["settling"]
    assert s["predicted_rate"] == pytest.approx(-np.log(0.5))
    assert s["measured_rate_poly"] == pytest.approx(s["predicted_rate"], rel=0.03)


@pytest.mark.parametrize("name", ["continuous_dag", "continuous_cyclic"])
def test_continuous_scenarios_settle_on_the_reference(name):
    s = run(name)["settling"]
    assert s["exact_from"] is not None and s["final_error"] <= 1e-12
    assert s["acyclic"] == (name == "continuous_dag")


def test_settling_reference_is_plain_backprop_on_a_dag():
    """The analysis' DAG reference (asyncnet.reference) agrees with tests/npref.py."""
    sc = load(os.path.join(SCEN, "leastaction_dag.toml"))
    net = sc.build_network()
    stream = sc.build_stream(net)
    u, y = stream.frame_value(0.0)
    got = backprop(net, {"in": u}, {"out": y})["grad"]
    order, parents, W, b, act = npref.from_network(net)
    ref = npref.grads(order, parents, W, b, act, {"in": u}, {"out": y})
    for k, r in ref.items():
        assert np.allclose(got[k], r, rtol=0, atol=1e-14)


@pytest.mark.parametrize("name", ["waves_constant", "waves_slow", "waves_fast"])
def test_wave_scenarios_run(name):
    s = run(name)
    if name == "waves_constant":
        assert s["exactness"]["exact"]
    else:
        row = s["alignment"]["rows"][0]
        mean = float(np.mean(list(row["current"].values())))
        if name == "waves_slow":
            assert mean > 0.6
        else:
            assert abs(mean) < 0.2
