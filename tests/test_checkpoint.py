"""Checkpoint and resume: a run killed anywhere finishes with the uninterrupted run's bytes.

The reference is always the same scenario run once without interruption:
its log bytes, its ``--json`` summary (but wall time and file names) and its
saved state. Kills are SIGKILLs of a subprocess at seeded simulated times
(``tests/checkpoint_victim.py``), or inside a checkpoint write.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import msgpack
import numpy as np
import pytest

import asyncnet
import asyncnet.checkpoint as ckp
from asyncnet.runner import resume

from .helpers import unfinish

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VICTIM = os.path.join(ROOT, "tests", "checkpoint_victim.py")


def shortened(name: str, duration: float, into) -> str:
    """A copy of ``scenarios/NAME.toml`` with another duration."""
    with open(os.path.join(ROOT, "scenarios", f"{name}.toml")) as f:
        text = f.read()
    text = re.sub(r"^duration\s*=.*$", f"duration = {duration}", text, count=1, flags=re.M)
    # shortened, the log is small: written (ep_digits turns it off for its full length)
    text = re.sub(r"^write_log\s*=\s*false.*$", "", text, flags=re.M)
    path = os.path.join(str(into), f"{name}.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def cli(*args, victim: tuple = (), cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, VICTIM, *victim, "asyncnet"] if victim else \
        [sys.executable, "-m", "asyncnet"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=600)


def stable(summary: dict) -> dict:
    """A summary without what differs between two equal runs (wall time, file names)."""
    s = dict(summary)
    for k in ("wall_seconds", "messages_per_second", "state"):
        s.pop(k, None)
    if "log" in s:
        s["log"] = {k: v for k, v in s["log"].items() if k != "path"}
    return s


def same_npz(a: str, b: str) -> bool:
    with np.load(a) as x, np.load(b) as y:
        return sorted(x) == sorted(y) and all(np.array_equal(x[k], y[k]) for k in x)


def reference(sc: str, d) -> dict:
    r = cli("run", sc, "--log", f"{d}/ref.log", "--save-state", f"{d}/ref.npz", "--json", "-q")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def check_kill_resume(sc: str, d, every: float, victim: tuple, ref: dict) -> None:
    log = f"{d}/run.log"
    for p in glob.glob(f"{d}/run.log*") + glob.glob(f"{log}.ckpt/*"):
        if os.path.isfile(p):
            os.remove(p)
    r = cli("run", sc, "--log", log, "--save-state", f"{d}/run.npz", "--checkpoint-every",
            str(every), "--json", "-q", victim=victim)
    assert r.returncode == -9, (r.returncode, r.stderr)
    r = cli("resume", log, "--json", "-q")
    assert r.returncode == 0, r.stderr
    with open(log, "rb") as f, open(f"{d}/ref.log", "rb") as g:
        assert f.read() == g.read()
    assert stable(json.loads(r.stdout)) == stable(ref)
    assert same_npz(f"{d}/run.npz", f"{d}/ref.npz")


# (scenario, shortened duration, checkpoint period): one per scheme
CASES = [("quickstart", 300, 60), ("ep_async", 200, 45), ("stlp_control_flip", 150, 40),
         ("leastaction_async", 60, 13), ("continuous_dag", 70, 17), ("coupled_gradient", 200, 45),
         ("diffusion_exact", 40, 9), ("stlp_fixedpoint_cyclic", 120, 25),
         ("ep_digits", 810, 270)]
DEFAULT = {"quickstart", "ep_async"}


@pytest.mark.parametrize("name,duration,every", [
    pytest.param(*c, marks=() if c[0] in DEFAULT else pytest.mark.slow) for c in CASES])
def test_sigkill_at_seeded_instants_then_resume(name, duration, every, tmp_path):
    sc = shortened(name, duration, tmp_path)
    ref = reference(sc, tmp_path)
    rng = np.random.default_rng(sum(map(ord, name)))
    kills = 1 if name in DEFAULT else 3
    for t in sorted(rng.uniform(every + 0.1, duration - 0.1, size=kills)):
        check_kill_resume(sc, tmp_path, every, ("--at", f"{t:.4f}"), ref)


@pytest.mark.parametrize("k,mode", [(2, "half"), pytest.param(2, "renamed",
                                                               marks=pytest.mark.slow)])
def test_sigkill_during_a_checkpoint_write(k, mode, tmp_path):
    sc = shortened("quickstart", 300, tmp_path)
    ref = reference(sc, tmp_path)
    check_kill_resume(sc, tmp_path, 60, ("--write", str(k), mode), ref)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A quickstart run with checkpoints, its reference bytes, and its summary."""
    d = tmp_path_factory.mktemp("ck")
    sc = shortened("quickstart", 300, d)
    res = asyncnet.run(sc, log=str(d / "a.log"), checkpoint_every=70,
                       record={"l1": ["state"]}, period=5.0)
    with open(d / "a.log", "rb") as f:
        return sc, d, f.read(), res


def test_checkpoints_do_not_change_the_run(finished, tmp_path):
    sc, d, ref_log, res = finished
    plain = asyncnet.run(sc, log=str(tmp_path / "p.log"), record={"l1": ["state"]}, period=5.0)
    with open(tmp_path / "p.log", "rb") as f:
        assert f.read() == ref_log
    assert stable(plain.summary) == stable(res.summary)
    # t = 210 and 280 kept, 70 and 140 removed
    names = sorted(os.listdir(d / "a.log.ckpt"))  # and the directory's lock file
    assert names == [".lock", ckp.file_name(210_000_000), ckp.file_name(280_000_000)]


def test_a_new_run_replaces_the_checkpoints_of_an_earlier_one(finished, tmp_path):
    """An earlier run's checkpoints (of later instants) must not hide the new run's."""
    sc, _, ref_log, _ = finished
    log = str(tmp_path / "a.log")
    asyncnet.run(sc, log=log, checkpoint_every=70)  # leaves t = 210 and 280
    r = cli("run", sc, "--log", log, "--checkpoint-every", "100", "-q",
            victim=("--at", "150.5"))
    assert r.returncode == -9
    assert [os.path.basename(p) for p in ckp.candidates(log + ".ckpt")] == \
        [ckp.file_name(100_000_000)]
    resume(log)
    with open(log, "rb") as f:
        assert f.read() == ref_log


def test_api_resume_restores_recordings(finished, tmp_path):
    sc, d, ref_log, res = finished
    work = tmp_path / "w"
    work.mkdir()
    asyncnet.run(sc, log=str(work / "a.log"), checkpoint_every=70, record={"l1": ["state"]},
                 period=5.0)
    os.remove(sorted(glob.glob(str(work / "a.log.ckpt" / "ck-*")))[-1])  # resume from 210
    again = resume(str(work / "a.log"))
    with open(work / "a.log", "rb") as f:
        assert f.read() == ref_log
    assert np.array_equal(again.times, res.times)
    assert np.array_equal(again.recorded["l1"]["state"], res.recorded["l1"]["state"])
    assert stable(again.summary) == stable(res.summary)


def _copy_run(finished, tmp_path) -> str:
    sc, d, ref_log, _ = finished
    work = tmp_path / "c"
    work.mkdir()
    asyncnet.run(sc, log=str(work / "a.log"), checkpoint_every=70)
    return str(work / "a.log")


def test_per_neuron_network_resumes(tmp_path):
    """One agent per neuron and per synapse (a scenario built in Python): the same bytes."""
    from asyncnet.network import Network
    g = asyncnet.expand_to_neurons(Network.from_graph(asyncnet.layered([2, 3, 1]), seed=0))
    sc = asyncnet.Scenario(g, "diffusion", params={"eta": 0.05}, seed=1,
                           data={"kind": "xor", "hold": 8}, duration=300)
    ref = asyncnet.run(sc, log=str(tmp_path / "a.log"), save_state=str(tmp_path / "a.npz"))
    asyncnet.run(sc, log=str(tmp_path / "b.log"), checkpoint_every=70,
                 save_state=str(tmp_path / "b.npz"))
    os.remove(ckp.candidates(str(tmp_path / "b.log.ckpt"))[0])  # resume from t = 210
    got = resume(str(tmp_path / "b.log"))
    assert (tmp_path / "a.log").read_bytes() == (tmp_path / "b.log").read_bytes()
    assert stable(got.summary) == stable(ref.summary)
    assert same_npz(str(tmp_path / "a.npz"), str(tmp_path / "b.npz"))


def test_truncated_checkpoints_are_refused_and_resume_falls_back(finished, tmp_path):
    _, _, ref_log, _ = finished
    log = _copy_run(finished, tmp_path)
    newest, older = ckp.candidates(log + ".ckpt")
    with open(newest, "rb") as f:
        data = f.read()
    rng = np.random.default_rng(7)
    for cut in [0, 1, 10, len(data) - 1, *rng.integers(1, len(data), size=25)]:
        with open(newest, "wb") as f:
            f.write(data[:cut])
        with pytest.raises(ckp.CheckpointError, match="cut short|not an asyncnet"):
            ckp.read(newest)
    flipped = bytearray(data)
    for pos in rng.integers(0, len(data), size=10):
        flipped[pos] ^= 0x40
    with open(newest, "wb") as f:
        f.write(bytes(flipped))
    with pytest.raises(ckp.CheckpointError):
        ckp.read(newest)
    with pytest.warns(UserWarning, match="checkpoint refused.*falling back"):
        resume(log)
    with open(log, "rb") as f:
        assert f.read() == ref_log


def test_only_corrupt_checkpoints_is_a_clear_error(finished, tmp_path):
    log = _copy_run(finished, tmp_path)
    for p in ckp.candidates(log + ".ckpt"):
        with open(p, "r+b") as f:
            f.truncate(100)
    r = cli("resume", log)
    assert r.returncode == 2
    assert r.stderr.startswith("asyncnet: error: no usable checkpoint:")
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_a_checkpoint_of_another_scenario_is_refused(finished, tmp_path):
    log = _copy_run(finished, tmp_path)
    other = shortened("diffusion_exact", 40, tmp_path)
    asyncnet.run(other, log=str(tmp_path / "o.log"), checkpoint_every=10)
    foreign = ckp.candidates(str(tmp_path / "o.log.ckpt"))[0]
    mine = ckp.candidates(log + ".ckpt")
    for p in mine:
        os.remove(p)
    os.replace(foreign, os.path.join(log + ".ckpt", os.path.basename(foreign)))
    r = cli("resume", log)
    assert r.returncode == 2
    assert "a checkpoint of another scenario or seed" in r.stderr
    with pytest.raises(ckp.CheckpointError, match="another scenario"):
        ckp.read(ckp.candidates(log + ".ckpt")[0],
                 expect_id=ckp.scenario_id("x", 0))


def test_an_altered_agent_state_changes_the_log(finished, tmp_path):
    """Negative control: the comparisons above can fail. One synapse's weight
    changed in a (re-sealed) checkpoint gives a different log."""
    _, _, ref_log, _ = finished
    log = _copy_run(finished, tmp_path)
    for p in ckp.candidates(log + ".ckpt"):
        ck = ckp.read(p)
        from asyncnet.ckstate import Packer, Unpacker, conv
        unit = Unpacker().unpack(ck["agents"]["l0->l1"])
        unit["model"][1]["W"][1][0, 0] += 1e-9
        ck["agents"]["l0->l1"] = Packer().pack(conv(unit))
        body = {k: v for k, v in ck.items() if k not in ("format", "version")}
        ckp.write(os.path.dirname(p), body)
    resume(log)
    with open(log, "rb") as f:
        assert f.read() != ref_log


def test_resume_cli_errors(tmp_path, capsys, monkeypatch):
    from asyncnet.cli import main
    monkeypatch.setenv("MPLBACKEND", "agg")  # main sets it; undone after the test

    def err(*argv) -> str:
        with pytest.raises(SystemExit) if argv[0] == "run" and "nan" in argv else _nothing():
            code = main(list(argv))
            assert code == 2
        e = capsys.readouterr().err
        assert e.startswith("asyncnet: error: ") and e.count("\n") == 1, e
        return e

    err("resume", str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    assert "no checkpoint in it" in err("resume", str(tmp_path / "empty"))
    sc = shortened("quickstart", 50, tmp_path)
    assert "error: --checkpoint-every must be a positive number" in err(
        "run", sc, "--checkpoint-every", "0", "-q")
    assert "needs --checkpoint-every" in err("run", sc, "--checkpoint-dir", str(tmp_path), "-q")
    assert not os.path.exists(tmp_path / "runs")  # refused before anything ran


def test_resume_of_one_checkpoint_file_names_its_directory(finished, tmp_path, capsys):
    """``asyncnet resume DIR/ck-....ckpt`` said "not an asyncnet event log"."""
    from asyncnet.cli import main
    d = tmp_path / "ck"
    shutil.copytree(finished[1] / "a.log.ckpt", d)
    one = sorted(d.glob("ck-*.ckpt"))[0]
    assert main(["resume", str(one), "-q"]) == 2
    e = capsys.readouterr().err
    assert e == (f"asyncnet: error: {one}: one checkpoint file; resume takes its directory: "
                 f"asyncnet resume {d} continues from the newest whole checkpoint there\n")


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_checkpoint_codec_round_trip():
    """The state codec keeps types, dtypes, shapes, aliasing and big integers."""
    from collections import deque

    from asyncnet.ckstate import Packer, Unpacker, conv
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    v = {"a": a, "again": a, "b": np.array([True, False]), "f32": np.float32(1.5),
         (1, 2.0): [(3, "x"), None], "big": 2**100, "dq": deque([1.0, 2.0], maxlen=3),
         "s": {1, 2}, 5: b"raw"}
    out = Unpacker().unpack(Packer().pack(conv(v)))
    assert out["a"].dtype == np.int32 and np.array_equal(out["a"], a)
    assert out["again"] is out["a"]
    assert out["b"].dtype == bool and out["f32"].dtype == np.float32
    assert out[(1, 2.0)] == [(3, "x"), None] and out["big"] == 2**100
    assert out["dq"] == deque([1.0, 2.0]) and out["dq"].maxlen == 3
    assert out["s"] == {1, 2} and out[5] == b"raw"
    evil = msgpack.packb(msgpack.ExtType(10, b"\x02|O\x01" + (1).to_bytes(8, "little")
                                         + b"x" * 8))
    with pytest.raises(ValueError, match="refused"):
        Unpacker().unpack(evil)
    short = msgpack.packb(msgpack.ExtType(10, b"\x03<f8\x01" + (2).to_bytes(8, "little")
                                          + b"x" * 8))
    with pytest.raises(ValueError, match="does not match"):
        Unpacker().unpack(short)


@pytest.mark.parametrize("name,duration,every,workers", [
    ("quickstart", 300, 70, 2),
    pytest.param("ep_async", 200, 45, 3, marks=pytest.mark.slow),
    pytest.param("stlp_control_flip", 150, 40, 2, marks=pytest.mark.slow)])
def test_resume_on_another_number_of_workers(name, duration, every, workers, tmp_path):
    """A checkpoint of an in-process run, killed, resumes on N workers to the same bytes."""
    sc = shortened(name, duration, tmp_path)
    ref = reference(sc, tmp_path)
    log = f"{tmp_path}/run.log"
    r = cli("run", sc, "--log", log, "--save-state", f"{tmp_path}/run.npz",
            "--checkpoint-every", str(every), "-q", victim=("--at", f"{2.5 * every:g}"))
    assert r.returncode == -9, r.stderr
    r = cli("resume", log, "--workers", str(workers), "--json", "-q")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert len(got.pop("cluster")["workers"]) == workers
    with open(log, "rb") as f, open(f"{tmp_path}/ref.log", "rb") as g:
        assert f.read() == g.read()
    assert stable(got) == stable(ref)
    assert same_npz(f"{tmp_path}/run.npz", f"{tmp_path}/ref.npz")


@pytest.mark.parametrize("workers", [2, 3])
def test_resume_on_workers_while_a_latency_trace_is_open(workers, tmp_path):
    """quickstart traces its input changes over 8-10.5, 16-18.5, ...: resumed on
    workers from the checkpoint at 18, inside a trace, the workers learn the open
    cones from the coordinator's restored trace (asyncnet/cluster/cones.py) and
    the latencies, the log and the state are the in-process run's."""
    sc = shortened("quickstart", 20, tmp_path)
    ref = reference(sc, tmp_path)
    log = f"{tmp_path}/run.log"
    r = cli("run", sc, "--log", log, "--save-state", f"{tmp_path}/run.npz",
            "--checkpoint-every", "9", "-q")
    assert r.returncode == 0, r.stderr
    assert os.path.exists(f"{log}.ckpt/ck-{18 * 10**6:020d}.ckpt")
    unfinish(log)  # a complete run is not resumed
    r = cli("resume", log, "--workers", str(workers), "--json", "-q")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    got.pop("cluster")
    assert ref["latency"]["input_changes_traced"] == 2
    assert stable(got) == stable(ref)
    with open(log, "rb") as f, open(f"{tmp_path}/ref.log", "rb") as g:
        assert f.read() == g.read()
    assert same_npz(f"{tmp_path}/run.npz", f"{tmp_path}/ref.npz")


def test_resume_on_workers_refuses_wake_monitors(tmp_path):
    sc = shortened("diffusion_exact", 40, tmp_path)  # the exactness analysis watches wakes
    asyncnet.run(sc, log=str(tmp_path / "a.log"), checkpoint_every=10)
    unfinish(tmp_path / "a.log")  # a complete run is not resumed
    r = cli("resume", str(tmp_path / "a.log"), "--workers", "2")
    assert r.returncode == 2 and "resume this run in one process" in r.stderr


def test_gradep_state_directory_resumes(tmp_path, capsys, monkeypatch):
    """``asyncnet resume STATE_DIR`` continues a GradEP training from its last step
    checkpoint to the same losses and parameters as an unbroken run."""
    from asyncnet.cli import main
    monkeypatch.setenv("MPLBACKEND", "agg")  # main sets it; undone after the test
    from asyncnet.scenario import load
    from asyncnet.schemes.gradep import runner as R
    from asyncnet.schemes.gradep import scheme as S
    from asyncnet.schemes.gradep import train as T
    with open(os.path.join(ROOT, "scenarios", "floweqprop_short.toml")) as f:
        text = f.read()
    for a, b in (('size = 128, role = "hidden"', 'size = 6, role = "hidden"'),
                 ('size = 128, role = "output"', 'size = 5, role = "output"'),
                 ("free_steps = 300", "free_steps = 10"), ("nudge_steps = 300", "nudge_steps = 10"),
                 ("steps = 50", "steps = 4"), ("checkpoint_every = 10", "checkpoint_every = 2"),
                 ("workers = 2", "workers = 1"), ("batch = 1797", "batch = 12"),
                 ('dtype = "float32"', 'dtype = "float64"')):
        assert a in text
        text = text.replace(a, b)
    sc_path = tmp_path / "g.toml"
    sc_path.write_text(text)
    sc = load(str(sc_path))
    unbroken = str(tmp_path / "unbroken")
    assert S.run_scenario(sc, quiet=True, json_out=True, state_dir=unbroken) == 0
    ref = json.loads(capsys.readouterr().out.splitlines()[-1])
    with open(os.path.join(unbroken, "scenario.toml")) as f:  # kept beside the checkpoints
        assert f.read() == text
    # the same run stopped after step 2 (as if killed after that checkpoint)
    rule = sc.build_rule()
    rule.sizes = T.sizes_of(sc.build_network())
    d = str(tmp_path / "stopped")
    R.train(rule, seed=sc.seed, batch=12, state_dir=d, steps=2)
    with open(os.path.join(d, "scenario.toml"), "w") as f:
        f.write(text)
    assert main(["resume", d, "--json", "-q"]) == 0
    got = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert got["resumed_from"] == 2 and got["steps"] == 4
    assert got["losses"] == ref["losses"]
    a, b = T.load_checkpoint(d), T.load_checkpoint(unbroken)
    for k in b:
        if k.startswith(("param", "adam")):
            assert np.array_equal(a[k], b[k]), k
    os.remove(os.path.join(d, "scenario.toml"))
    assert main(["resume", d]) == 2
    assert "continue it with asyncnet run SCENARIO" in capsys.readouterr().err


@pytest.mark.slow
def test_sigkill_at_random_wall_clock_moments(tmp_path):
    """Kills at seeded wall-clock delays land anywhere: in a checkpoint write, between
    two records, before the first checkpoint or after the end. Each outcome is checked:
    a resume ends with the reference bytes; with no checkpoint yet it says so (exit 2)."""
    import time
    sc = shortened("quickstart", 20000, tmp_path)
    ref = reference(sc, tmp_path)
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log = f"{tmp_path}/run.log"
    outcomes = []
    for delay in np.random.default_rng(14).uniform(1.0, 6.0, size=6):
        for p in glob.glob(f"{log}*") + glob.glob(f"{log}.ckpt/*"):
            if os.path.isfile(p):
                os.remove(p)
        proc = subprocess.Popen([sys.executable, "-m", "asyncnet", "run", sc, "--log", log,
                                 "--save-state", f"{tmp_path}/run.npz", "--checkpoint-every",
                                 "1000", "-q"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        r = cli("resume", log, "--json", "-q")
        if r.returncode == 2 and "no checkpoint in it" in r.stderr or \
                "no such checkpoint directory" in r.stderr:
            outcomes.append("before the first checkpoint")
            continue  # killed before its first checkpoint: nothing to resume
        assert r.returncode == 0, r.stderr
        with open(log, "rb") as f, open(f"{tmp_path}/ref.log", "rb") as g:
            assert f.read() == g.read()
        if "already reached its end" in r.stderr:  # finished before the kill: left alone
            assert proc.returncode == 0 and not r.stdout
            outcomes.append("had finished")
            continue
        assert stable(json.loads(r.stdout)) == stable(ref)
        assert same_npz(f"{tmp_path}/run.npz", f"{tmp_path}/ref.npz")
        outcomes.append("resumed" if proc.returncode == -9 else "had finished")
    print(outcomes)


@pytest.mark.parametrize("workers,victim,resume_on", [
    (2, 1, 1),
    pytest.param(3, 2, 2, marks=pytest.mark.slow),
    pytest.param(2, 0, 3, marks=pytest.mark.slow)])
def test_a_lost_worker_stops_the_run_and_resume_finishes_it(workers, victim, resume_on,
                                                             tmp_path):
    """A distributed run writing checkpoints loses a worker (SIGKILL at a seeded instant):
    it stops with the message it gives today; resume finishes it on another worker count."""
    sc = shortened("quickstart", 300, tmp_path)
    ref = reference(sc, tmp_path)
    log = f"{tmp_path}/run.log"
    t = np.random.default_rng(workers * 10 + victim).uniform(140, 290)
    r = cli("run", sc, "--log", log, "--save-state", f"{tmp_path}/run.npz", "--workers",
            str(workers), "--checkpoint-every", "70", "-q",
            victim=("--kill-worker", f"{t:.4f}", str(victim)))
    assert r.returncode == 2 and "died (exit status -9)" in r.stderr, r.stderr
    r = cli("resume", log, "--workers", str(resume_on), "--json", "-q")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    got.pop("cluster", None)
    assert (tmp_path / "run.log").read_bytes() == (tmp_path / "ref.log").read_bytes()
    assert stable(got) == stable(ref)
    assert same_npz(f"{tmp_path}/run.npz", f"{tmp_path}/ref.npz")


@pytest.mark.parametrize("workers,victim", [(2, 1), pytest.param(3, 0, marks=pytest.mark.slow)])
def test_restart_workers_goes_on_to_the_same_log(workers, victim, tmp_path):
    sc = shortened("quickstart", 300, tmp_path)
    ref = reference(sc, tmp_path)
    log = f"{tmp_path}/run.log"
    t = np.random.default_rng(workers).uniform(80, 290)
    r = cli("run", sc, "--log", log, "--save-state", f"{tmp_path}/run.npz", "--workers",
            str(workers), "--checkpoint-every", "70", "--restart-workers", "--json", "-q",
            victim=("--kill-worker", f"{t:.4f}", str(victim)))
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    restarts = got.pop("cluster")["restarts"]
    assert restarts["count"] == 1 and "died (exit status -9)" in restarts["errors"][0]
    assert (tmp_path / "run.log").read_bytes() == (tmp_path / "ref.log").read_bytes()
    assert stable(got) == stable(ref)
    assert same_npz(f"{tmp_path}/run.npz", f"{tmp_path}/ref.npz")
    r = cli("run", sc, "--workers", "2", "--restart-workers", "-q")
    assert r.returncode == 2 and "needs --workers N (or --cluster) and --checkpoint-every" \
        in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("t_kill", [30.5, 120.5])
def test_api_restart_keeps_recordings(t_kill, tmp_path, monkeypatch):
    """A worker lost before the first checkpoint (a restart from the start: the failed
    attempt's samples are forgotten) or after it: the recordings of an unbroken run."""
    import signal

    import asyncnet.cluster.coordinator as coord
    from tests.checkpoint_victim import _workers
    sc = shortened("quickstart", 200, tmp_path)
    want = asyncnet.run(sc, record={"l1": ["state"]}, period=5.0)
    orig, done = coord.attach_analyses, []

    def attach(sc_, ctx):
        out = orig(sc_, ctx)
        ctx.engine.at(t_kill, lambda e, t: done or done.append(
            os.kill(_workers()[1], signal.SIGKILL)))
        return out

    monkeypatch.setattr(coord, "attach_analyses", attach)
    got = asyncnet.run(sc, record={"l1": ["state"]}, period=5.0, workers=2,
                       checkpoint_every=50, checkpoint_dir=str(tmp_path / "ck"),
                       restart_workers=1)
    assert done and got.summary["cluster"]["restarts"]["count"] == 1
    assert np.array_equal(got.times, want.times)
    assert np.array_equal(got.recorded["l1"]["state"], want.recorded["l1"]["state"])


class _Slotted:
    __slots__ = ("w", "x")

    def __init__(self) -> None:
        self.w = np.zeros(2)
        self.x = 0.0


class _SlottedChild(_Slotted):
    __slots__ = ()  # no slots of its own: its state lives in the parent's


def test_a_subclass_without_slots_of_its_own_is_captured_and_restored():
    """A model class that adds no slots (e.g. diffusion's one-neuron synapse) keeps its state."""
    from asyncnet.ckstate import Walker, restore
    src = _SlottedChild()
    src.w[:] = [1.5, -2.0]
    src.x = 3.25
    node = Walker([]).node(src)
    assert node is not None
    dst = _SlottedChild()
    restore(node, lambda: dst, lambda v: None)
    assert dst.w.tolist() == [1.5, -2.0] and dst.x == 3.25


def test_a_copied_run_resumes_into_its_own_files_not_the_original(finished, tmp_path):
    """Resuming a copy of a run's directory rewrote the original run's log and
    checkpoints; a moved one was refused ('the event log ... is missing')."""
    sc, d, ref_log, res = finished
    a = tmp_path / "a"
    shutil.copytree(d, a)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    before = {p: p.read_bytes() for p in a.rglob("*") if p.is_file()}
    got = asyncnet.resume(str(b / "a.log"))
    assert {p: p.read_bytes() for p in a.rglob("*") if p.is_file()} == before
    assert (b / "a.log").read_bytes() == ref_log
    assert got.summary["result"] == res.summary["result"]
    moved = tmp_path / "moved"
    a.rename(moved)
    asyncnet.resume(str(moved / "a.log.ckpt"))  # the log beside the directory
    assert (moved / "a.log").read_bytes() == ref_log
    lone = tmp_path / "lone.ckpt"
    shutil.copytree(moved / "a.log.ckpt", lone / "x")
    with pytest.raises(ValueError, match="since moved or copied.* give the log they go with"):
        asyncnet.resume(str(lone / "x"))
