"""``asyncnet inspect``: an agent run alone on its logged inputs is the agent
of the full run.

Reference: the full in-process run of the same scenario (every agent on one
engine). For every agent of small runs of four schemes, the isolated agent's
state at T equals the full run's ``Engine.state(name)`` at T bit for bit,
and its messages equal the log's. A tampered input makes exactly the
receiving agent's outputs diverge.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import msgpack
import numpy as np
import pytest

from asyncnet.eventlog import EventLogWriter, _packer
from asyncnet.isolate import InspectError, isolate
from asyncnet.messages import FORWARD, decode_ext, to_quanta
from asyncnet.scenario import load
from asyncnet.simulation import build_engine, log_header

ROOT = Path(__file__).resolve().parent.parent
CASES = {  # scenario file -> (shortened duration, T at which states are compared)
    "quickstart.toml": (60, 37.5),
    "leastaction_async.toml": (24, 17.3),
    "continuous_dag.toml": (16, 11.0),
    "continuous_cyclic.toml": (20, 13.7),  # cycles, delays 0.2, jittered timers
    "ep_async.toml": (401, 300.3),  # free phase, then the nudged one
    "coupled_gradient.toml": (401, 300.3),
}


def _snapshot(state: dict) -> dict:
    return {k: np.array(v, copy=True) for k, v in state.items()}


def _full_run(name: str, duration: float, until: float, tmp: Path):
    """The reference: every agent on one engine; states at ``until``, a log to the end."""
    text = (ROOT / "scenarios" / name).read_text()
    text = re.sub(r"(?m)^duration\s*=.*$", f"duration = {duration}", text, count=1)
    path = tmp / name
    path.write_text(text)
    sc = load(str(path))
    eng, _, _ = build_engine(sc)
    log = tmp / (name + ".log")
    writer = EventLogWriter(log, log_header(sc, eng.names))
    eng.sinks.append(writer)
    eng.run_quanta(to_quanta(until))
    states = {n: _snapshot(eng.state(n)) for n in eng.names}
    eng.run(sc.duration)
    writer.close()
    return str(log), states


def _same(a: dict, b: dict) -> bool:
    if sorted(a) != sorted(b):
        return False
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        if x.shape != y.shape or x.dtype != y.dtype or x.tobytes() != y.tobytes():
            return False
    return True


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_agent_alone_equals_the_full_run(name, tmp_path):
    duration, until = CASES[name]
    log, ref = _full_run(name, duration, until, tmp_path)
    sent = 0
    for node in ref:
        r = isolate(log, node, until)
        assert r["identical"], (node, r["divergence"])
        assert _same(r["state"], ref[node]), node
        sent += r["compared"]
    assert sent > 0
    # the whole log's horizon (no --until): outputs still match
    for node in list(ref)[:3]:
        assert isolate(log, node)["identical"]


def test_until_default_is_the_end_of_the_run(tmp_path):
    log, ref = _full_run("quickstart.toml", 30, 30, tmp_path)
    for node in ("l1", "l1->l2", "l2"):
        r = isolate(log, node)
        assert r["until"] == 30
        assert _same(r["state"], ref[node])


def _rewrite(log: str, out: Path, change) -> None:
    """Re-encode a log with ``change(record)`` applied to each record."""
    with open(log, "rb") as f:
        items = list(msgpack.Unpacker(f, raw=False, ext_hook=decode_ext))
    pk = _packer()
    with open(out, "wb") as f:
        for it in items:
            f.write(pk.pack(change(it) if isinstance(it, list) else it))


def test_a_tampered_input_makes_its_receiver_diverge(tmp_path):
    log, _ = _full_run("quickstart.toml", 40, 40, tmp_path)
    with open(log, "rb") as f:
        agents = next(msgpack.Unpacker(f, raw=False))["agents"]
    l1, syn = agents.index("l1"), agents.index("l0->l1")
    done = []

    def change(rec):  # the first forward value l0->l1 delivers to l1 from t = 20 on
        if (not done and rec[0] >= to_quanta(20) and rec[1] == FORWARD and rec[2] == syn
                and rec[3] == l1):
            rec[6] = np.asarray(rec[6]) + 0.25
            done.append(rec)
        return rec

    bad = tmp_path / "tampered.log"
    _rewrite(log, bad, change)
    assert len(done) == 1
    # control: re-encoding alone changes nothing
    _rewrite(log, tmp_path / "same.log", lambda r: r)
    assert Path(log).read_bytes() == (tmp_path / "same.log").read_bytes()
    r = isolate(str(bad), "l1")
    assert not r["identical"]
    # l1 reacts at the tampered instant; what it sent before is still right
    t_hit = done[0][0] / 1e6
    assert f"l1 -> l1->l2 sent {t_hit:g} " in r["divergence"], r["divergence"]
    # the sender is flagged too, exactly at the altered record: the log says it
    # sent what it would not have sent
    r = isolate(str(bad), "l0->l1")
    assert not r["identical"] and f"l0->l1 -> l1 sent {done[0][4] / 1e6:g} " in r["divergence"]
    # agents that never saw the record are unaffected
    for node in ("l2", "l1->l2", "src:l0", "l0"):
        assert isolate(str(bad), node)["identical"], node
    p = _cli(str(bad), "--node", "l1")
    assert p.returncode == 1
    assert "outputs DIVERGED after" in p.stdout


def test_truncated_log_works_up_to_its_last_whole_instant(tmp_path):
    log, _ = _full_run("quickstart.toml", 40, 40, tmp_path)
    data = Path(log).read_bytes()
    cut = tmp_path / "cut.log"
    cut.write_bytes(data[: len(data) // 2 + 3])
    with pytest.warns(UserWarning, match="truncated"):
        r = isolate(str(cut), "l1")
    assert r["truncated"] and r["identical"] and 0 < r["until"] < 40
    again = tmp_path / "again"
    again.mkdir()
    _, ref = _full_run("quickstart.toml", 40, r["until"], again)
    assert _same(r["state"], ref["l1"])


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "asyncnet", "inspect", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_cli_output_and_errors(tmp_path):
    log, ref = _full_run("quickstart.toml", 20, 20, tmp_path)
    p = _cli(log, "--node", "l0->l1")
    assert p.returncode == 0, p.stderr
    assert "outputs identical:" in p.stdout and "weight" in p.stdout
    p = _cli(log, "--node", "l2", "--json")
    assert p.returncode == 0
    st = json.loads(p.stdout)["state"]
    assert np.array_equal(np.array(st["state"]), ref["l2"]["state"])
    for args, what in (((log, "--node", "nope"), "no agent 'nope'"),
                       ((log, "--node", "l1", "--until", "99"), "outside the log")):
        p = _cli(*args)
        assert p.returncode == 2
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("asyncnet: error:") and what in lines[0]
    assert "l1->l2" in _cli(log, "--node", "nope").stderr  # names a few valid agents
    bad = tmp_path / "garbage.log"
    bad.write_bytes(b"\x00\x01not a log at all" * 10)
    mid = tmp_path / "mid.log"  # a foreign item between two records
    data = Path(log).read_bytes()
    up = msgpack.Unpacker(raw=False, ext_hook=decode_ext)
    up.feed(data)
    ends = [up.tell() for _ in up]
    cut = ends[len(ends) // 2]
    mid.write_bytes(data[:cut] + msgpack.packb("junk") + data[cut:])
    for f in (bad, mid):
        p = _cli(str(f), "--node", "l1")
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("asyncnet: error:"), p.stderr
    assert "unexpected item" in lines[0]


def test_unknown_agent_is_an_inspect_error(tmp_path):
    log, _ = _full_run("quickstart.toml", 10, 10, tmp_path)
    with pytest.raises(InspectError, match="src:l0"), warnings.catch_warnings():
        isolate(log, "l9")


@pytest.mark.parametrize("name", ["quickstart.toml", pytest.param(
    "continuous_cyclic.toml", marks=pytest.mark.slow)])
def test_streaming_in_small_steps_changes_nothing(name, tmp_path, monkeypatch):
    """``isolate`` streams the log, advancing the lone agent every STEP records.
    Advancing at (almost) every instant gives the states of the full run and
    exactly the answers of one advance at the end — on the intact log, on a
    log with one altered input and on a truncated one."""
    import asyncnet.isolate as iso
    duration, until = CASES[name]
    log, ref = _full_run(name, duration, until, tmp_path)
    names = list(ref)
    done: list = []

    def change(rec):  # the first forward message to a neuron after 40% of the run
        if not done and rec[1] == FORWARD and rec[0] >= to_quanta(0.4 * duration) \
                and "->" not in names[rec[3]]:
            rec[6] = np.asarray(rec[6]) + 0.25
            done.append(rec)
        return rec

    bad = tmp_path / "tampered.log"
    _rewrite(log, bad, change)
    data = Path(log).read_bytes()
    cut = tmp_path / "cut.log"
    cut.write_bytes(data[: len(data) * 3 // 5])
    diverged = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in (log, str(bad), str(cut)):
            for node in names[::max(1, len(names) // 6)] + [names[done[0][3]] if done
                                                            else names[0]]:
                for t in (until / 2, until, None):
                    got = []
                    for st in (10**9, 1):
                        monkeypatch.setattr(iso, "STEP", st)
                        try:
                            got.append(isolate(path, node, t))
                        except InspectError as e:  # past the end of the cut log
                            got.append(str(e))
                    whole, step = got
                    if isinstance(whole, str) or isinstance(step, str):
                        assert whole == step and path == str(cut)
                        continue
                    assert _same(step.pop("state"), whole.pop("state")), (path, node, t)
                    assert step == whole, (path, node, t)
                    diverged += not whole["identical"]
                    if path == log and t == until:
                        assert _same(isolate(path, node, t)["state"], ref[node])
    assert done and diverged  # the altered input made its receiver diverge
