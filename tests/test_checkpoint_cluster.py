"""Checkpoints written by distributed runs (ZeroMQ and MPI workers).

The reference is the in-process run: its checkpoint at the same instant
holds, agent by agent, the same model state, random stream, sequence
counter, timer and pending messages (messages in flight across the cut at
the checkpoint instant are in the receiving agents' inboxes); a distributed
run's checkpoint resumes in one process to the uninterrupted run's log bytes.
"""

from __future__ import annotations

import glob
import json
import os

import pytest

import asyncnet
import asyncnet.checkpoint as ckp
from asyncnet.ckstate import Unpacker
from asyncnet.messages import QUANTA
from asyncnet.scenario import load
from asyncnet.simulation import build_engine

from .helpers import unfinish
from .test_checkpoint import cli, reference, shortened, stable


def agent_states(directory: str) -> dict[int, dict]:
    """``{t: {agent: decoded state}}`` of the checkpoints in a directory; each inbox
    instant's messages sorted (the order they were inserted in is not part of the state)."""
    out = {}
    for path in ckp.candidates(directory):
        ck = ckp.read(path)
        got = {}
        for name, blob in ck["agents"].items():
            u = Unpacker().unpack(blob)
            u["inbox"] = [[t, sorted(msgs, key=lambda m: (m[0], m[1], m[5]))]
                          for t, msgs in u["inbox"]]
            got[name] = u
        out[ck["t"]] = got
    return out


def same_state(a, b) -> bool:
    """Equal, arrays by value and dtype (nested dicts and lists; checkpoints hold no
    scratch buffers: a model's SCRATCH)."""
    import numpy as np
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
                and a.dtype == b.dtype and np.array_equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def in_flight_across(states: dict, t: int, sc_path: str, workers: int) -> int:
    """Messages pending at checkpoint ``t`` that were sent before ``t`` from another
    partition (what the workers took from their peers' buffers)."""
    from asyncnet.cluster.partition import partition
    sc = load(sc_path)
    eng, net, _ = build_engine(sc, local=[])
    owner = partition(eng.links, workers, sc.cluster.get("partition", "auto"),
                      starts=net.inputs()).owner
    return sum(1 for name, u in states[t].items() for _, msgs in u["inbox"] for m in msgs
               if m[3] < t and owner[m[1]] != owner[name])


def test_worker_checkpoints_hold_the_in_process_agents(tmp_path):
    sc = shortened("quickstart", 300, tmp_path)
    asyncnet.run(sc, checkpoint_every=70, checkpoint_dir=str(tmp_path / "one"))
    asyncnet.run(sc, workers=3, checkpoint_every=70, checkpoint_dir=str(tmp_path / "three"))
    want, got = agent_states(str(tmp_path / "one")), agent_states(str(tmp_path / "three"))
    assert sorted(got) == sorted(want) == [210 * QUANTA, 280 * QUANTA]
    for t in want:
        assert got[t].keys() == want[t].keys()
        for name in want[t]:
            assert same_state(got[t][name], want[t][name]), (t, name)
    # the comparison covers messages that crossed the cut and were still in flight
    assert all(in_flight_across(got, t, sc, 3) > 0 for t in got)


def test_worker_checkpoints_alike_where_some_processes_run_compiled_steps(tmp_path):
    """A projection of 1,600 weights: the processes that build it run the compiled
    learning and delta steps (where numba is), the others numpy's; the steps'
    scratch buffers, which only numpy's path fills, are not in a checkpoint."""
    sc = shortened("quickstart", 60, tmp_path)
    with open(sc) as f:
        text = f.read()
    with open(sc, "w") as f:
        f.write(text.replace("layers = [2, 4, 1]", "layers = [2, 40, 40, 1]"))
    asyncnet.run(sc, checkpoint_every=20, checkpoint_dir=str(tmp_path / "one"))
    asyncnet.run(sc, workers=3, checkpoint_every=20, checkpoint_dir=str(tmp_path / "three"))
    want, got = agent_states(str(tmp_path / "one")), agent_states(str(tmp_path / "three"))
    assert sorted(got) == sorted(want) and want
    for t in want:
        assert got[t].keys() == want[t].keys()
        for name in want[t]:
            assert same_state(got[t][name], want[t][name]), (t, name)


def test_worker_checkpoint_resumes_in_one_process(tmp_path):
    """A run on 2 workers writes checkpoints and finishes; its last checkpoint resumed in
    one process rewrites the log's tail to the same bytes, summary and saved state."""
    sc = shortened("quickstart", 300, tmp_path)
    ref = reference(sc, tmp_path)
    log = f"{tmp_path}/run.log"
    r = cli("run", sc, "--log", log, "--workers", "2", "--checkpoint-every", "70", "-q")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "run.log").read_bytes() == (tmp_path / "ref.log").read_bytes()
    size = os.path.getsize(log)
    with open(log, "r+b") as f:  # a resumed run truncates the log at its checkpoint
        f.truncate(size - 1)
    r = cli("resume", log, "--json", "-q")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "run.log").read_bytes() == (tmp_path / "ref.log").read_bytes()
    ref.pop("state", None)
    got = json.loads(r.stdout)
    assert stable(got) == stable(ref)


def test_mpi_checkpoints_resume(tmp_path):
    """``--checkpoint-every`` on an MPI job of 3 ranks: the same log, the in-process
    checkpoints' agents, and a resume in one process to the same bytes."""
    from .test_cluster_mpi import run_mpi
    sc = shortened("quickstart", 300, tmp_path)
    ref = reference(sc, tmp_path)
    log = f"{tmp_path}/mpi.log"
    r = run_mpi(3, sc, "--log", log, "--checkpoint-every", "70", "-q")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "mpi.log").read_bytes() == (tmp_path / "ref.log").read_bytes()
    asyncnet.run(sc, checkpoint_every=70, checkpoint_dir=str(tmp_path / "one"))
    want, got = agent_states(str(tmp_path / "one")), agent_states(f"{log}.ckpt")
    assert sorted(got) == sorted(want)
    assert all(same_state(got[t][n], want[t][n]) for t in want for n in want[t])
    unfinish(log)  # a complete run is not resumed
    r = cli("resume", log, "--json", "-q")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "mpi.log").read_bytes() == (tmp_path / "ref.log").read_bytes()
    assert stable(json.loads(r.stdout))["messages"] == ref["messages"]


@pytest.mark.parametrize("args,msg", [
    (("--restart-workers",), "does not work with --mpi"),
])
def test_mpi_refuses_restart_workers(args, msg, tmp_path):
    from .test_cluster_mpi import run_mpi
    sc = shortened("quickstart", 20, tmp_path)
    r = run_mpi(2, sc, "--no-log", "--checkpoint-every", "5", *args, "-q", timeout=60)
    err = r.stderr.strip().splitlines()
    assert r.returncode != 0 and any(msg in line for line in err), r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert not glob.glob(f"{tmp_path}/*.ckpt")


def mpi_resume(n: int, *args: str, timeout: float = 240):
    import subprocess
    import sys

    from .test_cluster_mpi import ROOT, mpiexec
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return subprocess.run([mpiexec(), "-n", str(n), sys.executable, "-m", "asyncnet", "resume",
                           *args, "--mpi"], capture_output=True, text=True, timeout=timeout,
                          env=env)


def test_resume_on_an_mpi_job(tmp_path):
    """An in-process run killed after its second checkpoint resumes on an MPI job of 3
    ranks to the same log bytes, summary and saved state; a bad path is one error line."""
    from .test_checkpoint import same_npz
    sc = shortened("quickstart", 300, tmp_path)
    ref = reference(sc, tmp_path)
    log = f"{tmp_path}/run.log"
    r = cli("run", sc, "--log", log, "--save-state", f"{tmp_path}/run.npz",
            "--checkpoint-every", "70", "-q", victim=("--at", "175"))
    assert r.returncode == -9, r.stderr
    r = mpi_resume(3, log, "--json", "-q")
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout)
    assert len(got.pop("cluster")["workers"]) == 2
    assert (tmp_path / "run.log").read_bytes() == (tmp_path / "ref.log").read_bytes()
    assert stable(got) == stable(ref)
    assert same_npz(f"{tmp_path}/run.npz", f"{tmp_path}/ref.npz")
    r = mpi_resume(2, str(tmp_path / "nothing"), "-q", timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        f"asyncnet: error: {tmp_path / 'nothing'}: no such checkpoint directory or event log"]
