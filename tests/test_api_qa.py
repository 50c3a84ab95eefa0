"""Defects found by using the Python API as a new user would (QA pass, 5 December).

Each test states what went wrong before its fix: a bad argument to
``asyncnet.resume`` that cut a finished log before failing inside the engine,
and the like.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

import asyncnet
from asyncnet.analysis.catalogue import kinds
from asyncnet.messages import FORWARD


def _quick(duration: float = 40) -> asyncnet.Scenario:
    return asyncnet.Scenario(asyncnet.layered([2, 3, 1]), "diffusion", params={"eta": 0.05},
                             data={"kind": "xor", "hold": 8}, duration=duration, seed=1)


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _register(monkeypatch, rule: str, make, analysis_kinds: tuple[str, ...] = ("none",)) -> None:
    """Register, for this test only, a scheme whose every agent is ``make(size)``
    (a neuron's population size; 1 for a synapse)."""

    @dataclass
    class Scheme:
        name: ClassVar[str] = rule
        analyses: ClassVar[dict] = kinds(*analysis_kinds)

        def neuron(self, pop, ports, rng):
            return make(pop.size)

        def synapse(self, proj, ports, rng):
            return make(1)

    monkeypatch.setattr("asyncnet.registry._REGISTERED", {})  # other tests see no new rule
    asyncnet.register(rule, Scheme)


@pytest.mark.parametrize("arg,value", [("progress", 3), ("notice", "resume.txt")])
def test_resume_refuses_a_bad_callback_before_it_touches_the_log(tmp_path, arg, value):
    # before: progress=3 failed in the engine ("'int' object is not callable") after the
    # complete log had been cut back to its checkpoint (594 -> 394 records, footer
    # marked interrupted); notice="..." failed the same way, before the cut
    log = tmp_path / "ck.log"
    asyncnet.run(_quick(), log=str(log), checkpoint_every=20)
    before = _md5(log)
    with pytest.raises(TypeError, match=f"^{arg} must be"):
        asyncnet.resume(str(log), **{arg: value})
    assert _md5(log) == before
    assert asyncnet.open_log(str(log)).scan().complete


@pytest.mark.parametrize("change", ["delay", "activation", "weight"])
def test_a_graph_changed_in_place_is_what_the_log_embeds(tmp_path, change):
    # before: only the graph's node and edge counts were compared, so a run used the
    # changed graph while its log embedded the text of the old one: replay --verify of
    # the fresh log diverged (at record 0 for a delay of 3 on l0->l1)
    from asyncnet.replay import verify
    sc = _quick()
    if change == "delay":
        sc.graph.edges["l0", "l1"]["delay"] = 3.0
    elif change == "activation":
        sc.graph.nodes["l1"]["activation"] = "relu"
    else:
        sc.graph.edges["l1", "l2"]["weight"] = [[0.5, -0.5, 0.25]]
    log = tmp_path / "changed.log"
    asyncnet.run(sc, log=str(log))
    # the text the log holds, read back
    (tmp_path / "embedded.toml").write_text(asyncnet.open_log(str(log)).scenario_text)
    g = asyncnet.Scenario.from_toml(str(tmp_path / "embedded.toml")).graph
    assert {"delay": g.edges["l0", "l1"]["delay"] == 3.0,
            "activation": g.nodes["l1"]["activation"] == "relu",
            "weight": g.edges["l1", "l2"].get("weight") == [[0.5, -0.5, 0.25]]}[change]
    assert verify(str(log))["identical"]


def test_an_emit_to_an_unknown_port_is_refused_naming_agent_and_port(monkeypatch):
    # before: the engine dropped an emit to any port but "out" and "in" without a word,
    # so a scheme's typo ("outs") ran to the end with its messages gone
    class Neuron:
        def __init__(self, n: int):
            self.x = np.ones(n)

        def start(self, t):
            return [("outs", FORWARD, self.x)]

        def react(self, t, batch):
            return []

        def state(self):
            return {"state": self.x}

    _register(monkeypatch, "qa_port_typo", Neuron)
    sc = asyncnet.Scenario(asyncnet.layered([2, 1]), "qa_port_typo", duration=5,
                           analysis={"kind": "none"})
    with pytest.raises(ValueError, match=r"^l0: an emit to port 'outs' .*'out'.*'in'"):
        asyncnet.run(sc)


def test_a_malformed_payload_met_by_export_names_the_log(tmp_path, capsys):
    # before: asyncnet export (and EventLog.to_dataframe) decode payloads the reader left
    # encoded, and a malformed one ended in "asyncnet: error: a malformed array payload
    # (array length does not match its shape)", no file named
    from asyncnet.cli import main
    from asyncnet.logfile import LogError
    log = tmp_path / "bad.log"
    asyncnet.run(_quick(), log=str(log))
    data = bytearray(log.read_bytes())
    vector2 = b"\xc7\x15\x01\x01\x02\x00\x00\x00"  # ext8, 21 bytes, array, 1-d, length 2
    at = data.index(vector2, 200)
    data[at + 4] = 3  # length 3: 16 bytes of values do not match it
    log.write_bytes(bytes(data))
    with pytest.raises(LogError, match=f"^{log}: a malformed array payload"):
        asyncnet.open_log(str(log)).to_dataframe()
    capsys.readouterr()
    assert main(["export", str(log), "--format", "csv", "-o", str(tmp_path / "t.csv")]) == 2
    assert capsys.readouterr().err.startswith(f"asyncnet: error: {log}: a malformed array")


@pytest.mark.parametrize("workers", [1, 2])
def test_an_outputs_target_records_as_nan_until_it_arrives(workers):
    # before: the target reaches the output at t=1, after the sample at t=1 (samples come
    # before the instant's events), and record={"l2": ["target"]} with period 1 stopped
    # the run: "agent 'l2' has no variable 'target'", a key --save-state documents
    res = asyncnet.run(_quick(20), workers=workers, period=1, record={"l2": ["target", "state"]})
    target = res.recorded["l2"]["target"]
    assert target.shape == (19, 1)
    assert np.isnan(target[0, 0])
    assert set(np.round(target[1:, 0], 12)) <= {-0.9, 0.9}  # xor's targets
    assert np.isfinite(res.recorded["l2"]["state"]).all()
    with pytest.raises(asyncnet.ScenarioError, match="agent 'l2' had no variable 'targt'"):
        asyncnet.run(_quick(20), workers=workers, period=1, record={"l2": ["targt"]})


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_a_batch_size_that_is_no_positive_integer_is_refused(tmp_path, batch_size):
    # before: batch_size=0 gave empty batches without end (export_log ran for ever,
    # writing nothing) and -1 cut batches wrongly
    from asyncnet.export import export_log
    from asyncnet.tables import log_batches
    log = tmp_path / "q.log"
    asyncnet.run(_quick(10), log=str(log))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        next(log_batches(asyncnet.open_log(str(log)), batch_size=batch_size))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        export_log(str(log), str(tmp_path / "q.csv"), "csv", batch_size=batch_size)
    assert not (tmp_path / "q.csv").exists()


def test_plots_refuse_a_kind_or_variable_they_would_not_draw(tmp_path):
    # before: raster(kinds=["forwards"]) failed in tuple.index ("x not in tuple"), and
    # kinds="delta" the same (five one-letter kinds); traces(res, "l1", "delta") of a run
    # that recorded only l1's state drew an empty plot without a word
    import matplotlib
    matplotlib.use("agg")
    from asyncnet import plots
    log = tmp_path / "q.log"
    res = asyncnet.run(_quick(10), log=str(log), record={"l1": ["state"]}, period=2)
    with pytest.raises(ValueError, match="kinds must name forward, delta or control"):
        plots.raster(str(log), kinds=["forwards"])
    fig = plots.raster(str(log), kinds="delta")
    colours = {tuple(c.get_facecolor()[0]) for c in fig.axes[0].collections}
    assert len(colours) == 1  # one kind drawn
    with pytest.raises(KeyError, match=r"variable 'delta' was not recorded \(recorded: state\)"):
        plots.traces(res, "l1", "delta")
    assert len(plots.traces(res, "l1", "state").axes[0].lines) == 3  # l1's 3 neurons


@pytest.mark.parametrize("path", [None, 3])
def test_result_export_needs_a_path(tmp_path, monkeypatch, path):
    # before: export(None) wrote a parquet file named "None" in the working directory
    # (export(3) one named "3") and returned the argument as if it were a path
    monkeypatch.chdir(tmp_path)
    res = asyncnet.run(_quick(10), record={"l1": ["state"]}, period=2)
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        res.export(path)
    assert list(tmp_path.iterdir()) == []


def test_a_one_process_run_into_a_distributed_runs_log_path_drops_its_cluster_figures(
        tmp_path, capsys):
    # before: LOG.cluster.json (written by a run on workers) stayed beside the log of a
    # later one-process run of the same scenario; the two logs have the same bytes and
    # digest, so asyncnet stats printed "cluster   2 workers ..." for the one-process run
    from asyncnet.cli import main
    log = str(tmp_path / "q.log")
    asyncnet.run(_quick(10), workers=2, log=log)
    assert main(["stats", log]) == 0
    assert "\ncluster   2 workers" in capsys.readouterr().out
    asyncnet.run(_quick(10), log=log)
    assert main(["stats", log]) == 0
    out = capsys.readouterr().out
    assert "messages  " in out and "cluster" not in out and "worker 0" not in out


@pytest.mark.parametrize("given", ["diffusion", None, 3])
def test_schema_describe_refuses_what_is_no_scheme_class(given):
    # before: describe("diffusion") returned [] as if the scheme had no parameters
    with pytest.raises(TypeError, match="describe takes a scheme's parameter dataclass"):
        asyncnet.schema.describe(given)
    rows = asyncnet.schema.describe(asyncnet.get_scheme("diffusion"))
    assert {r["name"] for r in rows} == {"eta", "eta_bias", "init_state"}


@pytest.mark.parametrize("call,words", [
    (lambda: asyncnet.Scenario.from_toml(None), "a scenario's path must be a str or os.PathLike"),
    (lambda: _quick_with(text=5), "a scenario's text must be a str"),
    (lambda: _quick_with(path=5), "a scenario's path must be a str or os.PathLike"),
])
def test_a_scenario_path_or_text_of_the_wrong_type_is_named(call, words):
    # before: os.fspath's "expected str, bytes or os.PathLike object, not NoneType", and
    # for text=5 an AttributeError from inside tomllib ("'int' object has no attribute")
    with pytest.raises(TypeError, match=words):
        call()


def _quick_with(**kw) -> asyncnet.Scenario:
    return asyncnet.Scenario(asyncnet.layered([2, 1]), "diffusion", duration=5, **kw)


@pytest.mark.parametrize("name", ["", "  "])
def test_a_population_without_a_name_is_refused(name):
    # before: a node named "" ran, as agents "", "->c" and "src:" (asyncnet inspect
    # --node ->c then read as an option)
    import networkx as nx
    g = nx.DiGraph()
    g.add_node(name, size=2, role="input")
    g.add_node("c", size=1, role="output")
    g.add_edge(name, "c")
    sc = asyncnet.Scenario(g, "diffusion", duration=5, data={"kind": "xor", "hold": 2})
    with pytest.raises(asyncnet.ScenarioError, match=f"node {name!r}: a population needs a name"):
        asyncnet.run(sc)


def test_a_recorder_this_machine_cannot_hold_is_refused_before_the_run(tmp_path, monkeypatch):
    # before: period=1e-5 over 4000 units scheduled 4e8 probes and ran out of memory
    # (a MemoryError under a 4 GB limit, the whole machine's memory without one); here a
    # machine of 100 kB stands for it: 3,999 samples need over 1 MB
    monkeypatch.setattr("asyncnet.recording.machine_memory", lambda: 100_000, raising=False)
    log = tmp_path / "q.log"
    with pytest.raises(asyncnet.ScenarioError, match=r"recorder: 3,999 samples \(period 0.01 "
                                                       r"over 40\) need over .* GiB"):
        asyncnet.run(_quick(40), log=str(log), record={"l1": ["state"]}, period=0.01)
    assert not log.exists()
    res = asyncnet.run(_quick(40), record={"l1": ["state"]}, period=1)  # 39 samples: 10 kB
    assert len(res.times) == 39


def test_to_dataframe_of_a_variable_whose_shape_changed(monkeypatch):
    # before: Recorder.arrays gives such a variable as an object array (documented), and
    # Result.to_dataframe failed on it: "setting an array element with a sequence"
    class Growing:
        def __init__(self):
            self.seen = []

        def start(self, t):
            return None

        def on_timer(self, t):
            self.seen.append(t)  # one entry more each time unit
            return []

        def next_interval(self, rng):
            return 1.0

        def react(self, t, batch):
            return []

        def state(self):
            return {"seen": np.array(self.seen), "state": np.zeros(1)}

    _register(monkeypatch, "qa_grow", lambda size: Growing())
    sc = asyncnet.Scenario(asyncnet.layered([1, 1]), "qa_grow", duration=5,
                           analysis={"kind": "none"})
    res = asyncnet.run(sc, record={"l1": ["seen"]}, period=1.5)
    seen = res.recorded["l1"]["seen"]
    # a sample at t comes before t's events: timers at 1 | 1, 2 | 1, 2, 3, 4
    assert seen.dtype == object and [len(s) for s in seen] == [1, 2, 4]
    df = res.to_dataframe()
    assert list(df["time"]) == [1.5, 3.0, 3.0, 4.5, 4.5, 4.5, 4.5]
    assert list(df["index"]) == [0, 0, 1, 0, 1, 2, 3]
    assert list(df["value"]) == [1.0, 1.0, 2.0, 1.0, 2.0, 3.0, 4.0]


def test_a_scheme_whose_models_have_no_state_key_runs(monkeypatch):
    # before: the run's "result" read-out took the output's state()["state"] and failed
    # with a bare KeyError: 'state', though asyncnet.api.Model asks for no such key
    class Model:
        def start(self, t):
            return [("out", FORWARD, np.ones(1))]

        def react(self, t, batch):
            return []

        def state(self):
            return {"x": np.ones(1)}

    _register(monkeypatch, "qa_nostate", lambda size: Model(), ("accuracy", "none"))
    sc = asyncnet.Scenario(asyncnet.layered([2, 1]), "qa_nostate", duration=20,
                           data={"kind": "xor", "hold": 2})
    res = asyncnet.run(sc, record={"l1": ["x"]}, period=5)
    assert res.summary["result"]["evaluated"] == 0  # no output to read: no loss
    assert res.recorded["l1"]["x"].shape == (3, 1)


def test_resume_on_mpi_outside_an_mpi_job_leaves_the_log(tmp_path):
    # before: resume(path, mpi=True) in a process of one rank cut the complete log back to
    # its checkpoint (594 -> 394 records, marked incomplete) and only then failed, in the
    # coordinator: "--mpi needs at least 2 MPI ranks"
    pytest.importorskip("mpi4py")
    from asyncnet.cluster.mpi import MPIUnavailable
    log = tmp_path / "ck.log"
    asyncnet.run(_quick(), log=str(log), checkpoint_every=20)
    before = _md5(log)
    with pytest.raises(MPIUnavailable, match=r"needs an MPI job of 2 ranks or more"):
        asyncnet.resume(str(log), mpi=True)
    assert _md5(log) == before
    assert asyncnet.open_log(str(log)).scan().complete


def test_a_checkpoint_directory_that_is_a_file_is_refused_before_the_run(tmp_path):
    # before: run(checkpoint_every=5, checkpoint_dir=<a file>) failed at the first
    # checkpoint with os.makedirs' FileExistsError, its log already begun (the command
    # line refused it up front)
    a_file = tmp_path / "ckfile"
    a_file.write_text("not a directory")
    log = tmp_path / "q.log"
    with pytest.raises(asyncnet.outputs.OutputError, match=f"{a_file} is not a directory"):
        asyncnet.run(_quick(20), log=str(log), checkpoint_every=5, checkpoint_dir=str(a_file))
    assert not log.exists() and a_file.read_text() == "not a directory"


@pytest.mark.parametrize("arg", ["log", "save_state", "checkpoint_dir"])
def test_an_empty_output_path_is_refused(tmp_path, monkeypatch, arg):
    # before: log="" said ": is a directory"; save_state="" was taken as no saved state and
    # checkpoint_dir="" as the default directory, without a word
    monkeypatch.chdir(tmp_path)
    with pytest.raises(asyncnet.outputs.OutputError, match=f"^{arg}: an empty path$"):
        asyncnet.run(_quick(10), checkpoint_every=5, **{arg: ""})
    assert list(tmp_path.iterdir()) == []


def test_result_state_names_what_it_has():
    # before: state(2) for a graph whose node is 2 said "no final state for agent 2" (its
    # agent is "2"), and a misspelt agent listed nothing to choose from
    import networkx as nx
    g = nx.DiGraph()
    g.add_node(1, size=2, role="input")
    g.add_node(2, size=1, role="output")
    g.add_edge(1, 2)
    res = asyncnet.run(asyncnet.Scenario(g, "diffusion", duration=5,
                                         data={"kind": "xor", "hold": 2}))
    with pytest.raises(TypeError, match=r"agent must be an agent id, a str \('2'\), got int 2"):
        res.state(2)
    assert set(res.state("2")) >= {"state", "bias"}
    with pytest.raises(KeyError, match=r"no final state for agent '3' \(agents with one: "
                                       r"1, 1->2, 2\)"):
        res.state("3")


def test_export_log_takes_its_format_from_the_ending_and_refuses_the_other(tmp_path):
    # before: export_log(log, "t.csv") wrote a parquet table (its default format) into a
    # file named .csv, which asyncnet export and Result.export refuse
    from asyncnet.export import export_log
    log = tmp_path / "q.log"
    asyncnet.run(_quick(10), log=str(log))
    n = export_log(str(log), str(tmp_path / "t.csv"))
    assert (tmp_path / "t.csv").read_bytes().startswith(b'"time","kind"')
    assert n == asyncnet.open_log(str(log)).scan().count
    with pytest.raises(ValueError, match="a .csv name for a parquet table"):
        export_log(str(log), str(tmp_path / "u.csv"), "parquet")
    assert not (tmp_path / "u.csv").exists()


def test_export_log_never_writes_over_its_log(tmp_path):
    # before: export_log(log, log, "csv") wrote the log's own table over the event log
    # (asyncnet export refuses it); out=None failed in os.stat, a directory inside pyarrow
    from asyncnet.export import export_log
    from asyncnet.outputs import OutputError
    log = tmp_path / "q.log"
    asyncnet.run(_quick(10), log=str(log))
    before = _md5(log)
    with pytest.raises(OutputError, match="the table would overwrite the log"):
        export_log(str(log), str(log), "csv")
    assert _md5(log) == before
    with pytest.raises(OutputError, match="is a directory"):
        export_log(str(log), str(tmp_path))
    with pytest.raises(TypeError, match="out must be a path"):
        export_log(str(log), None)


def test_result_export_never_writes_over_the_runs_log(tmp_path):
    # before: res.export(res.log, format="csv") wrote the recordings over the event log
    from asyncnet.outputs import OutputError
    log = tmp_path / "q.log"
    res = asyncnet.run(_quick(10), log=str(log), record={"l1": ["state"]}, period=2)
    before = _md5(log)
    with pytest.raises(OutputError, match="the recordings would overwrite the event log"):
        res.export(res.log, format="csv")
    assert _md5(log) == before
    assert res.export(str(tmp_path / "rec.csv")) == str(tmp_path / "rec.csv")


@pytest.mark.parametrize("seed", ["1", 1.0, None, True])
def test_network_from_graph_refuses_a_seed_that_is_no_integer(seed):
    # before: any seed went into the agents' seed strings: "1" drew the weights of seed 1,
    # 1.0 other weights than 1, None those of "None"
    from asyncnet.network import NetworkError
    with pytest.raises(NetworkError, match="seed must be an integer"):
        asyncnet.Network.from_graph(asyncnet.layered([2, 1]), seed=seed)
    net = asyncnet.Network.from_graph(asyncnet.layered([2, 1]), seed=np.int64(1))
    same = asyncnet.Network.from_graph(asyncnet.layered([2, 1]), seed=1)
    assert np.array_equal(net.projections["l0", "l1"].weight, same.projections["l0", "l1"].weight)


def test_a_bind_address_that_cannot_listen_leaves_the_log_path_as_it_was(tmp_path, capsys):
    # before: asyncnet run --workers 2 --bind tcp://127.0.0.1:99999 (refused, exit 2)
    # closed the log it had not begun: an old 16 kB log at that path became an empty
    # interrupted one of 405 bytes (docs/reference/cli.md: nothing is left behind)
    from asyncnet.cli import main
    sc = tmp_path / "s.toml"
    sc.write_text(_quick(10).to_toml())
    log = tmp_path / "q.log"
    assert main(["run", str(sc), "-q", "--log", str(log)]) == 0
    before = _md5(log)
    assert main(["run", str(sc), "-q", "--log", str(log), "--workers", "2",
                 "--bind", "tcp://127.0.0.1:99999"]) == 2
    assert "is not a TCP port" in capsys.readouterr().err
    assert _md5(log) == before
    fresh = tmp_path / "fresh.log"
    assert main(["run", str(sc), "-q", "--log", str(fresh), "--workers", "2",
                 "--bind", "tcp://127.0.0.1:99999"]) == 2
    assert not fresh.exists()


def test_weight_evolution_takes_one_variable_by_name_and_counts_its_axes():
    # before: variables="weight" was six one-letter variables ("none of w, e, i, g, h, t
    # was recorded"), and one Axes for the default two variables failed in zip()
    # ("argument 2 is longer than argument 1")
    import matplotlib
    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    from asyncnet import plots
    res = asyncnet.run(_quick(10), record={"l0->l1": ["weight", "grad"]}, period=2)
    fig = plots.weight_evolution(res, "l0->l1", variables="weight")
    assert [a.get_title() for a in fig.axes] == ["l0->l1: weight (6 entries)"]
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match=r"ax: 1 axes for 2 variables \['weight', 'grad'\]"):
        plots.weight_evolution(res, "l0->l1", ax=ax)
    assert plots.weight_evolution(res, "l0->l1", ax=ax, variables=["grad"]) is ax.figure
