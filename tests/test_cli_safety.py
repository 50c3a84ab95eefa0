"""Refusals that must leave every output as it was, and inputs named as the
problem they are (a QA pass's findings): a locked checkpoint directory, a
completed run resumed, an output that is a hard link of an input, overflowing
times, forged checkpoints, and messages that said less than the truth."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from asyncnet.cli import main

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
