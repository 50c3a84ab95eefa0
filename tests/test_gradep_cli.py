"""``asyncnet run`` of a GradEP scenario: its outputs and its ends, as a user meets them.

A training run whose loss blew up (an lr far too large) ran every step and
ended with exit 0; the progress lines went to stdout, so ``--json`` was not
one JSON object, and ``-q`` did not silence them.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from .test_hardening import cli, strict_json
from .test_interrupt import _gradep_scenario

pytest.importorskip("sklearn")  # GradEP's digits


def _with(path: str, **rule) -> str:
    import tomllib

    import tomli_w
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    doc["rule"].update(rule)
    with open(path, "w", encoding="utf-8") as f:
        f.write(tomli_w.dumps(doc))
    return path


def test_a_diverging_training_run_stops_at_its_next_checkpoint_with_exit_3(tmp_path):
    path, state = _gradep_scenario(tmp_path, steps=30)
    _with(path, lr=1e6)
    r = cli("run", path, "-q")
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    with np.load(os.path.join(state, "checkpoint.npz")) as z:
        losses, step = z["losses"], int(z["step"])
    bad = next(k for k, v in enumerate(losses) if not np.isfinite(v) or abs(v) > 1e12)
    assert step == bad + 1 < 30  # stopped at the checkpoint after the first bad step
    assert r.stderr.startswith(f"asyncnet: error: the run diverged: the flow loss at step "
                               f"{bad} is ")
    assert r.stdout.startswith("scenario  ") and f"run       {step} steps in {state}" \
        in r.stdout
    j = cli("run", path, "--json")  # continued: one more checkpoint, the same verdict
    got = strict_json(j.stdout)
    assert j.returncode == 3 and got["diverged"]["step"] == bad
    assert got["resumed_from"] == step and got["steps"] == step + 1


def test_json_is_the_only_thing_on_stdout_and_quiet_is_quiet(tmp_path):
    path, state = _gradep_scenario(tmp_path, steps=2)
    r = cli("run", path, "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)  # the whole of stdout: one object
    assert got["steps"] == 2 and len(got["losses"]) == 2 and "diverged" not in got
    assert "gradep: step 2/2 loss " in r.stderr  # progress on stderr
    _with(path, steps=3)
    q = cli("run", path, "-q")
    assert q.returncode == 0 and q.stderr == "", q.stderr
    assert "this session from step 2" in q.stdout


def test_the_python_api_refuses_a_gradep_scenario_naming_the_call_that_trains_it(tmp_path):
    """``asyncnet.run`` of a gradep file failed on its data ("unknown data kind
    'digits_flow'"), and ``asyncnet.resume`` of its state directory said it held
    no checkpoint."""
    import asyncnet
    path, state = _gradep_scenario(tmp_path, steps=2)
    with pytest.raises(asyncnet.ScenarioError, match=r"runs its own training loop .*"
                       r"asyncnet\.schemes\.gradep\.scheme\.train_scenario\(scenario\)"):
        asyncnet.run(path)
    from asyncnet.schemes.gradep.scheme import train_scenario  # the call it names
    got = train_scenario(asyncnet.Scenario.from_toml(path))
    assert got["steps"] == 2 and got["state_dir"] == state and "diverged" not in got
    with pytest.raises(ValueError, match=f"{state}: the state directory of a training run "
                       f"with its own loop .* asyncnet resume {state} continues it"):
        asyncnet.resume(state)
    r = cli("run", path, "--json")  # the shell's run agrees with it: the same state, done
    assert r.returncode == 0 and json.loads(r.stdout)["losses"] == got["losses"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> str:
    """The state directory of a one-step gradep run."""
    tmp = tmp_path_factory.mktemp("trained")
    path, state = _gradep_scenario(tmp, steps=1)
    r = cli("run", path, "-q")
    assert r.returncode == 0, r.stderr
    return state


def _one_line(r, *words: str) -> None:
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("asyncnet: error: "), r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.mark.parametrize("flag, value", [("-n", "0"), ("-n", "-3"), ("--steps", "0"),
                                         ("--threads", "0"), ("--threads", "-1")])
def test_sample_sizes_below_one_are_refused(trained, tmp_path, flag, value):
    _one_line(cli("sample", trained, flag, value, "-o", str(tmp_path / "s")), flag,
              "must be at least 1")


def test_sample_more_than_memory_holds_is_one_line(trained, tmp_path):
    _one_line(cli("sample", trained, "-n", str(10**10), "-o", str(tmp_path / "s")),
              "not enough memory")


def test_sample_of_what_is_no_gradep_checkpoint_names_it(trained, tmp_path):
    text, other, empty = tmp_path / "t.txt", tmp_path / "o.npz", tmp_path / "d"
    text.write_text("hello")
    np.savez(other, samples=np.zeros(3))
    empty.mkdir()
    for what, words in ((text, "not a gradep checkpoint"),
                        (other, "an .npz, but not a gradep checkpoint"),
                        (empty, "no checkpoint.npz in it")):
        _one_line(cli("sample", str(what), "-o", str(tmp_path / "s")), f"{what}: ", words)


@pytest.mark.parametrize("target", ["checkpoint", "checkpoint.png", "steps/step_00001"])
def test_sample_never_writes_over_a_checkpoint(trained, target):
    """``-o STATE/checkpoint`` replaced the run's checkpoint with the samples."""
    ck = os.path.join(trained, "checkpoint.npz")
    step = os.path.join(trained, "steps", "step_00001.npz")
    before = {p: open(p, "rb").read() for p in (ck, step)}
    _one_line(cli("sample", trained, "-o", os.path.join(trained, target)), "overwrite")
    assert {p: open(p, "rb").read() for p in (ck, step)} == before
    assert not os.path.exists(os.path.join(trained, "checkpoint.png"))


def _edit(path: str, fn) -> str:
    import tomllib

    import tomli_w
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    fn(doc)
    with open(path, "w", encoding="utf-8") as f:
        f.write(tomli_w.dumps(doc))
    return path


def _sizes(doc, sizes):
    for node, size in zip(doc["network"]["nodes"], sizes, strict=True):
        node["size"] = size


def _rename(doc):
    for node in doc["network"]["nodes"]:
        node["name"] = "p" + node["name"]
    for e in doc["network"]["edges"]:
        e["pre"], e["post"] = "p" + e["pre"], "p" + e["post"]


@pytest.mark.parametrize("change, words", [
    (lambda d: d["rule"].update(workers=0), ["[rule] workers must be at least 1, got 0"]),
    (lambda d: d["rule"].update(checkpoint_every=-2),
     ["[rule] checkpoint_every must be at least 1, got -2"]),
    (lambda d: d["data"].update(batch="all"),
     ["[data] key 'batch' must be an integer, got str 'all'"]),
    # x of 32 trained on the 64-pixel batches reshaped as something else, exit 0
    (lambda d: _sizes(d, [32, 128, 128]),
     ["[network] population x must have size 64 (the 8×8 digits' pixels), got 32"]),
    (lambda d: _sizes(d, [65, 16, 16]), ["population x must have size 64", "got 65"]),
    # a worker with no rows of the batch died with a traceback
    (lambda d: (d["rule"].update(workers=3), d["data"].update(batch=2)),
     ["[rule] workers = 3 is more than [data] batch = 2"]),
    (_rename, ["[network] rule gradep needs populations x, h1, h2",
               "this network has populations px, ph1, ph2 and edges px->ph1, ph1->ph2"]),
])
def test_a_gradep_scenario_that_cannot_work_is_one_line_naming_the_key(tmp_path, change,
                                                                      words):
    path, state = _gradep_scenario(tmp_path, steps=1)
    _one_line(cli("run", _edit(path, change), "-q"), f"{path}: ", *words)
    assert not os.path.exists(os.path.join(state, "checkpoint.npz"))


def test_a_gradep_state_dir_that_is_a_file_is_named(tmp_path):
    path, _ = _gradep_scenario(tmp_path, steps=1)
    blocker = tmp_path / "taken"
    blocker.write_text("mine")
    _edit(path, lambda d: d["output"].update(state_dir=str(blocker)))
    _one_line(cli("run", path, "-q"), f"[output] state_dir {blocker}: a file, not a directory")
    assert blocker.read_text() == "mine"


def test_two_runs_into_one_state_directory_the_second_is_refused_untouched(tmp_path):
    """Two runs trained into one directory, overwriting each other's checkpoints; and
    a run refused for other settings had already replaced the directory's scenario
    (which ``asyncnet resume`` reads)."""
    import time

    from .test_interrupt import _start
    path, state = _gradep_scenario(tmp_path, steps=2000)
    first = _start(["run", path, "-q"])
    try:
        t0 = time.monotonic()
        while not os.path.exists(os.path.join(state, "checkpoint.npz")):
            assert time.monotonic() - t0 < 90 and first.poll() is None
            time.sleep(0.02)
        text = open(os.path.join(state, "scenario.toml")).read()
        _one_line(cli("run", path, "-q"), f"{state}: another asyncnet process trains into "
                  f"this state directory")
        assert first.poll() is None  # still training, its directory its own
    finally:
        first.terminate()
        first.communicate(timeout=60)
    assert open(os.path.join(state, "scenario.toml")).read() == text
    # once it is gone, a run of other settings is refused and leaves the scenario as it was
    _edit(path, lambda d: d["rule"].update(lr=5e-3))
    _one_line(cli("run", path, "-q"), "holds a run with other settings (lr)")
    assert open(os.path.join(state, "scenario.toml")).read() == text


def test_resume_of_a_gradep_checkpoint_file_names_the_state_directory(trained):
    for f in ("checkpoint.npz", os.path.join("steps", "step_00001.npz")):
        path = os.path.join(trained, f)
        _one_line(cli("resume", path, "-q"), f"{path}: a checkpoint of a training run with "
                  f"its own loop (gradep): asyncnet resume {trained} continues it")


@pytest.mark.parametrize("flags", [["--log", "x.log"], ["--save-state", "s.npz"],
                                   ["--cluster", "c.toml"], ["--restart-workers", "2"]])
def test_flags_of_the_logged_pipeline_are_refused_for_a_gradep_run(tmp_path, flags):
    """They were ignored: no log, no saved state, no cluster, and exit 0."""
    path, state = _gradep_scenario(tmp_path, steps=1)
    _one_line(cli("run", path, "-q", *flags), f"{flags[0]}: not for rule 'gradep', which "
              f"runs its own training loop")
    assert not os.path.exists(state)


def test_workers_on_the_command_line_split_a_gradep_batch(tmp_path):
    """``--workers 3`` was ignored (the scenario's 2 ran)."""
    path, state = _gradep_scenario(tmp_path, steps=1)
    r = cli("run", path, "--workers", "3", "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["workers"] == 3 and got["steps"] == 1
    with np.load(os.path.join(state, "checkpoint.npz")) as z:
        assert json.loads(str(z["config"]))["workers"] == 3


def test_sample_of_a_diverged_state_says_so(trained, tmp_path):
    """Every sample of a state with NaN parameters was NaN, written with exit 0."""
    with np.load(os.path.join(trained, "checkpoint.npz")) as z:
        arrays = {k: z[k] for k in z.files}
    key = next(k for k in arrays if k.startswith("param/"))
    arrays[key] = np.full_like(arrays[key], np.nan)
    bad = tmp_path / "nan.npz"
    np.savez(bad, **arrays)
    out = tmp_path / "s"
    _one_line(cli("sample", str(bad), "-o", str(out)), f"parameters {key[6:]}",
              "are not finite (the run diverged)")
    assert not os.path.exists(str(out) + ".npz")
