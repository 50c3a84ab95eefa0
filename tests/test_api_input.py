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


@pytest.mark.parametrize("period", ["x", float("nan"), 0])  # None: the default, 1
def test_a_period_that_is_no_positive_number_is_named_before_any_comparison(period):
    import asyncnet
    sc = asyncnet.Scenario(asyncnet.layered([2, 3, 1]), "diffusion", params={"eta": 0.05},
                           data={"kind": "xor", "hold": 8}, duration=50)
    with pytest.raises(asyncnet.ScenarioError, match="period must be a positive number"):
        asyncnet.run(sc, record={"l1": ["state"]}, period=period)


@pytest.mark.parametrize("kw, words", [
    ({"rule": None}, "rule must be a rule name (asyncnet.known() lists them), got NoneType "
                     "None"),
    ({"params": [1]}, "params must be a dict (the [rule] table), got list [1]"),
    ({"data": "xor"}, "data must be a dict (the [data] table), got str 'xor'"),
    ({"seed": None}, "seed must be an integer, got NoneType None"),
    ({"seed": True}, "seed must be an integer, got bool True"),
    ({"name": 3}, "name must be a string, got int 3"),
])
def test_a_scenario_argument_of_the_wrong_kind_is_named(kw, words):
    """A list as params was dict()'s TypeError; rule=None and seed=None the TOML
    writer's 'Object of type NoneType is not TOML serializable'."""
    args = {"rule": "diffusion", "duration": 5, **kw}
    with pytest.raises(TypeError) as e:
        asyncnet.Scenario(asyncnet.layered([2, 3, 1]), args.pop("rule"), **args)
    assert str(e.value) == words


def test_numpy_numbers_are_plain_numbers_in_a_scenario():
    """A numpy integer seed was refused as 'not TOML serializable'."""
    g = asyncnet.layered([2, 3, 1])
    a = asyncnet.Scenario(g, "diffusion", duration=np.float64(12.0), seed=np.int64(3),
                          params={"eta": np.float32(0.25)}, data={"kind": "xor"})
    b = asyncnet.Scenario(g, "diffusion", duration=12.0, seed=3, params={"eta": 0.25},
                          data={"kind": "xor"})
    assert a.text == b.text and a.seed == 3


@pytest.mark.parametrize("kw, where", [({"params": {"eta": None}}, "[rule] eta = None"),
                                       ({"params": {"eta": [1.0, None]}}, "[rule] eta[1] = None"),
                                       ({"data": {"kind": "xor", "hold": object()}},
                                        "[data] hold = <object")])
def test_a_value_no_scenario_file_can_hold_is_named_where_it_is(kw, where):
    with pytest.raises(asyncnet.ScenarioError) as e:
        asyncnet.Scenario(asyncnet.layered([2, 3, 1]), "diffusion", duration=5, **kw)
    assert where in str(e.value) and "not a value a scenario file can hold" in str(e.value)


def test_a_node_with_no_projection_is_named():
    """It became a second input population: the run then said the xor patterns have 2
    values but 'the input layer' has size 4."""
    g = asyncnet.layered([2, 3, 1])
    g.add_node("lonely", size=2)
    with pytest.raises(asyncnet.ScenarioError, match="node 'lonely': no projection in or out"):
        asyncnet.run(asyncnet.Scenario(g, "diffusion", duration=5, data={"kind": "xor"}))


def test_outputs_that_cannot_be_written_stop_the_run_before_it_starts(tmp_path):
    """``log=`` a directory failed at the first write ('after 0 records ... readable up to
    its last whole record'); a saved state in a missing directory at the end of the run."""
    sc = _quick()
    with pytest.raises(ValueError, match=f"{tmp_path}: is a directory"):
        asyncnet.run(sc, log=str(tmp_path))
    missing = tmp_path / "no" / "s.npz"
    with pytest.raises(ValueError, match=f"directory {tmp_path / 'no'} does not exist"):
        asyncnet.run(sc, save_state=str(missing))


def test_resume_and_open_log_name_an_argument_of_the_wrong_kind(tmp_path):
    """``resume(workers=0)`` ran in this process; ``open_log(3)`` was os.fspath's
    message."""
    log = str(tmp_path / "a.log")
    asyncnet.run(_quick(), log=log, checkpoint_every=8)
    with pytest.raises(asyncnet.ScenarioError, match="workers must be a positive integer, "
                                                     "got 0"):
        asyncnet.resume(log, workers=0)
    with pytest.raises(TypeError, match="an event log's path must be a str or os.PathLike, "
                                        "got int 3"):
        asyncnet.open_log(3)


def test_a_scenario_changed_after_it_was_made_logs_what_runs(tmp_path):
    """``with_params`` (and ``sc.seed = 2``) ran the new values but logged the old text:
    ``replay --verify`` then diverged, and the header's seed disagreed with the text."""
    from asyncnet.replay import verify
    sc = _quick()
    log = str(tmp_path / "wp.log")
    asyncnet.run(sc.with_params(eta=0.0), log=log)
    assert "eta = 0.0" in asyncnet.open_log(log).scenario_text
    assert verify(log)["identical"]
    sc.seed, sc.duration = 2, 10.0
    log2 = str(tmp_path / "s2.log")
    asyncnet.run(sc, log=log2, workers=2)
    lg = asyncnet.open_log(log2)
    assert lg.header["seed"] == 2 and "seed = 2" in lg.scenario_text and verify(log2)["identical"]


def test_numpy_values_run_checkpoint_and_summarise_as_plain_numbers(tmp_path):
    """An np.int64 seed crashed the checkpoint's msgpack; an np.float32 eta was refused
    as 'must be a finite number'; the summary's seed broke json.dumps."""
    import json
    sc = asyncnet.Scenario(asyncnet.layered([2, 3, 1]), "diffusion", duration=20,
                           seed=np.int64(3), params={"eta": np.float32(0.25)},
                           data={"kind": "xor"})
    assert type(sc.seed) is int and type(sc.rule_params["eta"]) is float
    r = asyncnet.run(sc, log=str(tmp_path / "n.log"), checkpoint_every=5)
    json.dumps(r.summary)


def test_a_recorder_samples_each_variable_once_and_starts_empty_each_run():
    """``["state", "state"]`` gave two rows a sample time; a Recorder used for a second
    run appended that run's samples after the first's."""
    sc = _quick()
    r = asyncnet.run(sc, record={"l1": ["state", "state"]}, period=5)
    assert r.recorded["l1"]["state"].shape == (len(r.times), 3)
    rec = asyncnet.Recorder({"l1": ["state"]}, period=5)
    a, b = asyncnet.run(sc, record=rec), asyncnet.run(sc, record=rec)
    assert list(b.times) == list(a.times) == [5, 10, 15]
    assert np.array_equal(a.recorded["l1"]["state"], b.recorded["l1"]["state"])


@pytest.mark.parametrize("kw, words", [
    ({"period": 1e-7}, "period 1e-07 is below the time resolution"),
    ({"period": 15.9999999}, "is not shorter than the run (16): no sample would be taken"),
    ({"period": 5, "start": float("nan")}, "start must be a time at or after 0, got nan"),
    ({"period": 5, "start": "1"}, "start must be a time at or after 0, got '1'"),
    ({"period": 5, "start": -3}, "start must be a time at or after 0, got -3"),
])
def test_recorder_times_the_engine_cannot_take_are_named(kw, words):
    """A period below a quantum scheduled a probe per 1e-7 (a near-hang); one that rounds
    to the end took no sample and said nothing; a bad start was a bare ValueError or
    TypeError from inside."""
    with pytest.raises(asyncnet.ScenarioError) as e:
        asyncnet.run(_quick(), record=asyncnet.Recorder({"l1": ["state"]}, **kw))
    assert words in str(e.value)


def test_numpy_numbers_as_period_and_workers_are_numbers():
    sc = _quick()
    a = asyncnet.run(sc, record={"l1": ["state"]}, period=np.float32(2.5), workers=np.int64(1))
    b = asyncnet.run(sc, record={"l1": ["state"]}, period=2.5)
    assert np.array_equal(a.times, b.times) and np.array_equal(a.recorded["l1"]["state"],
                                                                b.recorded["l1"]["state"])


def test_api_edges_from_a_qa_pass(tmp_path):
    """Each was a traceback from inside, a silent rewrite, or a path outside runs/."""
    import networkx as nx
    g = asyncnet.layered([2, 3, 1])
    with pytest.raises(TypeError, match="params: 'name' picks the scheme: give it as rule="):
        asyncnet.Scenario(g, "diffusion", duration=5, params={"name": "ep"})
    with pytest.raises(asyncnet.ScenarioError, match="name '../esc' must be a plain file name"):
        asyncnet.Scenario(g, "diffusion", duration=5, name="../esc")
    with pytest.raises(TypeError, match="expand_to_neurons takes a built Network"):
        asyncnet.expand_to_neurons(g)
    with pytest.raises(asyncnet.ScenarioError, match="restart_workers must be an integer"):
        asyncnet.run(_quick(), restart_workers=-1)
    ints = nx.DiGraph()  # int names: the degree of "0" was looked up, not of 0
    ints.add_nodes_from([(0, {"size": 2}), (1, {"size": 3}), (2, {"size": 1})])
    ints.add_edges_from([(0, 1), (1, 2)])
    net = asyncnet.Network.from_graph(ints)
    assert [p.role for p in net.populations.values()] == ["input", "hidden", "output"]
    r = asyncnet.run(_quick(), save_state=str(tmp_path / "st"))
    assert r.summary["state"] == str(tmp_path / "st.npz") and (tmp_path / "st.npz").exists()


def test_a_message_of_a_kind_no_one_knows_is_named_at_its_receiver():
    """A model emitting kind 7 was an IndexError inside the engine's counter."""
    from asyncnet.engine import Engine
    from asyncnet.schemes.diffusion import Diffusion

    class Seven:  # a neuron whose sends are all of kind 7
        def __init__(self, model):
            self.model = model

        def react(self, t, batch):
            return [(p, 7, x) for p, _, x in (self.model.react(t, batch) or [])]

        def state(self):
            return self.model.state()

        def __getattr__(self, key):
            return getattr(self.model, key)

    class Odd(Diffusion):
        def neuron(self, pop, ports, rng):
            return Seven(super().neuron(pop, ports, rng))

    net = asyncnet.Network.from_graph(asyncnet.layered([2, 3, 1]))
    src = {"l0": lambda t: np.ones(2), "l2": lambda t: np.zeros(1)}
    eng = Engine(net, Odd(eta=0.1), seed=1, sources=src)
    with pytest.raises(ValueError, match="a message of unknown kind 7 from "):
        eng.run(20)


def test_an_edge_with_a_delay_and_a_length_is_refused():
    """The delay won silently over the length and speed given beside it."""
    g = asyncnet.layered([2, 3, 1])
    g.edges["l0", "l1"].update(delay=1.0, length=5.0, speed=2.0)
    with pytest.raises(asyncnet.ScenarioError, match="edge l0->l1: give a delay, or a length"):
        asyncnet.run(asyncnet.Scenario(g, "diffusion", duration=5, data={"kind": "xor"}))


def test_a_text_given_must_describe_the_scenario_it_comes_with(tmp_path):
    """``Scenario(..., text=...)`` kept any text unchecked: the log embedded it, and
    replay re-ran something else (or failed on text that was no scenario)."""
    kw = dict(params={"eta": 0.05}, seed=1, data={"kind": "xor", "hold": 8}, duration=50)
    g = asyncnet.layered([2, 4, 1])
    sc = asyncnet.Scenario(g, "diffusion", **kw)
    commented = "# the XOR net\n" + sc.text
    same = asyncnet.Scenario(asyncnet.layered([2, 4, 1]), "diffusion", **kw, text=commented)
    assert same.text == commented  # kept as given when it says the same
    log = str(tmp_path / "a.log")
    asyncnet.run(same, log=log)
    assert asyncnet.open_log(log).scenario_text == commented
    wider = asyncnet.Scenario(asyncnet.layered([2, 5, 1]), "diffusion", **kw).text
    heavier = asyncnet.Scenario(asyncnet.layered([2, 4, 1], delay=2.0), "diffusion", **kw).text
    for text in (sc.text.replace("seed = 1", "seed = 2"), wider, heavier):
        with pytest.raises(asyncnet.ScenarioError, match="describes another scenario"):
            asyncnet.Scenario(g, "diffusion", **kw, text=text)
    for text, words in (("x = [", "not valid TOML"), ("", "missing section")):
        with pytest.raises(asyncnet.ScenarioError, match=words):
            asyncnet.Scenario(g, "diffusion", **kw, text=text)


# -- from a QA pass of the Python API on 5 December --------------------------------------


@pytest.mark.parametrize("sizes,words", [(3, "got int 3"), ("23", "got str '23'"),
                                         ({2: 3}, "got dict")])
def test_layered_refuses_sizes_that_are_no_list(sizes, words):
    with pytest.raises(NetworkError, match="layered takes a list of layer sizes") as e:
        asyncnet.layered(sizes)
    assert words in str(e.value)


@pytest.mark.parametrize("scale", [-1, -0.5])
def test_a_negative_weight_scale_is_named_with_its_edge(scale):
    with pytest.raises(asyncnet.ScenarioError,
                       match=r"edge l0->l1: weight scale must be a finite number >= 0"):
        asyncnet.run(asyncnet.Scenario(asyncnet.layered([2, 3, 1], scale=scale), "diffusion",
                                       duration=3))


def test_a_self_loop_on_a_sink_is_named_as_one():
    import networkx as nx
    g = nx.DiGraph()
    g.add_edge("a", "o")
    g.add_edge("o", "o")  # o has an out-edge: no output population either
    with pytest.raises(asyncnet.ScenarioError, match="edge o->o: self-loops are not allowed"):
        asyncnet.run(asyncnet.Scenario(g, "diffusion", duration=3))


def test_gradep_defaults_agree_with_its_engine():
    from asyncnet.schemes.gradep.agents import GradEP
    rule = GradEP()  # backend engine by default, which refuses the global clip
    assert rule.backend == "engine" and rule.clip_mode == "local"


@pytest.mark.parametrize("rule,data", [
    ("ep", {"kind": "constant"}),  # its state gains a batch axis of 1 when data arrives
    ("diffusion", {"kind": "xor", "batch": 4, "hold": 2}),
])
def test_a_recorded_variable_that_gains_a_batch_axis_stacks(rule, data):
    g = asyncnet.layered([2, 3, 1])
    r = asyncnet.run(asyncnet.Scenario(g, rule, data=data, duration=20, seed=3),
                     record={"l1": ["state"]}, period=1.0)
    x = r.recorded["l1"]["state"]
    assert x.dtype == float and x.shape[0] == len(r.times) and x.shape[-1] == 3
    rows = x.shape[1]
    assert rows == (4 if rule == "diffusion" else 1)
    # before the first batch every row held the one state: the run's own first sample
    first = asyncnet.run(asyncnet.Scenario(g, rule, data=data, duration=2, seed=3),
                         record={"l1": ["state"]}, period=1.0).recorded["l1"]["state"][0]
    assert np.array_equal(x[0], np.broadcast_to(first, x[0].shape))
    assert not np.array_equal(x[-1][0], x[0][0])  # and it moved on


def test_submodules_named_in_the_docs_load_on_first_use_and_import_stays_light():
    import subprocess
    import sys
    code = ("import sys, asyncnet\n"
            "assert 'matplotlib' not in sys.modules and 'pandas' not in sys.modules\n"
            "assert callable(asyncnet.tables.log_batches)\n"
            "assert callable(asyncnet.commands.Progress)\n"
            "assert callable(asyncnet.waves.wave_labels)\n"
            "try:\n    asyncnet.nosuch\nexcept AttributeError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "module 'asyncnet' has no attribute 'nosuch'"
