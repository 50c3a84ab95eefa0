"""The Python API refuses bad input at the call that takes it, naming what is wrong.

Found by calling ``asyncnet.layered``, ``asyncnet.Scenario`` and
``asyncnet.run`` with what a user new to the API might pass: before, a
negative layer size went through until the run, a list where a graph goes
and a list of agents where a dict of recorded variables goes ended in an
``AttributeError`` from inside, and ``record={"l2": "state"}`` asked for the
variables ``s``, ``t``, ``a`` ...
"""

from __future__ import annotations

import numpy as np
import pytest

import asyncnet
from asyncnet.network import NetworkError


@pytest.mark.parametrize("sizes,words", [
    ([2, -1], "node 'l1': size must be a positive integer, got -1"),
    ([2, 0, 1], "node 'l1': size must be a positive integer, got 0"),
    ([2.5, 1], "node 'l0': size must be a positive integer, got 2.5"),
    ([True, 1], "node 'l0': size must be a positive integer, got True"),
    ([2, "3"], "node 'l1': size must be a positive integer, got '3'"),
])
def test_layered_refuses_a_size_that_is_no_positive_integer(sizes, words):
    with pytest.raises(NetworkError) as e:
        asyncnet.layered(sizes)
    assert words in str(e.value)


def test_layered_takes_numpy_integers_as_plain_ints():
    g = asyncnet.layered(list(np.array([2, 3, 1])))
    assert [type(d["size"]) for _, d in g.nodes(data=True)] == [int, int, int]
    sc = asyncnet.Scenario(g, "diffusion", duration=5)  # its TOML round trip holds ints
    assert [d["size"] for _, d in sc.graph.nodes(data=True)] == [2, 3, 1]


@pytest.mark.parametrize("graph", [[1, 2], {"l0": 2}, "l0->l1", None])
def test_a_scenario_needs_a_directed_graph(graph):
    with pytest.raises(TypeError, match="graph must be a networkx.DiGraph .* got "
                                        + type(graph).__name__):
        asyncnet.Scenario(graph, "diffusion", duration=5)


def _quick() -> asyncnet.Scenario:
    return asyncnet.Scenario(asyncnet.layered([2, 3, 1]), "diffusion", params={"eta": 0.05},
                             data={"kind": "xor", "hold": 8}, duration=16, seed=1)


@pytest.mark.parametrize("record,words", [
    (["l2"], "record must be {agent: [variable, ...]} or a Recorder, got list"),
    ("l2", "record must be {agent: [variable, ...]} or a Recorder, got str"),
    ({"l2": [1]}, "record: 'l2': {agent: [variable, ...]} takes"),
    ({"l2": 3}, "record: 'l2': {agent: [variable, ...]} takes"),
    ({("l2",): ["state"]}, "record: ('l2',):"),
])
def test_record_of_the_wrong_shape_is_named(record, words):
    with pytest.raises(asyncnet.ScenarioError) as e:
        asyncnet.run(_quick(), record=record)
    assert words in str(e.value)


def test_a_recorder_built_by_hand_is_checked_the_same():
    with pytest.raises(asyncnet.ScenarioError, match="got list"):
        asyncnet.run(_quick(), record=asyncnet.Recorder(["l2"]))
    with pytest.raises(asyncnet.ScenarioError, match="period must be a positive number"):
        asyncnet.run(_quick(), record=asyncnet.Recorder({"l2": ["state"]}, period=True))


def test_one_variable_may_be_named_bare():
    bare = asyncnet.run(_quick(), record={"l2": "state", "l1": ("delta",)})
    listed = asyncnet.run(_quick(), record={"l2": ["state"], "l1": ["delta"]})
    assert set(bare.recorded) == {"l1", "l2"}
    assert list(bare.recorded["l2"]) == ["state"] and list(bare.recorded["l1"]) == ["delta"]
    for agent, var in (("l2", "state"), ("l1", "delta")):
        np.testing.assert_array_equal(bare.recorded[agent][var], listed.recorded[agent][var])
    np.testing.assert_array_equal(bare.times, np.arange(1.0, 16.0))  # before the end, 16


@pytest.mark.parametrize("kw,words", [
    ({"progress": "yes"}, "progress must be True, False, None or a function"),
    ({"scenario": 42}, "scenario must be an asyncnet.Scenario or a scenario file's path"),
])
def test_run_names_an_argument_of_the_wrong_type(kw, words):
    """``progress="yes"`` failed at the run's first step ('str' object is not callable)."""
    args = {"scenario": _quick(), **kw}
    with pytest.raises(TypeError) as e:
        asyncnet.run(args.pop("scenario"), **args)
    assert words in str(e.value)


def test_open_log_is_public_and_reads_what_run_wrote(tmp_path):
    import asyncnet
    g = asyncnet.layered([2, 3, 1])
    sc = asyncnet.Scenario(g, "diffusion", params={"eta": 0.05}, seed=1,
                           data={"kind": "xor", "hold": 8}, duration=50)
    res = asyncnet.run(sc, log=str(tmp_path / "x.log"))
    lg = asyncnet.open_log(str(tmp_path / "x.log"))
    lg.scan()
    assert lg.verified and lg.count == res.summary["messages"]["total"] > 0


@pytest.mark.parametrize("kw, msg", [
    (dict(log=3.5), "log must be a path"),
    (dict(save_state=b"x"), "save_state must be a path"),
    (dict(checkpoint_every=10, checkpoint_dir=42), "checkpoint_dir must be a path"),
])
def test_run_names_a_path_argument_that_is_no_path(kw, msg):
    import asyncnet
    sc = asyncnet.Scenario(asyncnet.layered([2, 3, 1]), "diffusion", params={"eta": 0.05},
                           data={"kind": "xor", "hold": 8}, duration=50)
    with pytest.raises(TypeError, match=msg):
        asyncnet.run(sc, **kw)
    with pytest.raises(TypeError, match="resume needs a path"):
        asyncnet.resume(None)


def test_a_period_that_takes_no_sample_is_refused_one_shorter_samples_once():
    import asyncnet
    sc = asyncnet.Scenario(asyncnet.layered([2, 3, 1]), "diffusion", params={"eta": 0.05},
                           data={"kind": "xor", "hold": 8}, duration=50)
    for period in (50, 1e9):
        with pytest.raises(asyncnet.ScenarioError, match="no sample would be taken"):
            asyncnet.run(sc, record={"l1": ["state"]}, period=period)
    res = asyncnet.run(sc, record={"l1": ["state"]}, period=49)  # one sample, at t = 49
    assert res.recorded["l1"]["state"].shape == (1, 3)


def test_a_network_with_no_sink_says_how_to_name_its_output():
    import networkx as nx

    import asyncnet
    g = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "b")])  # every node but a has an out-edge
    nx.set_node_attributes(g, 1, "size")
    with pytest.raises(asyncnet.ScenarioError, match=r'no output population \(every node has an '
                                                     r'outgoing edge: give one role = "output"\)'):
        asyncnet.run(asyncnet.Scenario(g, "continuous", data={"kind": "piecewise", "hold": 5},
                                       duration=20))
    g.nodes["c"]["role"] = "output"
    res = asyncnet.run(asyncnet.Scenario(g, "continuous", data={"kind": "piecewise", "hold": 5},
                                         duration=20))
    assert res.summary["messages"]["total"] > 0


@pytest.mark.parametrize("period", ["x", None, float("nan"), 0])
def test_a_period_that_is_no_positive_number_is_named_before_any_comparison(period):
    import asyncnet
    sc = asyncnet.Scenario(asyncnet.layered([2, 3, 1]), "diffusion", params={"eta": 0.05},
                           data={"kind": "xor", "hold": 8}, duration=50)
    with pytest.raises(asyncnet.ScenarioError, match="period must be a positive number"):
        asyncnet.run(sc, record={"l1": ["state"]}, period=period)
