"""Command-line edges a QA pass found: each case failed (a traceback, lost data, a
wrong figure or a hang) before the fix it tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from asyncnet.cli import main

from .test_hardening import QUICK, ROOT, cli, one_error_line, scenario


def test_a_checkpoint_before_the_first_message_works(tmp_path):
    """``--checkpoint-every 0.5`` (a checkpoint before anything was delivered) was a
    traceback from the log writer and left a log with no footer."""
    log = tmp_path / "c.log"
    r = cli("run", scenario(tmp_path, 20), "-q", "--log", str(log), "--checkpoint-every",
            "0.5")
    assert r.returncode == 0, r.stderr
    assert cli("replay", str(log), "--verify", "-q").stdout.startswith("identical")
    ref = tmp_path / "ref.log"
    assert cli("run", scenario(tmp_path, 20), "-q", "--log", str(ref)).returncode == 0
    r = cli("resume", str(log), "-q")
    assert r.returncode == 0 and log.read_bytes() == ref.read_bytes(), r.stderr


def test_a_failed_or_interrupted_export_keeps_the_file_that_was_there(tmp_path):
    """The export removed its -o path on failure, also when the file was the user's."""
    pytest.importorskip("pyarrow")
    log = tmp_path / "q.log"
    assert cli("run", QUICK, "-q", "--log", str(log)).returncode == 0
    data = bytearray(log.read_bytes())
    data[len(data) // 2] ^= 1
    bad = tmp_path / "bad.log"
    bad.write_bytes(bytes(data))
    keep = tmp_path / "keep.csv"
    keep.write_text("precious")
    assert cli("export", str(bad), "-o", str(keep)).returncode == 2
    assert keep.read_text() == "precious"
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
    p = subprocess.Popen([sys.executable, "-m", "asyncnet", "export", str(log), "-o",
                          str(keep), "--values"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    _, err = p.communicate(timeout=120)  # a finished export replaces it whole
    assert p.returncode == 0 and keep.read_text().startswith('"time"'), err


@pytest.mark.parametrize("until, words", [("nan", "must be a finite number"),
                                          ("-1", "must be a time above 0"),
                                          ("0", "must be a time above 0")])
def test_plot_until_that_is_no_time_in_the_run_is_refused(tmp_path, capsys, until, words):
    """nan was matplotlib's traceback; -1 drew an empty figure and said 'wrote'."""
    log = tmp_path / "q.log"
    assert main(["run", scenario(tmp_path, 20), "-q", "--log", str(log)]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["plot", str(log), "--waves", "--until", until, "-o", str(tmp_path / "p.png")])
    assert e.value.code == 2 and words in capsys.readouterr().err


def test_stats_leaves_out_cluster_figures_of_another_run(tmp_path):
    """A one-process run into a log a 2-worker run had written left its sidecar: stats
    reported 2 workers and their counts for the new log; a malformed one was a KeyError."""
    log = tmp_path / "w.log"
    assert cli("run", scenario(tmp_path, 40), "-q", "--workers", "2", "--log",
               str(log)).returncode == 0
    r = cli("stats", str(log))
    assert r.returncode == 0 and "cluster   2 workers" in r.stdout
    assert cli("run", scenario(tmp_path, 20), "-q", "--log", str(log)).returncode == 0
    r = cli("stats", str(log))
    assert r.returncode == 0 and "workers," not in r.stdout
    # the one-process run removed them (a run of the same scenario has the same digest)
    assert not (tmp_path / "w.log.cluster.json").exists() and "cluster" not in r.stderr
    (tmp_path / "w.log.cluster.json").write_text(json.dumps({"parts": "x"}))
    r = cli("stats", str(log))
    assert r.returncode == 0 and "Traceback" not in r.stderr
    assert "unreadable cluster figures" in r.stderr


@pytest.mark.parametrize("wait", ["nan", "-1", "0"])
def test_worker_wait_must_be_a_time(wait):
    """``--wait nan`` hung; -1 was taken."""
    r = cli("worker", "--connect", "tcp://127.0.0.1:9", "--wait", wait, timeout=30)
    assert r.returncode == 2 and "--wait" in r.stderr


def test_save_state_given_a_directory_is_refused(tmp_path):
    """``--save-state runs/`` wrote a hidden runs/.npz."""
    one_error_line(cli("run", scenario(tmp_path, 10), "-q", "--no-log", "--save-state",
                       str(tmp_path) + os.sep), "is a directory")
    assert not (tmp_path / ".npz").exists()


def test_an_interrupted_command_that_writes_no_log_says_only_that(tmp_path):
    """``replay`` and ``export`` interrupted said 'a log being written ends ...'."""
    log = tmp_path / "l.log"
    assert cli("run", scenario(tmp_path, 3000), "-q", "--log", str(log)).returncode == 0
    p = subprocess.Popen([sys.executable, "-m", "asyncnet", "replay", str(log), "--verify",
                          "-q"], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    import time
    time.sleep(1.5)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    if p.returncode == 130:  # (a fast machine may finish first)
        assert err.strip().splitlines()[-1] == "asyncnet: interrupted"


def test_distribution_flags_that_would_be_ignored_are_refused(tmp_path):
    """``--cluster FILE --workers 3`` ran on 3 (the file's list ignored); ``--bind``
    without workers ran in-process; a scenario given as the cluster file was said to be
    'overwritten'."""
    sc = scenario(tmp_path, 10)
    cluster = os.path.join(ROOT, "distributed", "local.toml")
    one_error_line(cli("run", sc, "-q", "--no-log", "--cluster", cluster, "--workers", "3"),
                   "--workers N or --cluster FILE, not both")
    one_error_line(cli("run", sc, "-q", "--no-log", "--bind", "tcp://127.0.0.1:0"),
                   "--bind is for a distributed run")
    one_error_line(cli("run", sc, "-q", "--no-log", "--cluster", sc),
                   f"{sc}: given as the cluster file, but it is the scenario")


def test_keys_into_a_file_and_no_command_are_named(tmp_path):
    f = tmp_path / "taken"
    f.write_text("x")
    one_error_line(cli("keys", str(f)), "a file, not a directory")
    r = cli()
    assert r.returncode == 2 and "required: COMMAND" in r.stderr


def test_outputs_through_links_and_into_pipes_keep_what_is_at_the_path(tmp_path):
    """Writing whole (a temporary file renamed over the path) replaced a symlink with a
    file and a FIFO or /dev/stdout with a file nobody read."""
    pytest.importorskip("pyarrow")
    log = tmp_path / "q.log"
    assert cli("run", scenario(tmp_path, 20), "-q", "--log", str(log)).returncode == 0
    target, link = tmp_path / "t.csv", tmp_path / "link.csv"
    target.write_text("old")
    link.symlink_to(target)
    assert cli("export", str(log), "-o", str(link)).returncode == 0
    assert link.is_symlink() and target.read_text().startswith('"time"')
    png, plink = tmp_path / "t.png", tmp_path / "p.png"
    plink.symlink_to(png)
    assert cli("plot", str(log), "--waves", "-o", str(plink)).returncode == 0
    assert plink.is_symlink() and png.stat().st_size > 1000
    r = subprocess.run([sys.executable, "-m", "asyncnet", "export", str(log), "--format",
                        "csv", "-o", "/dev/stdout"], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.startswith('"time"') and "wrote" in r.stderr
    assert os.path.islink("/dev/stdout") or not os.path.isfile("/dev/stdout")
    fifo = tmp_path / "f.csv"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    assert cli("export", str(log), "--format", "csv", "-o", str(fifo)).returncode == 0
    out, _ = reader.communicate(timeout=60)
    assert out.startswith(b'"time"') and fifo.is_fifo()


def test_export_never_writes_over_a_log_or_a_scenario(tmp_path):
    pytest.importorskip("pyarrow")
    log, other = tmp_path / "q.log", tmp_path / "other.log"
    sc = scenario(tmp_path, 20)
    for p in (log, other):
        assert cli("run", sc, "-q", "--log", str(p)).returncode == 0
    before = other.read_bytes(), open(sc).read()
    one_error_line(cli("export", str(log), "-o", str(other)), "the ending .log names no "
                   "table format")
    one_error_line(cli("export", str(log), "-o", str(other), "--format", "csv"),
                   "an event log; the table would overwrite it")
    one_error_line(cli("export", str(log), "-o", sc, "--format", "csv"), "a scenario file")
    assert (other.read_bytes(), open(sc).read()) == before


@pytest.mark.parametrize("flag", ["--log", "--save-state", "--checkpoint-dir"])
def test_an_empty_output_path_is_refused(tmp_path, flag):
    """An unset $VAR: ``--log ""`` wrote the default log, ``--save-state ""`` nothing."""
    one_error_line(cli("run", scenario(tmp_path, 10), "-q", flag, ""), f"{flag}: an empty path")


def test_a_divergence_of_one_quantum_shows_in_the_printed_records(tmp_path):
    """Both records printed 'arrives 201.5' when the log's said 201.500001."""
    from asyncnet.replay import _time
    assert [_time(q) for q in (201_500_001, 201_500_000, 201_000_000, 5, -1_500_000)] == \
        ["201.500001", "201.5", "201", "0.000005", "-1.5"]


def test_a_checkpoint_directory_that_is_a_file_is_named(tmp_path):
    """The message named an internal probe file: '...qs.toml/ck-probe: ... not a directory'."""
    sc = scenario(tmp_path, 10)
    one_error_line(cli("run", sc, "-q", "--no-log", "--checkpoint-every", "2",
                       "--checkpoint-dir", sc), f"{sc}: a file, not a checkpoint directory")


def test_sample_times_are_floats_whatever_the_period():
    """``Result.times`` was int64 for a whole-number period and float64 otherwise."""
    import asyncnet
    sc = asyncnet.Scenario(asyncnet.layered([2, 3, 1]), "diffusion", duration=12,
                           data={"kind": "xor"})
    assert asyncnet.run(sc, record={"l1": ["state"]}, period=5).times.dtype == float
