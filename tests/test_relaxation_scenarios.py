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


def test_latch_stream_closed_form():
    from asyncnet.data import make_stream
    s = make_stream("latch", n_in=1, n_out=1, input_node="i", output_node="o", seed=3,
                    duration=50, hold=2, period=10, target_scale=0.8)
    signs = s.inputs[:, 0]
    assert set(signs) <= {-1.0, 1.0}
    for t, k, on in ((0.0, 0, True), (1.9, 0, True), (2.0, 0, False), (9.9, 0, False),
                     (10.0, 1, True), (25.0, 2, False)):
        assert s.value("i", t)[0] == (signs[k] if on else 0.0)
        assert s.value("o", t)[0] == 0.8 * signs[k]


def test_cycles_learn_the_latch_feedforward_cannot():
    """Online learning on a graph with cycles: the feedback loop holds the memory."""
    cyc = run("continuous_latch")
    ff = run("continuous_latch_ff")
    assert not cyc["network"]["acyclic"] and ff["network"]["acyclic"]
    assert cyc["network"]["neurons"] == ff["network"]["neurons"]
    assert cyc["result"]["loss"] < 0.5 * ff["result"]["loss"]
    assert cyc["result"]["accuracy"] > 0.9 > 0.5 > ff["result"]["accuracy"]


def test_finite_c_through_the_engine_error_falls_like_one_over_c():
    from tools.continuous_c_engine import tracking_error
    e5, e20 = tracking_error(5.0), tracking_error(20.0)
    assert e5["probes"] == e20["probes"] == 80
    assert 2.5 < e5["relative_error"] / e20["relative_error"] < 4.5
    assert e20["relative_error"] < 0.15
