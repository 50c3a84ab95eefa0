"""Small defects found in review: each test failed on the code before its fix."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import ClassVar

import pytest

import asyncnet
from asyncnet import cli
from asyncnet.analysis.catalogue import kinds
from asyncnet.api import ModelError


@pytest.fixture(scope="module")
def xor_log(tmp_path_factory):
    """A short XOR run's event log and the number of messages in it."""
    d = tmp_path_factory.mktemp("xor")
    sc = asyncnet.Scenario(asyncnet.layered([2, 4, 1]), "diffusion", params={"eta": 0.05},
                           seed=1, data={"kind": "xor", "hold": 8}, duration=50)
    log = str(d / "x.log")
    res = asyncnet.run(sc, log=log)
    return log, res.summary["messages"]["total"]


def _one_error(argv, capsys) -> str:
    """Run the CLI, expecting exit 2 and one ``asyncnet: error:`` line; that line."""
    rc = cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("asyncnet: error: "), err
    return err[0]


def test_export_dash_writes_csv_to_stdout_and_refuses_parquet(xor_log, tmp_path, capsys,
                                                              monkeypatch):
    """``export LOG -o -`` wrote a file literally named '-'."""
    pytest.importorskip("pyarrow")
    log, total = xor_log
    monkeypatch.chdir(tmp_path)
    assert cli.main(["export", log, "-o", "-", "--format", "csv"]) == 0
    got = capsys.readouterr()
    lines = got.out.splitlines()
    assert lines[0].startswith('"time","kind"') and len(lines) == total + 1
    assert "wrote stdout" in got.err and not os.path.exists("-")
    line = _one_error(["export", log, "-o", "-"], capsys)
    assert "-o -: a parquet table is binary" in line and "--format csv" in line
    assert not os.path.exists("-")


def _quick(duration: float = 20) -> asyncnet.Scenario:
    """A small XOR scenario that runs in well under a second."""
    return asyncnet.Scenario(asyncnet.layered([2, 4, 1]), "diffusion", params={"eta": 0.05},
                             seed=1, data={"kind": "xor", "hold": 8}, duration=duration)


def test_run_refuses_a_period_that_would_be_ignored():
    """``run(period=5)`` with no ``record`` (or with a Recorder) ran and ignored it."""
    with pytest.raises(ValueError, match=r"period=5 given but nothing to record"):
        asyncnet.run(_quick(), period=5)
    rec = asyncnet.Recorder({"l2": ["state"]}, period=2)
    with pytest.raises(ValueError, match=r"period=5 given with a Recorder, which has its own"):
        asyncnet.run(_quick(), record=rec, period=5)
    assert len(asyncnet.run(_quick(), record={"l2": ["state"]}).recorded["l2"]["state"]) == 19


@pytest.mark.parametrize("agent", ["l1", "l0->l1", "src:l0"])
def test_recorder_refuses_a_misspelt_variable_before_the_run(agent):
    """A variable an agent with no data source lacks was refused only at the first
    sample, mid-run (here at t=40, after 40 units of simulation)."""
    reached = []
    rec = asyncnet.Recorder({agent: ["stat"]}, period=10, start=40)
    with pytest.raises(ValueError, match=rf"recorder: agent '{agent}' has no variable 'stat' "
                                         rf"\(it has: "):
        asyncnet.run(_quick(50), record=rec, progress=reached.append)
    assert reached == []


def test_recorder_still_takes_an_outputs_target_that_arrives_with_its_data():
    """An output's ``target`` comes with its data source's first message: not refused."""
    res = asyncnet.run(_quick(), record={"l2": ["target", "state"]})
    assert res.recorded["l2"]["target"].shape[0] == 19


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("key, value, words", [
    ("holds", [], "key 'holds' is empty"),
    ("holds", [2, 0], "key 'holds': every hold time must be positive, got 0"),
    ("warmup", -5, "key 'warmup' must be a time of 0 or more"),
])
def test_alignment_refuses_empty_holds_and_a_negative_warmup(key, value, words, tmp_path,
                                                            capsys):
    """``holds = []`` swept the data's hold instead and a negative warmup scored frames
    before the run, both without a word."""
    sc = asyncnet.Scenario(asyncnet.layered([3, 4, 2], delay=1.0), "diffusion",
                           data={"kind": "piecewise", "patterns": 4, "hold": 2},
                           analysis={"kind": "alignment", key: value}, duration=20)
    with pytest.raises(ValueError, match=rf"\[analysis\] {words}"):
        asyncnet.run(sc)
    text = open(os.path.join(ROOT, "scenarios", "waves_fast.toml"), encoding="utf-8").read()
    line = {"holds": "holds = [2]\n", "warmup": "warmup = 18\n"}[key]
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(line, f"{key} = {value!r}\n"), encoding="utf-8")
    assert words in _one_error(["run", str(bad), "--no-log", "-q"], capsys)


def _register_one_model(monkeypatch, rule: str, start_emits, state) -> None:
    """Register, for this test only, a scheme whose every agent starts by returning
    ``start_emits`` and whose state is ``state``."""
    class Model:
        def start(self, t):
            return start_emits

        def react(self, t, batch):
            return []

        def state(self):
            return state

    @dataclass
    class Scheme:
        name: ClassVar[str] = rule
        analyses: ClassVar[dict] = kinds("none")

        def neuron(self, pop, ports, rng):
            return Model()

        def synapse(self, proj, ports, rng):
            return Model()

    monkeypatch.setattr("asyncnet.registry._REGISTERED", {})  # other tests see no new rule
    asyncnet.register(rule, Scheme)


def _contract_scenario(rule: str) -> asyncnet.Scenario:
    return asyncnet.Scenario(asyncnet.layered([2, 1]), rule, duration=5,
                             analysis={"kind": "none"})


@pytest.mark.parametrize("state", [["state", 1.0], 1.0, None])
def test_a_scheme_whose_state_is_no_dict_is_named_before_the_run(monkeypatch, state):
    """A state() that was no dict failed at the run's end in whatever read it first
    ("TypeError: list indices must be integers or slices, not str"), the run lost."""
    _register_one_model(monkeypatch, "qa_state_list", [], state)
    with pytest.raises(ModelError, match=rf"^rule 'qa_state_list': the model neuron\(\) gave "
                                         rf"for 'l0' returned a {type(state).__name__} from "
                                         rf"state\(\), not a dict"):
        asyncnet.run(_contract_scenario("qa_state_list"))


@pytest.mark.parametrize("emits, what", [
    ([("out", 1.0)], r"the emit \('out', 1.0\), not a \(port, kind, payload\) triple"),
    ([1.0], r"the emit 1.0, not a \(port, kind, payload\) triple"),
    (("out", 0, 1.0), r"the emit 'out', not a \(port, kind, payload\) triple"),
    (5, r"a int as its emits, not a list of \(port, kind, payload\) triples"),
])
def test_a_scheme_whose_emit_is_no_triple_is_named(monkeypatch, emits, what):
    """An emit that was no (port, kind, payload) triple ended in the engine's unpacking
    error ("not enough values to unpack (expected 3, got 2)"), naming no scheme or agent."""
    _register_one_model(monkeypatch, "qa_emit_pair", emits, {})
    with pytest.raises(ModelError, match=rf"^rule 'qa_emit_pair': agent 'l0'\S* model "
                                         rf"returned {what}"):
        asyncnet.run(_contract_scenario("qa_emit_pair"))


def test_plain_progress_rounds_a_time_a_quantum_short_of_the_end(capsys, monkeypatch):
    """A distributed run's last window ends a quantum before the end: its progress said
    "99% (t=0.999999/1, ...)" before the 100% line."""
    from asyncnet.commands import Progress
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)  # the plain lines, not a bar
    progress = Progress(1, "q")
    for now in (0.14, 0.62, 0.999999, 1.0):
        progress(now)
    lines = [line.split(", ")[0] for line in capsys.readouterr().err.splitlines()]
    assert lines == ["q: 14% (t=0.14/1", "q: 62% (t=0.62/1", "q: 100% (t=1/1"]
    progress = Progress(4000, "q")
    progress(1234.5678)
    assert capsys.readouterr().err.startswith("q: 30% (t=1235/4000, ")


@pytest.mark.parametrize("warmup", ["-3", "40", "1e9"])
def test_tracking_refuses_a_warmup_outside_the_run(warmup, tmp_path, capsys):
    """A negative warmup put a probe in the past (a ValueError's traceback); one at or past
    the end probed nothing and reported 'n/a'. Both are refused before the run."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "scenarios", "continuous_lag.toml"), encoding="utf-8") as f:
        text = f.read()
    assert 'kind = "tracking"\n' in text and "duration = 40" in text
    path = tmp_path / "lag.toml"
    path.write_text(text.replace('kind = "tracking"\n',
                                 f'kind = "tracking"\nwarmup = {warmup}\n'), encoding="utf-8")
    msg = _one_error(["run", str(path), "-q", "--log", str(tmp_path / "x.log")], capsys)
    assert "[analysis] key 'warmup' must be a time from 0 to below the run's duration 40" in msg
    assert not (tmp_path / "x.log").exists()
