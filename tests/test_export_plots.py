"""Data out and plots for notebooks: export, to_dataframe, ``ax=``, no backend switch."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import numpy as np
import pytest

import asyncnet
from asyncnet import cli
from asyncnet.logfile import open_log

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("xor")
    sc = asyncnet.Scenario(asyncnet.layered([2, 4, 1]), "diffusion", params={"eta": 0.05},
                           seed=1, data={"kind": "xor", "hold": 8}, duration=200)
    log = str(d / "x.log")
    res = asyncnet.run(sc, log=log, record={"l2": ["state"], "l1->l2": ["weight", "grad"]},
                       period=5)
    return res, log, d


def test_log_to_dataframe_matches_records(run):
    _, log, _ = run
    df = open_log(log).to_dataframe()
    recs = list(open_log(log).records())
    assert len(df) == len(recs) == run[0].summary["messages"]["total"]
    names = open_log(log).agents
    for i in (0, len(recs) // 2, len(recs) - 1):
        t, kind, s, d, ts, seq, p = recs[i]
        row = df.iloc[i]
        assert row["time"] == t / 1e6 and row["t_sent"] == ts / 1e6
        assert row["kind"] == ("forward", "delta", "control")[kind]
        assert (row["src"], row["dst"], row["seq"]) == (names[s], names[d], seq)
        v = np.ravel(p)
        assert row["size"] == v.size and row["value"] == v[0]
        assert row["norm"] == pytest.approx(np.linalg.norm(v))
    assert (df["delay"] > 0).all()
    vals = open_log(log).to_dataframe(payload="values")
    assert vals["values"].map(len).tolist() == vals["size"].tolist()


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_command_writes_the_table(run, fmt, capsys):
    pytest.importorskip("pyarrow")
    _, log, d = run
    out = str(d / f"x.{fmt}")
    assert cli.main(["export", log, "--format", fmt, "-o", out]) == 0
    assert "rows" in capsys.readouterr().out
    got = pd.read_parquet(out) if fmt == "parquet" else pd.read_csv(out)
    want = open_log(log).to_dataframe()
    assert len(got) == len(want)
    assert np.array_equal(got["time"].to_numpy(), want["time"].to_numpy())
    assert got["dst"].astype(str).tolist() == want["dst"].astype(str).tolist()
    assert np.allclose(got["mean"].to_numpy(), want["mean"].to_numpy(), equal_nan=True)


def test_export_values_and_bad_log(run, tmp_path, capsys):
    pytest.importorskip("pyarrow")
    _, log, _ = run
    out = str(tmp_path / "v.parquet")
    assert cli.main(["export", log, "--values", "-o", out]) == 0
    got = pd.read_parquet(out)
    assert list(got["values"].iloc[0]) == list(np.ravel(next(open_log(log).records())[6]))
    bad = tmp_path / "bad.log"
    bad.write_bytes(b"not a log")
    capsys.readouterr()
    assert cli.main(["export", str(bad), "-o", str(tmp_path / "b.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("asyncnet: error:")
    assert not (tmp_path / "b.csv").exists()


def test_missing_extra_is_named(run, monkeypatch, capsys):
    res, log, d = run
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    assert cli.main(["export", log, "-o", str(d / "y.parquet")]) == 2
    err = capsys.readouterr().err
    assert "pyarrow" in err and "[export]" in err
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"\[export\]"):
        res.to_dataframe()


def test_result_export_roundtrip(run):
    res, _, d = run
    df = res.to_dataframe()
    n = len(res.times)
    assert len(df) == n * (1 + 4 + 4)
    w = df[(df.agent == "l1->l2") & (df.variable == "weight") & (df["index"] == 3)]
    assert np.array_equal(w["value"].to_numpy(),
                          res.recorded["l1->l2"]["weight"].reshape(n, -1)[:, 3])
    res.export(str(d / "rec.csv"))
    assert len(pd.read_csv(d / "rec.csv")) == len(df)
    if pytest.importorskip("pyarrow"):
        res.export(str(d / "rec.parquet"))
        assert pd.read_parquet(d / "rec.parquet").equals(df)


def test_every_plot_takes_ax_and_returns_the_figure(run):
    plt = pytest.importorskip("matplotlib.pyplot")
    from asyncnet import plots
    from asyncnet.waves import wave_labels
    res, log, _ = run
    fig, axes = plt.subplots(2, 3)
    a = axes.ravel()
    assert plots.raster(log, ax=a[0], until=20) is fig
    assert plots.latency_histogram(log, ax=a[1]) is fig
    assert plots.traces(res, "l2", ax=a[2]) is fig
    assert plots.weight_evolution(res, "l1->l2", ax=[a[3], a[4]]) is fig
    assert plots.draw_waves(wave_labels(log), ax=a[5]) is fig
    assert len(a[2].lines) == 1 and len(a[3].lines) == 4
    plt.close(fig)
    for f in (plots.raster(log), plots.traces(res), plots.weight_evolution(res, "l1->l2")):
        assert f is not None and f.axes
        plt.close(f)


def test_no_library_code_switches_the_backend():
    for dirpath, _, files in os.walk(os.path.join(ROOT, "asyncnet")):
        for fn in files:
            if not fn.endswith(".py"):
                continue
            with open(os.path.join(dirpath, fn), encoding="utf-8") as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    assert not (node.func.attr in ("use", "switch_backend")
                                and getattr(node.func.value, "id", "") in ("matplotlib",
                                                                           "plt")), fn


def test_importing_plots_keeps_the_backend():
    code = ("import matplotlib; matplotlib.use('svg'); import asyncnet.plots, asyncnet.cli; "
            "import matplotlib.pyplot as plt; print(matplotlib.get_backend())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       timeout=60)
    assert r.stdout.strip() == "svg", r.stderr


def _one_error(argv, capsys) -> str:
    rc = cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("asyncnet: error: "), err
    return err[0]


@pytest.mark.parametrize("name, fmt", [("t.csv", "parquet"), ("t.parquet", "csv")])
def test_export_refuses_a_name_that_says_the_other_format(run, tmp_path, capsys, name, fmt):
    """A parquet table was written under a .csv name."""
    pytest.importorskip("pyarrow")
    out = tmp_path / name
    line = _one_error(["export", run[1], "-o", str(out), "--format", fmt], capsys)
    assert f"a {out.suffix} name for a {fmt} table" in line and not out.exists()


def test_export_refuses_an_ending_that_names_no_format(run, tmp_path, capsys):
    """``-o t.txt`` wrote a parquet table under a name that says text."""
    pytest.importorskip("pyarrow")
    out = tmp_path / "t.txt"
    line = _one_error(["export", run[1], "-o", str(out)], capsys)
    assert "the ending .txt names no table format" in line and "--format csv" in line
    assert not out.exists()
    assert cli.main(["export", run[1], "-o", str(out), "--format", "csv"]) == 0
    assert out.read_text().startswith('"time","kind"')
    pq = tmp_path / "t.pq"  # the short parquet ending is one
    assert cli.main(["export", run[1], "-o", str(pq)]) == 0
    assert len(pd.read_parquet(pq)) == run[0].summary["messages"]["total"]


@pytest.mark.parametrize("name, fmt, said", [("rec.txt", None, "names no table format"),
                                             ("rec.csv", "parquet", "a .csv name for a parquet"),
                                             ("rec.pq", "csv", "a .pq name for a csv"),
                                             ("rec.csv", "xlsx", "format must be")])
def test_result_export_refuses_a_name_or_format_it_cannot_honour(run, tmp_path, name, fmt,
                                                                  said):
    """``Result.export("rec.txt")`` wrote parquet; ``("rec.csv", "parquet")`` parquet as .csv."""
    with pytest.raises(ValueError, match=said):
        run[0].export(str(tmp_path / name), fmt)
    assert not (tmp_path / name).exists()


def test_result_export_writes_whole_or_leaves_the_file_as_it_was(run, tmp_path, monkeypatch):
    """``Result.export`` wrote into the file itself: a full disk left half a table
    where the last good one had been."""
    import errno
    out = tmp_path / "rec.csv"
    out.write_text("the last good table\n")

    def full(self, f, **kw):
        f.write(b"time,agent\n0.0,l2\n")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    with pytest.raises(asyncnet.outputs.OutputError, match="No space left on device") as e:
        run[0].export(str(out))
    assert str(out) in str(e.value)
    assert out.read_text() == "the last good table\n"
    assert os.listdir(tmp_path) == ["rec.csv"]


def test_export_refuses_a_missing_directory_as_plot_does(run, tmp_path, capsys):
    """``export -o new/dir/t.csv`` made the directories, where ``plot -o`` and
    ``Result.export`` refuse a missing one."""
    pytest.importorskip("pyarrow")
    out = tmp_path / "new dir" / "ü.csv"
    line = _one_error(["export", run[1], "-o", str(out)], capsys)
    assert f"directory {tmp_path / 'new dir'} does not exist" in line
    assert not (tmp_path / "new dir").exists()
    (tmp_path / "new dir").mkdir()
    assert cli.main(["export", run[1], "-o", str(out)]) == 0
    assert out.read_text().count("\n") == run[0].summary["messages"]["total"] + 1


def test_plot_refuses_a_figure_ending_matplotlib_cannot_write(run, tmp_path, capsys):
    """It was matplotlib's ValueError traceback, after the figure was drawn."""
    out = tmp_path / "w.xyz"
    line = _one_error(["plot", run[1], "--waves", "-o", str(out)], capsys)
    assert f"{out}: matplotlib writes no .xyz figure (endings: " in line and "png" in line
    assert not out.exists()
    line = _one_error(["plot", run[1], "--waves", "-o", str(tmp_path / "no" / "w.png")],
                      capsys)
    assert f"directory {tmp_path / 'no'} does not exist" in line


def test_run_refuses_a_log_and_no_log_together(capsys):
    """``--no-log --log x.log`` ran without a log and said nothing."""
    with pytest.raises(SystemExit) as e:
        cli.main(["run", os.path.join(ROOT, "scenarios", "quickstart.toml"), "--no-log",
                  "--log", "x.log"])
    assert e.value.code == 2
    assert "--log: not allowed with argument --no-log" in capsys.readouterr().err
