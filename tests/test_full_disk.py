"""A disk that fills up while a checkpoint, the final state or a GradEP state is
written: one line naming the file, nothing half-written left behind, and what
was whole before (the last checkpoint, the old file) still whole.

The event log's own full disk is ``test_hardening.py``'s."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

import asyncnet.outputs as outputs
from asyncnet.cli import main
from asyncnet.schemes.gradep.train import save_atomic, save_text_atomic

from .helpers import small_tmpfs, unfinish
from .test_hardening import scenario


class _Room:
    """``open`` for writing that takes ``room`` bytes in all, then fails as a full disk."""

    def __init__(self, room: int):
        self.room = room

    def __call__(self, path, mode="r", *a, **k):
        f = open(path, mode, *a, **k)
        if "w" not in mode:
            return f
        room = self

        class Full:
            def write(self, data) -> int:
                n = len(memoryview(data).cast("B")) if not isinstance(data, str) else len(data)
                if n > room.room:
                    f.write(data[:room.room])
                    room.room = 0
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                room.room -= n
                return f.write(data)

            def __getattr__(self, name):
                return getattr(f, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                f.close()

        return Full()


def _only_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("asyncnet: error: "), err
    assert "Traceback" not in err[0]
    return err[0]


def test_a_checkpoint_on_a_full_disk_stops_the_run_and_resume_finishes_it(tmp_path, monkeypatch,
                                                                          capsys):
    sc = scenario(tmp_path, 40)
    ref = tmp_path / "ref.log"  # the reference: the same run, never stopped
    assert main(["run", sc, "-q", "--log", str(ref)]) == 0
    log, ck = tmp_path / "x.log", tmp_path / "ck"
    first = {}

    def write_whole(path, fill, what, tmp=None):  # the first checkpoint fits, the second not
        if first:
            monkeypatch.setattr(outputs, "open", _Room(100), raising=False)
        first[path] = True
        return real(path, fill, what, tmp)

    real = outputs.write_whole
    monkeypatch.setattr("asyncnet.ckfile.write_whole", write_whole)
    capsys.readouterr()
    assert main(["run", sc, "-q", "--log", str(log), "--checkpoint-every", "10",
                 "--checkpoint-dir", str(ck)]) == 2
    line = _only_line(capsys)
    assert "ck-00000000000020000000.ckpt: cannot write the checkpoint" in line
    assert "No space left on device" in line
    assert "ck-00000000000010000000.ckpt" in line and f"asyncnet resume {ck}" in line
    # no temporary file (the lock file is the directory's while a run writes into it)
    assert sorted(os.listdir(ck)) == [".lock", "ck-00000000000010000000.ckpt"]
    monkeypatch.undo()
    assert main(["resume", str(ck), "-q"]) == 0
    assert log.read_bytes() == ref.read_bytes()


def test_the_final_state_on_a_full_disk_is_one_line_and_no_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(outputs, "open", _Room(1000), raising=False)
    out = tmp_path / "state"
    assert main(["run", scenario(tmp_path, 10), "-q", "--no-log", "--save-state", str(out)]) == 2
    line = _only_line(capsys)
    assert f"{out}.npz: cannot write the final state (No space left on device)" in line
    assert os.listdir(tmp_path) == ["short.toml"]


def test_a_gradep_state_on_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    path = str(tmp_path / "checkpoint.npz")
    old = {"w": np.arange(3.0)}
    save_atomic(path, old)
    save_text_atomic(str(tmp_path / "scenario.toml"), "old")
    monkeypatch.setattr(outputs, "open", _Room(200), raising=False)
    with pytest.raises(outputs.OutputError, match="checkpoint.npz: cannot write the GradEP state"):
        save_atomic(path, {"w": np.ones(1000)})
    with pytest.raises(outputs.OutputError, match="scenario.toml: cannot write"):
        save_text_atomic(str(tmp_path / "scenario.toml"), "x" * 1000)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz", "scenario.toml"]
    with np.load(path) as z:
        assert np.array_equal(z["w"], old["w"])
    assert (tmp_path / "scenario.toml").read_text() == "old"


def test_write_whole_replaces_the_file_only_when_the_new_one_is_whole(tmp_path):
    p = tmp_path / "f"
    outputs.write_whole(str(p), lambda f: f.write(b"one"), "a test file")
    assert p.read_bytes() == b"one"

    def fail(f):
        f.write(b"tw")
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with pytest.raises(outputs.OutputError, match=r"f: cannot write a test file \(Input/output"):
        outputs.write_whole(str(p), fail, "a test file")
    assert p.read_bytes() == b"one" and os.listdir(tmp_path) == ["f"]


def test_a_figure_on_a_full_disk_is_one_line_and_no_file(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    log = tmp_path / "x.log"
    assert main(["run", scenario(tmp_path, 10), "-q", "--log", str(log)]) == 0
    capsys.readouterr()
    monkeypatch.setattr(outputs, "open", _Room(500), raising=False)
    out = tmp_path / "w.png"
    assert main(["plot", str(log), "--waves", "-o", str(out)]) == 2
    assert _only_line(capsys) == (f"asyncnet: error: {out}: cannot write the figure "
                                  f"(No space left on device)")
    assert sorted(os.listdir(tmp_path)) == ["short.toml", "x.log"]


def test_export_on_a_full_tmpfs_names_the_table_and_leaves_none(tmp_path):
    pytest.importorskip("pyarrow")
    from .test_hardening import cli, one_error_line
    log = tmp_path / "x.log"
    assert main(["run", scenario(tmp_path, 200), "-q", "--log", str(log)]) == 0
    with small_tmpfs(tmp_path, "16k") as mnt:
        for fmt in ("parquet", "csv"):
            out = mnt / f"x.{fmt}"
            one_error_line(cli("export", str(log), "-o", str(out)),
                           f"{out}: cannot write the {fmt} table (No space left on device)")
            assert os.listdir(mnt) == []


# -- an output given the path of an input or of another output --------------------------
@pytest.mark.parametrize("extra, what, other", [
    (["--log", "{sc}"], "log", "scenario"),
    (["--log", "{d}/x.npz", "--save-state", "{d}/x"], "saved state", "log"),
    (["--log", "{d}/link.toml"], "log", "scenario"),
    (["--log", "{d}/ck", "--checkpoint-every", "10", "--checkpoint-dir", "{d}/ck"],
     "checkpoint directory", "log"),
])
def test_an_output_that_is_an_input_or_another_output_is_refused(tmp_path, capsys, extra,
                                                                  what, other):
    sc = scenario(tmp_path, 40)
    (tmp_path / "link.toml").symlink_to(sc)
    before = Path(sc).read_bytes()
    args = [a.format(sc=sc, d=tmp_path) for a in extra]
    assert main(["run", sc, "-q", *args]) == 2
    line = _only_line(capsys)
    assert f"the {what} would overwrite the {other}" in line, line
    assert Path(sc).read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["link.toml", "short.toml"]  # nothing written


def test_export_and_plot_refuse_to_write_over_their_log(tmp_path, capsys):
    log = tmp_path / "x.parquet"  # export's default output would be the log itself
    assert main(["run", scenario(tmp_path, 10), "-q", "--log", str(log)]) == 0
    data = log.read_bytes()
    capsys.readouterr()
    for cmd in (["export", str(log)], ["plot", str(log), "--waves", "-o", str(log)]):
        if cmd[0] == "export":
            pytest.importorskip("pyarrow")
        else:
            pytest.importorskip("matplotlib")
        assert main(cmd) == 2
        assert "would overwrite the log" in _only_line(capsys)
        assert log.read_bytes() == data


def test_the_api_refuses_a_log_over_its_scenario_file(tmp_path):
    import asyncnet
    sc = asyncnet.Scenario.from_toml(scenario(tmp_path, 10))
    before = Path(sc.path).read_bytes()
    with pytest.raises(outputs.OutputError, match="the log would overwrite the scenario"):
        asyncnet.run(sc, log=sc.path)
    assert Path(sc.path).read_bytes() == before


# -- two processes, one log ----------------------------------------------------------
def test_a_second_run_on_a_log_being_written_is_refused_and_leaves_it_whole(tmp_path, capsys):
    import fcntl
    log = tmp_path / "x.log"
    assert main(["run", scenario(tmp_path, 40), "-q", "--log", str(log)]) == 0
    data = log.read_bytes()
    with open(log, "rb+") as held:  # another run, writing this log: it holds the lock
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        capsys.readouterr()
        other = tmp_path / "other.toml"
        other.write_text(Path(scenario(tmp_path, 40)).read_text().replace("seed = 1", "seed = 2"))
        assert main(["run", str(other), "-q", "--log", str(log)]) == 2
        line = _only_line(capsys)
        assert f"{log}: another asyncnet process is writing this event log" in line, line
        assert log.read_bytes() == data
    assert main(["run", str(other), "-q", "--log", str(log)]) == 0  # once it is free
    assert log.read_bytes() != data


def test_resume_while_the_run_still_writes_its_log_changes_nothing(tmp_path, capsys):
    import fcntl
    log, ck = tmp_path / "x.log", tmp_path / "ck"
    assert main(["run", scenario(tmp_path, 40), "-q", "--log", str(log),
                 "--checkpoint-every", "10", "--checkpoint-dir", str(ck)]) == 0
    unfinish(log)  # a complete run is not resumed at all
    data = log.read_bytes()
    with open(log, "rb+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        capsys.readouterr()
        assert main(["resume", str(ck), "-q"]) == 2
        assert "another asyncnet process is writing this event log" in _only_line(capsys)
        assert log.read_bytes() == data


def test_a_second_run_checkpointing_into_the_same_directory_is_refused(tmp_path, capsys):
    from asyncnet import ckfile
    ck = tmp_path / "ck"
    sc = scenario(tmp_path, 40)
    assert main(["run", sc, "-q", "--no-log", "--checkpoint-every", "10",
                 "--checkpoint-dir", str(ck)]) == 0
    before = {n: (ck / n).read_bytes() for n in os.listdir(ck)}
    import fcntl
    with open(ck / ".lock", "ab") as held:  # another process, checkpointing here
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        capsys.readouterr()
        assert main(["run", sc, "-q", "--no-log", "--checkpoint-every", "10",
                     "--checkpoint-dir", str(ck)]) == 2
        assert "another asyncnet process writes its checkpoints here" in _only_line(capsys)
        assert {n: (ck / n).read_bytes() for n in os.listdir(ck)} == before
    assert ckfile._HELD == {}  # the refused run holds nothing
    assert main(["run", sc, "-q", "--no-log", "--checkpoint-every", "10",
                 "--checkpoint-dir", str(ck)]) == 0
    assert ckfile._HELD == {}  # released at the run's end: another process may write there


def test_a_log_into_dev_null_or_a_pipe_still_works(tmp_path, capsys):
    """The lock's open does not cut a device or a pipe (``truncate`` fails there)."""
    sc = scenario(tmp_path, 20)
    ref = tmp_path / "ref.log"
    assert main(["run", sc, "-q", "--log", str(ref)]) == 0
    assert main(["run", sc, "-q", "--log", os.devnull]) == 0
    fifo = tmp_path / "fifo.log"
    os.mkfifo(fifo)
    got = bytearray()

    def drain():
        with open(fifo, "rb") as f:
            got.extend(f.read())

    import threading
    reader = threading.Thread(target=drain)
    reader.start()
    assert main(["run", sc, "-q", "--log", str(fifo)]) == 0
    reader.join(30)
    assert bytes(got) == ref.read_bytes()


def test_resume_without_its_log_says_so_once(tmp_path, capsys):
    log, ck = tmp_path / "x.log", tmp_path / "ck"
    assert main(["run", scenario(tmp_path, 40), "-q", "--log", str(log),
                 "--checkpoint-every", "10", "--checkpoint-dir", str(ck)]) == 0
    log.rename(tmp_path / "moved.log")
    capsys.readouterr()
    assert main(["resume", str(ck), "-q"]) == 2
    line = _only_line(capsys)
    assert line.count("the event log of the checkpointed run is missing") == 1, line
