"""Distributed runs fail loudly and cleanly: dead or silent workers are named,
the log keeps every record written so far, nothing hangs, nothing leaks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import pytest

from asyncnet.cluster import simulate_distributed
from asyncnet.cluster.errors import ClusterError
from asyncnet.eventlog import EventLog
from asyncnet.simulation import simulate

from .test_cluster import ROOT, shortened

QUICK = os.path.join(ROOT, "scenarios", "quickstart.toml")


def children() -> list[int]:
    """Process ids whose parent is this process (read from /proc)."""
    me, out = os.getpid(), []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == me:
            out.append(int(d))
    return sorted(out)


class Saboteur:
    """A progress callback that sends ``sig`` to one worker once ``t`` is reached."""

    def __init__(self, t: float, sig: int):
        self.t, self.sig = t, sig
        self.victim: int | None = None
        self.when: float | None = None

    def __call__(self, now: float) -> None:
        if self.victim is None and now >= self.t:
            self.victim = children()[-1]
            self.when = time.monotonic()
            os.kill(self.victim, self.sig)


def records_prefix_of(partial: str, full: str) -> int:
    """Check that the records of ``partial`` are the first records of ``full``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = [b for _, b in EventLog(partial).raw()]
        b = [b for _, b in EventLog(full).raw()]
    assert a == b[:len(a)]
    return len(a)


@pytest.mark.parametrize("sig,words", [(signal.SIGKILL, "died"),
                                       (signal.SIGSTOP, "stopped answering")])
def test_lost_worker_is_named_quickly_and_log_stays_readable(tmp_path, sig, words):
    sc = shortened(QUICK, 400.0)
    simulate(sc, log_path=str(tmp_path / "ref.log"))
    sab = Saboteur(50.0, sig)
    log = tmp_path / "cut.log"
    with pytest.raises(ClusterError) as ei:
        # 3 s of silence: long enough that a loaded box never starves a healthy worker
        simulate_distributed(sc, workers=2, log_path=str(log), progress=sab, timeout=3.0)
    noticed = time.monotonic() - sab.when
    msg = str(ei.value)
    assert words in msg and f"pid {sab.victim}" in msg
    assert "partition" in msg and "t=" in msg
    assert noticed < 10.0  # safety net only: the figure is in the report
    n = records_prefix_of(str(log), str(tmp_path / "ref.log"))
    assert n > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lg = EventLog(str(log))
        list(lg.raw())
    # a failed run closes its log after its last whole instant: a verified prefix
    assert lg.interrupted and not lg.truncated and lg.verified
    assert sab.victim not in children()  # reaped, even the stopped one


def test_worker_without_coordinator_gives_up():
    r = subprocess.run([sys.executable, "-m", "asyncnet", "worker", "--connect",
                        "tcp://127.0.0.1:9", "--wait", "1"], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert r.returncode == 2
    assert r.stderr.startswith("asyncnet: error: worker: no word from the coordinator")
    assert "Traceback" not in r.stderr


def test_no_leaks_across_many_runs(tmp_path):
    sc = shortened(QUICK, 6.0)

    def census():
        return (len(os.listdir("/proc/self/fd")), threading.active_count(), children())

    from asyncnet.cluster.security import make_keys
    make_keys(str(tmp_path / "keys"))
    simulate_distributed(sc, workers=2, log_path=str(tmp_path / "warm.log"))  # imports
    before = census()
    for i in range(4):
        simulate_distributed(sc, workers=2 + i % 2, log_path=str(tmp_path / f"{i}.log"),
                             keys=str(tmp_path / "keys") if i == 3 else None)
    with pytest.raises(ClusterError):  # a failed run must release everything too
        simulate_distributed(shortened(QUICK, 400.0), workers=2,
                             progress=Saboteur(20.0, signal.SIGKILL), timeout=1.5)
    assert census() == before


def test_default_run_imports_no_zeromq():
    code = ("import sys; from asyncnet.cli import main; "
            "r = main(['run', sys.argv[1], '-q', '--no-log']); "
            "assert r == 0; print('zmq' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, QUICK], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "False"


def test_cli_errors_are_one_line(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text("[coordinator]\nbind = 5\n[[hosts]]\nworkers = 1\n")
    for args in (["--workers", "40"], ["--cluster", str(bad)]):
        r = subprocess.run([sys.executable, "-m", "asyncnet", "run", QUICK, "-q", "--no-log",
                            *args], capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert r.returncode == 2
        assert r.stderr.startswith("asyncnet: error: ") and r.stderr.count("\n") == 1, r.stderr


def test_cluster_files_parse_and_run_from_the_cli(tmp_path):
    from asyncnet.cluster.config import load_cluster
    two = load_cluster(os.path.join(ROOT, "distributed", "two-machines.toml"))
    assert (two["workers"], two["local"]) == (2, 1) and two["bind"].endswith(":5555")
    assert two["keys"] == os.path.join(ROOT, "distributed", "keys")
    scen = tmp_path / "q.toml"
    scen.write_text(shortened(QUICK, 30.0).text)
    logs = []
    for extra in ([], ["--cluster", os.path.join(ROOT, "distributed", "local.toml")]):
        logs.append(tmp_path / f"{len(extra)}.log")
        r = subprocess.run([sys.executable, "-m", "asyncnet", "run", str(scen), "-q",
                            "--log", str(logs[-1]), *extra], capture_output=True, text=True,
                           timeout=120, cwd=ROOT)
        assert r.returncode == 0, r.stderr
    assert "cluster   4 workers" in r.stdout
    assert logs[0].read_bytes() == logs[1].read_bytes()
    st = subprocess.run([sys.executable, "-m", "asyncnet", "stats", str(logs[1])],
                        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert st.stdout.count("\nworker ") == 4


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_netns_harness(tmp_path):
    probe = subprocess.run(["ip", "netns", "add", f"asnprobe{os.getpid()}"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"ip netns unavailable: {probe.stderr.strip()}")
    subprocess.run(["ip", "netns", "del", f"asnprobe{os.getpid()}"], check=True)
    r = subprocess.run(["bash", os.path.join(ROOT, "distributed", "netns_harness.sh"),
                        os.path.join(ROOT, "scenarios", "diffusion_exact.toml"), "3"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env={**os.environ, "PYTHON": sys.executable})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "IDENTICAL" in r.stdout
    leftovers = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "asn" not in leftovers


def test_a_worker_is_reaped_when_popens_lock_was_left_taken():
    """A Ctrl-C inside ``Popen.poll`` can leave Popen's lock taken; ``wait`` then
    times out on a process long gone. ``reap`` ends and reaps it all the same."""
    from asyncnet.cluster.transport import reap
    for code in ("pass", "import time; time.sleep(60)"):  # gone already / still running
        p = subprocess.Popen([sys.executable, "-c", code])
        time.sleep(0.5)
        assert p._waitpid_lock.acquire(False)  # what the interrupted poll leaves behind
        t0 = time.monotonic()
        reap(p, 0.3)
        assert time.monotonic() - t0 < 5
        assert p.returncode is not None
        assert not os.path.exists(f"/proc/{p.pid}") or \
            open(f"/proc/{p.pid}/stat").read().split()[2] != "Z"  # no zombie left


def test_a_partition_that_fails_after_the_workers_started_leaves_no_process(tmp_path):
    """The workers start before the coordinator partitions (their start-up overlaps its
    own): a partition that then fails stops them all, the log path untouched. Before,
    each worker that had not joined was waited for in turn (0.5 s each, 20 s for 40)."""
    from asyncnet.scenario import ScenarioError
    sc = shortened(QUICK, 6.0)
    log = tmp_path / "kept.log"
    log.write_bytes(b"an older file")
    before = children()
    with pytest.raises(ScenarioError, match=r"\[cluster\] 9 workers but the network has "
                                            r"only 5 agent groups"):
        simulate_distributed(sc, workers=9, log_path=str(log))
    assert children() == before
    assert log.read_bytes() == b"an older file"


def test_workers_load_the_packing_loop_at_start_only_when_asked(monkeypatch):
    """A worker's log takes its compiled packing loop when its records are on course
    to pay for it (tests/test_log_loop_choice.py), however large its partition; the
    coordinator passes its own ASYNCNET_WARM_LOG on to the workers it starts (a
    benchmark's switch) and sets none itself."""
    from asyncnet.cluster import transport, worker

    seen: list[str | None] = []

    def popen(cmd, **kw):
        seen.append(kw["env"].get(worker.WARM_ENV))
        raise OSError("not started (test)")

    monkeypatch.setattr(transport.subprocess, "Popen", popen)
    for parent, want in ((None, None), ("1", "1")):
        if parent is None:
            monkeypatch.delenv(worker.WARM_ENV, raising=False)
        else:
            monkeypatch.setenv(worker.WARM_ENV, parent)
        seen.clear()
        with transport.Cluster(2) as cl, pytest.raises(OSError, match="test"):
            cl.spawn()
        assert seen == [want]


def test_an_analysis_refused_on_the_coordinator_leaves_an_old_log_as_it_was(tmp_path):
    """The coordinator makes its log writer, then attaches the analyses (after the
    workers started): one refused there must not turn an old log into an empty one."""
    from asyncnet.scenario import ScenarioError, load
    path = os.path.join(ROOT, "scenarios", "continuous_lag.toml")
    with open(path, encoding="utf-8") as f:
        text = f.read().replace('kind = "tracking"\n', 'kind = "tracking"\nwarmup = -3\n')
    sc = load(path, text=text)
    log = tmp_path / "kept.log"
    log.write_bytes(b"an older file")
    before = children()
    with pytest.raises(ScenarioError, match=r"\[analysis\] key 'warmup' must be a time from 0"):
        simulate_distributed(sc, workers=2, log_path=str(log))
    assert log.read_bytes() == b"an older file"
    assert children() == before
