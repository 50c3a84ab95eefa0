"""GradEP through the engine: the same numbers as the plain-numpy face.

The engine's agents exchange messages with delays and learn from what they
hold when the teacher's phase codes reach them; the face composes the same
local arithmetic synchronously. After several training steps (same init,
same OT-paired batches, float64) parameters and Adam states agree to 1e-10.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from asyncnet.schemes.gradep import physics as P
from asyncnet.schemes.gradep import runner as R
from asyncnet.schemes.gradep import train as T
from asyncnet.schemes.gradep.agents import GradEP
from asyncnet.schemes.gradep.data import make_batch
from asyncnet.schemes.gradep.sampling import sample

SIZES = (6, 5, 4)
X = np.random.default_rng(3).uniform(-1, 1, (40, 6))


def _rule(**kw):
    base = dict(dtype="float64", free_steps=25, nudge_steps=20, clip_mode="local", clip=0.05,
                lr=1e-2, sizes=SIZES)
    return GradEP(**{**base, **kw})


def _data(B):
    return lambda s: make_batch(5, s, B, X=X, dtype="float64")


def _max_diff(a, b):
    return max(float(np.abs(np.asarray(a[k], float) - np.asarray(b[k], float)).max())
               for k in b)


@pytest.mark.parametrize("clip_mode", ["local", "none"])
def test_engine_step_equals_numpy_face(clip_mode):
    B, steps = 7, 5
    e = T.make_run("engine", _rule(clip_mode=clip_mode), 5, B, steps, data=_data(B),
                   sizes=SIZES)
    f = T.make_run("face", _rule(clip_mode=clip_mode), 5, B, steps, data=_data(B),
                   sizes=SIZES)
    init = f.state()
    for k in range(1, steps + 1):
        e.run_to(k)
        f.run_to(k)
        assert _max_diff(e.state(), f.state()) <= 1e-10
    assert np.allclose(e.losses(), f.losses(), rtol=0, atol=1e-12)
    assert len(e.losses()) == steps
    moved = _max_diff(f.state(), init)
    assert moved > 1e-3  # Adam really stepped
    assert int(e.state()["adam/W0/t"]) == steps


def test_local_and_global_clip_differ_in_the_face():
    B = 7
    rules = [_rule(clip_mode=m, backend="face") for m in ("global", "local")]
    g, lo = (T.make_run("face", r, 5, B, 3, data=_data(B), sizes=SIZES) for r in rules)
    g.run_to(3)
    lo.run_to(3)
    assert _max_diff(g.state(), lo.state()) > 1e-6


def test_global_clip_is_refused_by_the_engine():
    with pytest.raises(P.GradEPError, match="clip_mode"):
        GradEP(clip_mode="global", backend="engine")
    GradEP(clip_mode="global", backend="face")


def test_split_batch_and_resume(tmp_path):
    """Two processes (batch halves, merged sums) = one face; a resumed run = an unbroken one."""
    kw = dict(free_steps=10, nudge_steps=10, checkpoint_every=2, steps=4, sizes=(64, 6, 5))
    one = R.train(_rule(backend="face", workers=1, **kw), seed=1, batch=12,
                  state_dir=str(tmp_path / "one"))
    two = R.train(_rule(backend="engine", workers=2, **kw), seed=1, batch=12,
                  state_dir=str(tmp_path / "two"))
    assert np.allclose(one["losses"], two["losses"], rtol=0, atol=1e-12)
    a, b = T.load_checkpoint(str(tmp_path / "one")), T.load_checkpoint(str(tmp_path / "two"))
    assert _max_diff(a, {k: v for k, v in b.items() if k.startswith(("param", "adam"))}) < 1e-10
    # three workers share the batches (each makes one in three, then they swap rows);
    # 4 steps is not a multiple of 3, and a 2-worker run resumed at an odd step
    three = R.train(_rule(backend="engine", workers=3, **kw), seed=1, batch=12,
                    state_dir=str(tmp_path / "three"))
    assert np.allclose(one["losses"], three["losses"], rtol=0, atol=1e-12)
    odd = str(tmp_path / "odd")
    R.train(_rule(backend="engine", workers=2, **kw), seed=1, batch=12, state_dir=odd, steps=1)
    r = R.train(_rule(backend="engine", workers=2, **{**kw, "checkpoint_every": 3}), seed=1,
                batch=12, state_dir=odd)
    assert r["resumed_from"] == 1
    assert np.allclose(one["losses"], r["losses"], rtol=0, atol=1e-12)
    # interrupted after 2 steps, then the same command again
    d = str(tmp_path / "resumed")
    R.train(_rule(backend="engine", workers=1, **kw), seed=1, batch=12, state_dir=d, steps=2)
    r = R.train(_rule(backend="engine", workers=1, **kw), seed=1, batch=12, state_dir=d)
    assert r["resumed_from"] == 2 and r["steps"] == 4
    u = R.train(_rule(backend="engine", workers=1, **kw), seed=1, batch=12,
                state_dir=str(tmp_path / "unbroken"))
    c1, c2 = T.load_checkpoint(d), T.load_checkpoint(str(tmp_path / "unbroken"))
    for k in c2:
        if k.startswith(("param", "adam")) or k == "losses":
            assert np.array_equal(c1[k], c2[k]), k
    assert u["losses"] == r["losses"]
    with pytest.raises(P.GradEPError, match="lr"):  # other settings, same directory
        R.train(_rule(backend="engine", lr=2e-2, **kw), seed=1, batch=12, state_dir=d)


def test_sampling_writes_npz_and_grid(tmp_path):
    c = P.Config(dtype="float64", free_steps=20, sizes=(64, 8, 8))
    model = (c, P.init_params(c.sizes, 0))
    for mode in ("energy", "spring"):
        xs = sample(model, n=9, steps=3, mode=mode)
        assert xs.shape == (9, 64) and xs.min() >= -1 and xs.max() <= 1
    d = tmp_path / "run"
    R.train(_rule(backend="face", clip_mode="global", free_steps=10, nudge_steps=10, steps=1,
                  checkpoint_every=1, sizes=(64, 6, 5)), seed=0, batch=10, state_dir=str(d))
    out = tmp_path / "s"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    r = subprocess.run([sys.executable, "-m", "asyncnet", "sample", str(d), "--steps", "3",
                        "--mode", "spring", "-n", "16", "-o", str(out)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    z = np.load(str(out) + ".npz")
    assert z["samples"].shape == (16, 64)
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_scenario_errors_name_the_keys(tmp_path):
    text = open("scenarios/floweqprop_short.toml").read()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("eps = 0.1", "eps = 0.2"))
    r = subprocess.run([sys.executable, "-m", "asyncnet", "run", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "eps" in r.stderr and "Traceback" not in r.stderr
    bad.write_text(text.replace('clip_mode = "local"', 'clip_mode = "global"'))
    r = subprocess.run([sys.executable, "-m", "asyncnet", "run", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "clip_mode" in r.stderr


@pytest.mark.slow
def test_short_run_lowers_the_flow_loss(tmp_path):
    """scenarios/floweqprop_short.toml: 50 full-batch steps, 2.7 -> below 0.8."""
    from asyncnet.scenario import load
    sc = load("scenarios/floweqprop_short.toml")
    rule = sc.build_rule()
    s = R.train(rule, seed=sc.seed, batch=sc.data["batch"], state_dir=str(tmp_path / "short"))
    assert 2.6 < s["losses"][0] < 2.8
    assert s["losses"][-1] < 0.8


_REAL_WORKER = R._worker


def _dies_as_shard_one(foreign, *args):
    """A worker that is killed at once when it is shard 1 (args[7] is the shard)."""
    if args[7] == 1:
        os._exit(9)
    _REAL_WORKER(foreign, *args)


def test_a_dead_worker_stops_the_run_with_a_clear_error(tmp_path, monkeypatch):
    """Shard 1 dies before its first exchange: shard 0 must see its pipe close (not
    wait for it forever), and the error names the worker that died, not the one
    that lost it."""
    import signal
    monkeypatch.setattr(R, "_worker", _dies_as_shard_one)
    codes = []
    real_failure = R._failure

    def failure(procs, first, state_dir):  # every worker's exit code, once they end
        for p in procs:
            p.join(timeout=20)
        codes.append([p.exitcode for p in procs])
        return real_failure(procs, first, state_dir)
    monkeypatch.setattr(R, "_failure", failure)
    old = signal.signal(signal.SIGALRM, lambda *a: pytest.fail("the run hung"))
    signal.alarm(120)
    try:
        with pytest.raises(R.WorkerDied, match="worker 1 of 2 ended with exit code 9"):
            R.train(_rule(backend="engine", workers=2, steps=2, checkpoint_every=1,
                          sizes=(64, 6, 5)), seed=1, batch=12, state_dir=str(tmp_path / "d"))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    # shard 0 saw its pipe close (it did not wait to be stopped by the parent)
    assert codes == [[R.PEER_LOST, 9]]
