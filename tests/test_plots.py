"""``asyncnet plot LOG --waves``: wave labels from the log alone, the PNG, clear errors.

The labels are checked against the closed form of the discrete delay model:
an input frame shown from t0 reaches level k at t0 + k; credit for it is
born at the output (level L) once input and target are there, and reaches
level k at t0 + L + (L - k).
"""

import os
import subprocess
import sys

import pytest

from asyncnet import cli
from asyncnet.logfile import open_log
from asyncnet.messages import QUANTA
from asyncnet.scenario import load
from asyncnet.simulation import simulate
from asyncnet.waves import wave_labels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCEN = os.path.join(ROOT, "scenarios")


def _log(tmp_path, name, **edit):
    path = os.path.join(SCEN, f"{name}.toml")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for a, b in edit.items():
        text = text.replace(a, b)
    sc = load(path, text=text)
    log = str(tmp_path / f"{name}.log")
    simulate(sc, log_path=log)
    return log


def _first(steps, frame):
    return next(t for t, v in steps if v >= frame)


def test_wave_labels_constant_input_closed_form(tmp_path):
    lab = wave_labels(_log(tmp_path, "waves_constant"))
    L = 9
    assert lab["frames"] == []
    depth = dict(lab["populations"])
    assert depth == {f"l{k}": k for k in range(L + 1)}
    for k in range(L + 1):
        # the source's first value arrives at t = 1
        assert _first(lab["forward"][f"l{k}"], 0) == 1 + k
        assert _first(lab["credit"][f"l{k}"], 0) == 1 + L + (L - k)


def test_wave_labels_piecewise_fronts(tmp_path):
    lab = wave_labels(_log(tmp_path, "waves_slow"))
    hold, L = 24, 9
    assert lab["frames"] == [hold * j for j in range(1, 5)]
    for j in range(1, 4):
        for k in range(L + 1):
            assert _first(lab["forward"][f"l{k}"], j) == hold * j + k
            assert _first(lab["credit"][f"l{k}"], j) == hold * j + L + (L - k)


def test_wave_labels_until_reads_and_counts_only_that_far(tmp_path, capsys):
    """``plot --until`` counted every record of the log in its summary line, and
    said nothing of an --until past the log's end."""
    log = _log(tmp_path, "waves_slow")
    hold = 24
    times = [r[0] / QUANTA for r in open_log(log).records()]
    whole = wave_labels(log)
    cut = wave_labels(log, until=2.5 * hold)
    assert whole["whole"] and whole["records"] == len(times)
    assert cut["records"] == sum(t <= 2.5 * hold for t in times) < len(times)
    assert cut["frames"] == [hold, 2 * hold] and not cut["whole"] and cut["t_end"] == 60
    for name, steps in whole["forward"].items():  # the labels up to there are the same
        assert cut["forward"][name] == [s for s in steps if s[0] <= 2.5 * hold]
    out = str(tmp_path / "w.png")
    assert cli.main(["plot", log, "--waves", "-o", out, "--until", "60"]) == 0
    said = capsys.readouterr().out
    assert f"({cut['records']:,} records" in said and "up to t=60)" in said
    assert cli.main(["plot", log, "--waves", "-o", out, "--until", "1e6"]) == 0
    said = capsys.readouterr().out
    assert f"({len(times):,} records" in said
    assert f"the log ends at t={times[-1]:g}, before --until 1e+06" in said


def test_plot_cli_writes_png(tmp_path):
    log = _log(tmp_path, "waves_fast")
    out = tmp_path / "w.png"
    r = subprocess.run([sys.executable, "-m", "asyncnet", "plot", log, "--waves", "-o",
                        str(out)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000
    assert "wrote" in r.stdout


@pytest.mark.parametrize("content", [b"", b"not a log at all \x00\xff" * 20,
                                     b"\x93\x01\x02\x03"])
def test_plot_bad_log_is_one_line_error(tmp_path, content, capsys):
    bad = tmp_path / "bad.log"
    bad.write_bytes(content)
    rc = cli.main(["plot", str(bad), "--waves", "-o", str(tmp_path / "x.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("asyncnet: error:")
    assert not (tmp_path / "x.png").exists()


def test_plot_corrupt_record_is_one_line_error(tmp_path, capsys):
    log = _log(tmp_path, "waves_constant")
    with open(log, "rb") as f:
        data = bytearray(f.read())
    k = len(data) // 2
    data[k:k + 40] = b"\xc1" * 40  # 0xc1 is never valid msgpack
    bad = tmp_path / "corrupt.log"
    bad.write_bytes(bytes(data))
    rc = cli.main(["plot", str(bad), "--waves", "-o", str(tmp_path / "x.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("asyncnet: error:")
    assert "corrupt" in err[0]


def test_plot_truncated_log_draws_what_is_there(tmp_path, capsys):
    log = _log(tmp_path, "waves_constant")
    with open(log, "rb") as f:
        data = f.read()
    cut = tmp_path / "cut.log"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="truncated"):
        rc = cli.main(["plot", str(cut), "--waves", "-o", str(tmp_path / "x.png")])
    assert rc == 0
    assert (tmp_path / "x.png").exists()


def test_plot_needs_waves_and_matplotlib(tmp_path, capsys, monkeypatch):
    log = _log(tmp_path, "waves_constant")
    assert cli.main(["plot", log]) == 2
    assert "--waves" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    assert cli.main(["plot", log, "--waves", "-o", str(tmp_path / "y.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    # the install command that works from a checkout (issue 12, point 6)
    assert len(err) == 1 and "pip install -e '" in err[0] and "[plot]'" in err[0]


def test_tension_trace_ends_at_activity_and_credit_of_backprop(tmp_path):
    """The recorded (u+v)/2 and (u-v)/2 settle on the forward pass and on dV/dx."""
    import numpy as np

    from asyncnet.plots import tension_trace

    from . import npref
    log = _log(tmp_path, "leastaction_exact")
    tr = tension_trace(log)
    sc = load(os.path.join(SCEN, "leastaction_exact.toml"))
    net = sc.build_network()
    u, y = sc.build_stream(net).frame_value(0.0)
    order, parents, W, b, act = npref.from_network(net)
    x, a = npref.forward(order, parents, W, b, act, {"l0": u})
    delta = {}
    for v in reversed(order):  # dV/da, written out here: the credit's reference
        g = (x[v] - y) if v == "l10" else sum(W[(v, c)].T @ delta[c] for c in order
                                              if (v, c) in W)
        delta[v] = g * (1 - np.tanh(a[v]) ** 2) if v != "l0" else g
    rows = [r[0] for r in tr["rows"]]
    for v in order:
        for k in range(net.populations[v].size):
            i = rows.index(f"{v}[{k}]")
            assert tr["activity"][i, -1] == pytest.approx(x[v][k], abs=1e-12)
            if v != "l0":
                dsig = 1 - np.tanh(a[v][k]) ** 2
                assert tr["credit"][i, -1] * dsig == pytest.approx(delta[v][k], abs=1e-12)


def test_plot_tension_png_and_refusal(tmp_path, capsys):
    log = _log(tmp_path, "leastaction_rate")
    out = tmp_path / "t.png"
    assert cli.main(["plot", log, "--tension", "-o", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    # the diffusion rule has no tension pair: one clear line
    rc = cli.main(["plot", _log(tmp_path, "waves_constant"), "--tension", "-o",
                   str(tmp_path / "n.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no tension view" in err[0]


def test_wave_labels_dag_longest_paths_decide(tmp_path):
    """On a DAG with skips, activity is of the input's frame after the longest
    path from the input, credit after L plus the longest path to the output."""
    import networkx as nx
    lab = wave_labels(_log(tmp_path, "leastaction_dag"))
    g = load(os.path.join(SCEN, "leastaction_dag.toml")).graph
    L = nx.dag_longest_path_length(g)
    depth = dict(lab["populations"])
    for n in g:
        to_out = max((len(p) - 1 for p in nx.all_simple_paths(g, n, "out")), default=0)
        assert _first(lab["forward"][n], 0) == 1 + depth[n]
        assert _first(lab["credit"][n], 0) == 1 + L + to_out


@pytest.mark.parametrize("call, words", [
    (lambda p, log: p.latency_histogram(log, bins=0), "bins must be a positive integer"),
    (lambda p, log: p.latency_histogram(log, bins="x"), "bins must be a positive integer"),
    (lambda p, log: p.latency_histogram(log, until=float("nan")), "until must be a finite"),
    (lambda p, log: p.raster(log, until=float("inf")), "until must be a finite"),
    (lambda p, log: p.raster(log, agents=["zz", "l1"]), "no agent 'zz'"),
])
def test_plot_functions_refuse_what_they_would_not_draw(tmp_path, call, words):
    """``bins=0`` and ``until=nan`` drew nothing or everything, an unknown agent an
    empty row, each without a word."""
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    from asyncnet import plots
    log = _log(tmp_path, "quickstart", **{"duration = 4000": "duration = 20"})
    with pytest.raises((ValueError, KeyError), match=words):
        call(plots, log)
    fig = plots.raster(log, agents=["l1", "l0"], until=10)  # the same, right, draws
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["l1", "l0"]


def test_draw_tension_needs_two_axes(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from asyncnet import plots
    tr = {"rows": [("h", 1)], "t": np.array([0.0, 1.0]), "activity": np.array([[0.1, 0.2]]),
          "credit": np.array([[0.0, 0.1]]), "scenario": "x"}
    _, one = plt.subplots()
    with pytest.raises(ValueError, match="two axes"):  # "'Axes' object is not iterable"
        plots.draw_tension(tr, ax=one)
