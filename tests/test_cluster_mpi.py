"""The MPI backend: ``mpiexec -n N asyncnet run SCENARIO --mpi`` on 2 and 3 ranks.

The reference is the in-process run of the same scenario: the log must be the
same bytes and the summary the same figures. Skipped (with the reason) where
mpi4py or an ``mpiexec`` is not installed (``pip install 'asyncnet[mpi]'``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from asyncnet.simulation import simulate

from .test_cluster import ROOT, VOLATILE, shortened

QUICK = os.path.join(ROOT, "scenarios", "quickstart.toml")


def mpiexec() -> str:
    """The mpiexec beside this Python (the mpich wheel puts it there), else on PATH."""
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (asyncnet[mpi])")
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    exe = here if os.path.exists(here) else shutil.which("mpiexec")
    if exe is None:
        pytest.skip("no mpiexec found (pip install mpich)")
    return exe


def run_mpi(n: int, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # Open MPI refuses to run as root unless told; MPICH ignores this variable
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return subprocess.run([mpiexec(), "-n", str(n), sys.executable, "-m", "asyncnet", "run",
                           *args, "--mpi"], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=ROOT)


@pytest.mark.parametrize("ranks", [2, 3])
def test_mpi_run_is_byte_identical(ranks, tmp_path):
    sc = shortened(QUICK, 12.0)
    path = tmp_path / "q.toml"
    path.write_text(sc.text)
    ref = simulate(shortened(str(path), 12.0), log_path=str(tmp_path / "ref.log"))
    log = tmp_path / "mpi.log"
    r = run_mpi(ranks, str(path), "--log", str(log), "--json", "-q")
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout)
    assert log.read_bytes() == (tmp_path / "ref.log").read_bytes()
    for k in ref:
        if k not in VOLATILE and k != "path":
            assert got.get(k) == ref[k], k
    c = got["cluster"]
    assert len(c["workers"]) == ranks - 1
    assert sum(w["delivered"] for w in c["workers"]) == ref["messages"]["total"]


def test_mpi_on_one_rank_is_a_one_line_error(tmp_path):
    r = run_mpi(1, QUICK, "--no-log", "-q", timeout=60)
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "N >= 2" in err[0], err
    assert "Traceback" not in r.stderr


def test_slurm_script_runs_the_same_log(tmp_path):
    """distributed/slurm_mpi.sh outside SLURM (its #SBATCH lines are comments),
    as a job of 3 tasks would run it: the log equals the in-process one."""
    exe = mpiexec()
    sc = shortened(QUICK, 8.0)
    path = tmp_path / "q.toml"
    path.write_text(sc.text)
    simulate(shortened(str(path), 8.0), log_path=str(tmp_path / "ref.log"))
    log = tmp_path / "slurm.log"
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "SLURM_NTASKS": "3", "MPIEXEC": f"{exe} -n 3", "PYTHON": sys.executable,
           "LOG": str(log), "ASYNCNET_MPI_SPIN": "0"}
    r = subprocess.run(["bash", os.path.join(ROOT, "distributed", "slurm_mpi.sh"), str(path),
                        "-q"], capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "3 ranks (2 workers)" in r.stdout
    assert log.read_bytes() == (tmp_path / "ref.log").read_bytes()


@pytest.mark.parametrize("extra,words", [
    ((), "with N >= 2: rank 0 coordinates, N - 1 workers); this process runs alone"),
    (("--workers", "2"), "this process runs alone"),
])
def test_mpi_outside_an_mpi_job_says_so(extra, words):
    """Run without mpiexec, ``--mpi`` said "not --workers or --cluster" where neither
    was given; now it says the process runs alone (a subprocess: MPI is not
    initialised in the test process)."""
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (asyncnet[mpi])")
    q = os.path.join(ROOT, "scenarios", "quickstart.toml")
    out = subprocess.run([sys.executable, "-m", "asyncnet", "run", q, "--mpi", "--no-log",
                          "-q", *extra], capture_output=True, text=True, timeout=120)
    err = [ln for ln in out.stderr.splitlines() if "warning" not in ln]
    assert out.returncode == 2 and len(err) == 1 and words in err[0], out.stderr
