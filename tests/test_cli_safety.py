"""Refusals that must leave every output as it was, and inputs named as the
problem they are (a QA pass's findings): a locked checkpoint directory, a
completed run resumed, an output that is a hard link of an input, overflowing
times, forged checkpoints, and messages that said less than the truth."""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path

import msgpack
import pytest

from asyncnet.cli import main

from .helpers import unfinish
from .test_hardening import in_process, scenario


def _only_error(r) -> str:
    """Exit 2, no traceback, exactly one stderr line ``asyncnet: error: ...``."""
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("asyncnet: error: "), r.stderr
    return lines[0]


def test_a_locked_checkpoint_directory_leaves_the_log_untouched(tmp_path, capsys):
    sc = scenario(tmp_path, 40)
    ck = tmp_path / "ck"
    ck.mkdir()
    log = tmp_path / "x.log"
    before = os.urandom(133_000)  # whatever was there: it must still be there
    log.write_bytes(before)
    with open(ck / ".lock", "ab") as other:  # another run writes its checkpoints there
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = in_process(["run", sc, "-q", "--log", str(log), "--checkpoint-every", "10",
                        "--checkpoint-dir", str(ck)], capsys)
    line = _only_error(r)
    assert str(ck) in line and "another asyncnet process" in line
    assert log.read_bytes() == before
    assert not list(ck.glob("ck-*"))
    # the directory free again, the same command runs
    assert main(["run", sc, "-q", "--log", str(log), "--checkpoint-every", "10",
                 "--checkpoint-dir", str(ck)]) == 0


def test_an_output_that_is_a_hard_link_of_an_input_is_refused(tmp_path, capsys):
    """A symlink and the path itself were caught; a hard link (another name, one inode)
    was written over: the scenario became the log."""
    sc = scenario(tmp_path, 10)
    text = Path(sc).read_bytes()
    hard = tmp_path / "hard.log"
    os.link(sc, hard)
    line = _only_error(in_process(["run", sc, "-q", "--log", str(hard)], capsys))
    assert line.startswith(f"asyncnet: error: {hard}: ") and "scenario" in line
    assert Path(sc).read_bytes() == text
    state = tmp_path / "hard.npz"
    os.link(sc, state)
    line = _only_error(in_process(["run", sc, "-q", "--no-log", "--save-state", str(state)],
                                  capsys))
    assert "scenario" in line and Path(sc).read_bytes() == text
    log = tmp_path / "q.log"
    assert main(["run", sc, "-q", "--log", str(log)]) == 0
    logged = log.read_bytes()
    png, csv = tmp_path / "q.png", tmp_path / "q.csv"
    os.link(log, png)
    os.link(log, csv)
    line = _only_error(in_process(["plot", str(log), "--waves", "-o", str(png)], capsys))
    assert line.startswith(f"asyncnet: error: {png}: ") and "log" in line
    line = _only_error(in_process(["export", str(log), "--format", "csv", "-o", str(csv)],
                                  capsys))
    assert line.startswith(f"asyncnet: error: {csv}: ") and "log" in line
    assert log.read_bytes() == logged


def test_resume_of_a_run_that_completed_leaves_its_log_alone(tmp_path, capsys):
    """It re-ran the tail and rewrote the log (cut short if killed meanwhile)."""
    sc = scenario(tmp_path, 40)
    log, ck = tmp_path / "x.log", tmp_path / "x.log.ckpt"
    assert main(["run", sc, "-q", "--log", str(log), "--checkpoint-every", "10"]) == 0
    before = log.read_bytes(), os.stat(log).st_mtime_ns
    for path in (ck, log):
        r = in_process(["resume", str(path), "--json"], capsys)
        assert r.returncode == 0 and r.stdout == "", r
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        assert lines[0].startswith(f"asyncnet: {log}: ") and "already reached its end" in \
            lines[0] and str(ck) in lines[0], lines
        assert (log.read_bytes(), os.stat(log).st_mtime_ns) == before


def _forge(path, change) -> None:
    """Edit a checkpoint's map and seal it again as ``ckfile.write`` does: MAGIC, the
    msgpack map, and a 32-byte BLAKE2b digest of everything before it."""
    data = Path(path).read_bytes()
    magic = b"\x89ASYNCNET-CKPT\r\n"
    assert data.startswith(magic)
    body = msgpack.unpackb(data[len(magic):-32], raw=False)
    change(body)
    out = magic + msgpack.packb(body, use_bin_type=True)
    Path(path).write_bytes(out + hashlib.blake2b(out, digest_size=32).digest())


def _set(*keys, value=None, add=None):
    def change(body):
        d = body
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value if add is None else d[keys[-1]] + add
    return change


def _more_records(body):  # one more forward record claimed: the counts agree with each other
    body["log"]["count"] += 1
    body["log"]["by_kind"][0] += 1


@pytest.mark.parametrize("change,words", [
    (_set("log", value=None), "log"),
    (_set("log", value="x.log"), "log"),
    (_set("t", add=1), "(t: "),
    (_set("meta", "checkpoint_every", value="10"), "checkpoint_every"),
    (_set("meta", "log_file", value=7), "log_file"),
    (_set("log", "next_ck", add=1), "next_ck"),
    (_set("log", "t_last", value=-1), "t_last"),
    (_more_records, "records"),
])
def test_a_forged_checkpoint_is_refused_by_the_field_it_is_about(tmp_path, capsys, change,
                                                                 words):
    """Fields edited and the digest recomputed: tracebacks (``log`` nil or a string in
    the log check, a wake-up in the past) or, for the counts, a log whose footer and
    seals describe other records."""
    sc = scenario(tmp_path, 40)
    log = tmp_path / "x.log"
    assert main(["run", sc, "-q", "--log", str(log), "--checkpoint-every", "10"]) == 0
    files = sorted((tmp_path / "x.log.ckpt").glob("ck-*.ckpt"))
    for older in files[:-1]:  # one checkpoint: nothing older to fall back on
        older.unlink()
    _forge(files[-1], change)
    unfinish(log)  # as a run killed at its end: resumable
    before = log.read_bytes()
    r = in_process(["resume", str(log), "-q"], capsys)
    line = _only_error(r)
    assert str(files[-1]) in line and words in line, line
    assert log.read_bytes() == before


def _with(sc: str, where: str, line: str) -> str:
    """A copy of scenario file ``sc`` with ``line`` added at the top of table ``where``."""
    text = Path(sc).read_text()
    out = Path(sc).with_name("edited.toml")
    if f"[{where}]" in text:
        out.write_text(text.replace(f"[{where}]\n", f"[{where}]\n{line}\n", 1))
    else:
        out.write_text(f"{text}\n[{where}]\n{line}\n")
    return str(out)


@pytest.mark.parametrize("value,words", [
    ("1e308", "too long"), ("-1", "positive"), ("0", "positive"), ("1e-9", "positive"),
    ("inf", "finite"), ("nan", "finite")])
def test_a_checkpoint_period_out_of_range_is_one_line_naming_where(tmp_path, capsys, value,
                                                                   words):
    """1e308 was an OverflowError traceback (its quanta are inf)."""
    sc = scenario(tmp_path, 40)
    line = _only_error(in_process(["run", sc, "-q", "--no-log", "--checkpoint-every", value],
                                  capsys))
    assert "--checkpoint-every" in line and words in line, line
    edited = _with(sc, "output", f"checkpoint_every = {value}")
    line = _only_error(in_process(["run", edited, "-q", "--no-log"], capsys))
    assert line.startswith(f"asyncnet: error: {edited}: ") and "checkpoint_every" in line \
        and words in line, line


@pytest.mark.parametrize("value,words", [
    ("1e308", "outside the log"), ("41", "outside the log"), ("-1", "not a finite time"),
    ("inf", "finite"), ("nan", "finite")])
def test_inspect_until_out_of_range_is_one_line(tmp_path, capsys, value, words):
    """1e308 was an OverflowError traceback."""
    log = tmp_path / "x.log"
    assert main(["run", scenario(tmp_path, 40), "-q", "--log", str(log)]) == 0
    line = _only_error(in_process(["inspect", str(log), "--node", "l1", "--until", value],
                                  capsys))
    assert "--until" in line and words in line, line


@pytest.mark.parametrize("table,line", [
    ("scenario", 'name = "a\\u0000b"'), ("output", 'log = "a\\u0000b.log"'),
    ("output", 'save_state = "s\\u0000.npz"'), ("output", 'checkpoint_dir = "c\\u0000"')])
def test_a_nul_character_in_a_name_or_path_is_named(tmp_path, capsys, table, line):
    """An "embedded null byte" traceback from open() or realpath()."""
    sc = scenario(tmp_path, 40)
    text = Path(sc).read_text()
    if table == "scenario":  # the name replaced (a second name key would be a TOML error)
        edited = tmp_path / "edited.toml"
        edited.write_text(text.replace('name = "short"', line))
        edited = str(edited)
    else:
        edited = _with(sc, table, line + "\ncheckpoint_every = 10")
    err = _only_error(in_process(["run", edited, "-q"], capsys))
    assert err.startswith(f"asyncnet: error: {edited}: ") and "NUL" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["short.toml", "edited.toml"])


def test_a_full_disk_before_the_header_says_what_is_on_disk(tmp_path, monkeypatch, capsys):
    """Records taken into the file's buffer are not on disk: a disk full before the
    first byte landed said "after 74 records" of a file of 0 bytes."""
    import errno

    import asyncnet.eventlog as eventlog

    class Buffered:  # takes writes into memory, then fails as a full disk: nothing lands
        def __init__(self, f):
            self.f, self.calls = f, 0

        def write(self, data):
            self.calls += 1
            if self.calls > 3:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return len(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

    real = open
    monkeypatch.setattr(eventlog, "open", lambda *a, **k: Buffered(real(*a, **k)),
                        raising=False)
    log = tmp_path / "x.log"
    line = _only_error(in_process(["run", scenario(tmp_path, 40), "-q", "--log", str(log)],
                                  capsys))
    assert log.stat().st_size == 0
    assert line.startswith(f"asyncnet: error: {log}: cannot write the event log"), line
    assert "0 bytes on disk" in line and "records" not in line.split(";")[0], line


def test_plot_of_a_log_without_records_warns_of_nothing(tmp_path):
    """matplotlib warned of "identical low and high xlims" (the log ends at t=0)."""
    from .test_hardening import cli
    sc = Path(scenario(tmp_path, 40))
    sc.write_text(sc.read_text().replace("duration = 40", "duration = 0.000001"))
    log, png = tmp_path / "e.log", tmp_path / "e.png"
    assert main(["run", str(sc), "-q", "--log", str(log)]) == 0
    r = cli("plot", str(log), "--waves", "-o", str(png))
    assert r.returncode == 0 and "0 records" in r.stdout, r
    assert "warning" not in r.stderr.lower(), r.stderr
    assert png.stat().st_size > 1000


def test_a_lost_worker_says_how_the_run_goes_on(tmp_path):
    """The line named the dead worker only: with checkpoints written, it now says which
    command continues the run (and from which directory); without, nothing more."""
    from .test_checkpoint import cli
    sc = scenario(tmp_path, 300)
    log = tmp_path / "run.log"
    r = cli("run", sc, "--log", str(log), "--workers", "2", "--checkpoint-every", "70", "-q",
            victim=("--kill-worker", "200", "1"))
    line = _only_error(r)
    assert "died" in line and f"asyncnet resume {log}.ckpt continues" in line, line
    assert "(t=140)" in line, line
    r = cli("run", sc, "--log", str(tmp_path / "b.log"), "--workers", "2",
            "--checkpoint-every", "70", "-q", victim=("--kill-worker", "50", "1"))
    line = _only_error(r)
    assert "died" in line and "asyncnet resume" not in line, line


@pytest.mark.parametrize("argv", [
    ["run", "{sc}", "-q", "--workers", "2", "--bind", "tcp://127.0.0.1:99999"],
    ["worker", "--connect", "tcp://127.0.0.1:99999", "--wait", "1"],
    ["worker", "--connect", "tcp://127.0.0.1:0", "--wait", "1"],
])
def test_a_port_past_65535_is_refused(tmp_path, capsys, monkeypatch, argv):
    """ZeroMQ took port 99999 (listening on 99999 - 65536) and the run went on."""
    monkeypatch.chdir(tmp_path)  # the default log path (runs/) is not the checkout's
    sc = scenario(tmp_path, 4)
    r = in_process([a.format(sc=sc) for a in argv], capsys)
    line = _only_error(r)
    assert "is not a TCP port" in line and ("99999" in line or "'0'" in line), line


def test_a_log_cut_just_after_a_digest_does_not_speak_of_the_last_0(tmp_path, monkeypatch):
    """The truncation warning said "the last 0 are not covered by a digest"."""
    from asyncnet.logfile import EventLog
    monkeypatch.setattr("asyncnet.eventlog.CHECKPOINT", 100)  # a digest every ~100 records
    sc = scenario(tmp_path, 40)
    log = tmp_path / "x.log"
    assert main(["run", sc, "-q", "--log", str(log)]) == 0
    data = log.read_bytes()
    up = msgpack.Unpacker(raw=False, strict_map_key=False)
    up.feed(data)
    seals = []
    for obj in up:  # where each checkpoint's seal ends, and the records before it
        if isinstance(obj, dict) and obj.get("checkpoint"):
            seals.append((up.tell(), obj["checkpoint"]))
    end, before = seals[-1]
    cut = tmp_path / "cut.log"
    cut.write_bytes(data[:end + 3])  # three bytes of the next record: not a whole one
    with pytest.warns(UserWarning) as got:
        records = sum(1 for _ in EventLog(str(cut)).records())
    text = " ".join(str(w.message) for w in got)
    assert records == before and "truncated after" in text, text
    assert "last 0" not in text and "every one is covered by a digest" in text, text
