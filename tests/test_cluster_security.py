"""CURVE: an encrypted run gives the same log; a worker with the wrong key
cannot join; no pickle anywhere in the package."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest
import zmq

from asyncnet.cluster import simulate_distributed
from asyncnet.cluster.errors import ClusterError
from asyncnet.cluster.security import make_keys
from asyncnet.simulation import simulate

from .helpers import free_port
from .test_cluster import ROOT, shortened

QUICK = os.path.join(ROOT, "scenarios", "quickstart.toml")
pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")


def test_curve_run_is_identical(tmp_path):
    keys = tmp_path / "keys"
    make_keys(str(keys))
    sc = shortened(QUICK, 20.0)
    simulate(sc, log_path=str(tmp_path / "a.log"))
    simulate_distributed(sc, workers=2, log_path=str(tmp_path / "b.log"), keys=str(keys))
    assert (tmp_path / "a.log").read_bytes() == (tmp_path / "b.log").read_bytes()


def _remote_worker(port: int, keys) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "asyncnet", "worker", "--connect", f"tcp://127.0.0.1:{port}",
         "--keys", str(keys), "--wait", "8"], cwd=ROOT, stderr=subprocess.DEVNULL)


def test_remote_worker_with_the_key_joins(tmp_path):
    # the control for the test below: the same set-up with the authorized key works
    keys = tmp_path / "keys"
    make_keys(str(keys))
    sc = shortened(QUICK, 20.0)
    simulate(sc, log_path=str(tmp_path / "a.log"))
    port = free_port()
    remote = _remote_worker(port, keys)
    try:
        s = simulate_distributed(sc, workers=2, local=1, bind=f"tcp://127.0.0.1:{port}",
                                 keys=str(keys), join_timeout=30.0,
                                 log_path=str(tmp_path / "b.log"))
    finally:
        remote.wait(timeout=30)
    assert remote.returncode == 0
    assert s["cluster"]["workers"][1]["delivered"] > 0
    assert (tmp_path / "a.log").read_bytes() == (tmp_path / "b.log").read_bytes()


def test_worker_with_a_foreign_key_cannot_join(tmp_path):
    good, bad = tmp_path / "good", tmp_path / "bad"
    make_keys(str(good))
    make_keys(str(bad))
    # the intruder trusts the real server key but holds a client key nobody authorized
    (bad / "server.key").write_bytes((good / "server.key").read_bytes())
    sc = shortened(QUICK, 20.0)
    port = free_port()
    intruder = _remote_worker(port, bad)
    try:
        with pytest.raises(ClusterError, match="only 1 of 2 workers joined"):
            simulate_distributed(sc, workers=2, local=1, bind=f"tcp://127.0.0.1:{port}",
                                 keys=str(good), join_timeout=12.0)  # a loaded box
    finally:
        intruder.kill()
        intruder.wait()


def test_no_pickle_in_the_package():
    for path in glob.glob(os.path.join(ROOT, "asyncnet", "**", "*.py"), recursive=True):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        assert "import pickle" not in text and "allow_pickle=True" not in text, path
        assert "recv_pyobj" not in text and "send_pyobj" not in text, path


def test_keys_are_never_made_over_existing_ones(tmp_path):
    """A second ``asyncnet keys DIR`` replaced the pairs every worker had been given."""
    from asyncnet.cluster.errors import KeysError
    if not zmq.has("curve"):
        pytest.skip("libzmq without CURVE")
    make_keys(str(tmp_path))
    before = {p: open(p, "rb").read() for p in glob.glob(str(tmp_path / "*key*"))}
    with pytest.raises(KeysError, match="already holds keys .* remove them first"):
        make_keys(str(tmp_path))
    assert {p: open(p, "rb").read() for p in glob.glob(str(tmp_path / "*key*"))} == before
