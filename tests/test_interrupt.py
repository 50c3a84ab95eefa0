"""Ctrl-C and SIGTERM name what a run keeps, and the command that continues it.

A terminal's Ctrl-C goes to the whole process group: the forked workers of a
GradEP run got it too and each printed a traceback, and every interrupt said
"a log being written ends ..." whether the run wrote a log, checkpoints, a
training state directory, or nothing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tomli_w

from .test_hardening import ROOT, alive, children_of, cli, scenario

pytest.importorskip("sklearn")  # GradEP's digits


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args: list[str]) -> subprocess.Popen:
    """``asyncnet ARGS`` in a process group of its own, as a terminal runs it."""
    return subprocess.Popen([sys.executable, "-m", "asyncnet", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_default_sigint)


def _wait_for(cond, what: str, limit: float = 90.0) -> None:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < limit, f"never: {what}"
        time.sleep(0.02)


def _gradep_scenario(tmp_path, steps: int) -> tuple[str, str]:
    import tomllib
    with open(os.path.join(ROOT, "scenarios", "floweqprop_short.toml"), "rb") as f:
        doc = tomllib.load(f)
    doc["rule"].update(steps=steps, checkpoint_every=1, workers=2, free_steps=5,
                       nudge_steps=5)
    doc["data"]["batch"] = 32
    state = str(tmp_path / "state")
    doc["output"]["state_dir"] = state
    path = tmp_path / "g.toml"
    path.write_text(tomli_w.dumps(doc), encoding="utf-8")
    return str(path), state


def test_ctrl_c_to_a_gradep_run_stops_every_worker_without_a_traceback(tmp_path):
    path, state = _gradep_scenario(tmp_path, steps=2000)
    p = _start(["run", path, "-q"])
    ck = os.path.join(state, "checkpoint.npz")
    kids: list[int] = []

    def running() -> bool:
        nonlocal kids
        kids = children_of(p.pid)
        return os.path.exists(ck) and len(kids) >= 2
    _wait_for(running, "a checkpoint with both workers running")
    os.killpg(p.pid, signal.SIGINT)  # Ctrl-C: the parent and both workers
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130 and "Traceback" not in err, err
    _wait_for(lambda: not any(alive(k) for k in kids), "the workers gone", 30)
    with np.load(ck) as z:
        kept = int(z["step"])
    assert err.strip().splitlines()[-1] == (
        f"asyncnet: interrupted; {state} keeps step {kept}: the same command, or "
        f"asyncnet resume {state}, continues from it")
    assert out == ""  # -q: nothing on stdout before the summary, and no summary
    # the command it names continues the run, and --json's stdout is one JSON object
    r = cli("resume", state, "--json", timeout=180)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["resumed_from"] == kept and got["steps"] == 2000
    assert re.search(r"^gradep: step 2000/2000 loss ", r.stderr, re.M)  # progress: stderr


def test_a_gradep_run_interrupted_before_its_first_checkpoint_says_so(tmp_path):
    path, state = _gradep_scenario(tmp_path, steps=5)
    p = _start(["run", path, "-q"])
    _wait_for(lambda: len(children_of(p.pid)) >= 2, "both workers started")
    os.killpg(p.pid, signal.SIGTERM)  # a batch system's time limit
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143 and "Traceback" not in err, err
    ck = os.path.join(state, "checkpoint.npz")
    if os.path.exists(ck):  # a slow start: the first step was done before the signal
        with np.load(ck) as z:
            said = (f"{state} keeps step {int(z['step'])}: the same command, or asyncnet "
                    f"resume {state}, continues from it")
    else:
        said = f"no checkpoint was written yet in {state}: the same command starts again"
    assert err.strip().splitlines()[-1] == f"asyncnet: terminated (SIGTERM); {said}"


@pytest.mark.parametrize("how", ["checkpoints", "no log"])
def test_an_interrupted_run_names_its_newest_checkpoint_or_that_nothing_is_kept(tmp_path,
                                                                                how):
    log, ckdir = tmp_path / "r.log", tmp_path / "ck"
    extra = (["--log", str(log), "--checkpoint-every", "50", "--checkpoint-dir", str(ckdir)]
             if how == "checkpoints" else ["--no-log"])
    p = _start(["run", scenario(tmp_path, 1e6), "-q", *extra])
    if how == "checkpoints":
        _wait_for(lambda: ckdir.is_dir() and len(list(ckdir.glob("ck-*.ckpt"))) >= 2,
                  "two checkpoints")
    else:
        time.sleep(1.5)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    if how == "no log":
        assert last == "asyncnet: interrupted; no log or checkpoint was being written"
        return
    newest = max(ckdir.glob("ck-*.ckpt"))
    t = int(newest.name[3:-5]) / 1_000_000
    assert last == (f"asyncnet: interrupted; the log {log} ends at its last whole instant "
                    f"(replay --verify checks it as a prefix); asyncnet resume {ckdir} "
                    f"continues from its newest checkpoint (t={t:g})")
