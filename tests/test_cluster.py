"""Distributed runs: byte-identical logs and equal summaries on 1..4 workers.

The independent reference is the in-process run (``simulation.simulate``),
which shares no code with the cluster's partitioning, windows, wire format
or merge. Every scenario in ``scenarios/`` is covered (with a shortened
duration), so schemes that land later are checked automatically.
"""

from __future__ import annotations

import glob
import os
import re

import numpy as np
import pytest

from asyncnet.cluster import simulate_distributed
from asyncnet.cluster.partition import partition
from asyncnet.eventlog import EventLog
from asyncnet.scenario import load
from asyncnet.simulation import build_engine, simulate
from asyncnet.stats import log_stats

from .helpers import random_dag

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENARIOS = sorted(glob.glob(os.path.join(ROOT, "scenarios", "*.toml")))
SHORT = 24.0  # simulated time per scenario in the default suite
VOLATILE = ("wall_seconds", "messages_per_second", "log", "state", "cluster")


def shortened(path: str, duration: float = SHORT):
    """The scenario with at most ``duration`` time units (text rewritten, so
    the workers, which load the text, see the same scenario)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    sc = load(path, text=text)
    if hasattr(sc.build_rule(), "run_scenario"):
        # gradep trains in its own loop (checkpoints, batch split over processes:
        # tests/test_gradep_engine.py), not through the logged cluster pipeline
        pytest.skip(f"{sc.name}: rule {sc.rule_name!r} runs its own training loop")
    if sc.duration > duration:
        text, n = re.subn(r"(?m)^duration\s*=\s*[0-9.eE+-]+", f"duration = {duration}", text,
                          count=1)
        assert n == 1, f"{path}: cannot shorten"
        # a sweep of hold times is an extra set of unlogged runs: keep it small too
        text = re.sub(r"(?m)^holds\s*=\s*\[[^\]]*\]", "holds = [1, 5]", text)
        sc = load(path, text=text)
    return sc


def run_both(sc, tmp_path, ns, **kw):
    ref_log = tmp_path / "ref.log"
    ref = simulate(sc, log_path=str(ref_log), save_state=str(tmp_path / "ref.npz"))
    ref_bytes = ref_log.read_bytes()
    for n in ns:
        log = tmp_path / f"w{n}.log"
        got = simulate_distributed(sc, workers=n, log_path=str(log),
                                   save_state=str(tmp_path / f"w{n}.npz"), **kw)
        assert log.read_bytes() == ref_bytes, f"{sc.name}: log differs with {n} workers"
        # every figure of the in-process summary (analyses added later included)
        for k in ref:
            if k not in VOLATILE:
                assert got.get(k) == ref[k], f"{sc.name}, {n} workers: {k} differs"
        assert got["log"]["digest"] == ref["log"]["digest"]
        a, b = np.load(tmp_path / "ref.npz"), np.load(tmp_path / f"w{n}.npz")
        assert sorted(a.files) == sorted(b.files)
        for f in a.files:
            assert np.array_equal(a[f], b[f]), f
        c = got["cluster"]
        assert len(c["workers"]) == n
        # the per-worker figures, as asyncnet stats reports them from the log
        st = log_stats(str(log))
        assert st["cluster"] == c and st["messages"] == ref["messages"]
        assert sum(w["delivered"] for w in c["workers"]) == ref["messages"]["total"]
        # messages across the cut, against the log and the partition recomputed here
        eng, net, _ = build_engine(sc, local=[])
        p = partition(eng.links, n, kw.get("method") or "auto", starts=net.inputs())
        crossing = sum(1 for m in EventLog(str(log)).messages()
                       if p.owner[m.src] != p.owner[m.dst])
        sent = sum(w["cut_sent"] for w in c["workers"])
        recv = sum(w["cut_received"] for w in c["workers"])
        assert crossing <= recv <= sent  # the rest was still in flight at the end
        assert c["cut_links"] == len(p.cut)
    return ref


@pytest.mark.parametrize("path", SCENARIOS, ids=[os.path.basename(p) for p in SCENARIOS])
def test_scenarios_identical_on_1_to_4_workers(path, tmp_path):
    sc = shortened(path)
    # every worker process costs ~0.4 s of start-up: the full 1..4 for the
    # diffusion scenarios here, 3 workers for the others (1..4 in the slow test)
    ns = (1, 2, 3, 4) if sc.rule_name == "diffusion" else (3,)
    ref = run_both(sc, tmp_path, ns)
    assert ref["messages"]["total"] > 0
    log = EventLog(str(tmp_path / f"w{ns[-1]}.log"))
    ok, n = log.verify_digest()
    assert ok and n == ref["messages"]["total"]


def scenario_text(g, rule: str, data: str, seed: int, duration: float) -> str:
    lines = [f'[scenario]\nname = "rand{seed}"\nseed = {seed}\nduration = {duration}\n',
             "[network]"]
    nodes, edges = [], []
    for n, a in g.nodes(data=True):
        nodes.append(f'{{name = "{n}", size = {a["size"]}, activation = "{a["activation"]}", '
                     f'role = "{a["role"]}"}}')
    for u, v, a in g.edges(data=True):
        edges.append(f'{{pre = "{u}", post = "{v}", delay = {a["delay"]!r}}}')
    lines.append("nodes = [" + ",\n  ".join(nodes) + "]")
    lines.append("edges = [" + ",\n  ".join(edges) + "]\n")
    lines.append(f"[rule]\n{rule}\n\n[data]\n{data}\n\n[analysis]\nkind = \"accuracy\"\n")
    return "\n".join(lines)


RULES = [
    'name = "diffusion"\neta = 0.05\ninit_state = "random"',
    'name = "leastaction"\nmode = "async"\neta = 0.02\nperiod = 0.7\njitter = 0.3',
]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("rule", [0, 1], ids=["diffusion", "leastaction-async"])
def test_random_graphs_random_delays(seed, rule, tmp_path):
    # delays on a coarse random grid plus odd values, so instants collide
    # (canonical order matters) and the cut's lookahead is irregular
    def delay(rng):
        return float(rng.choice([0.5, 1.0, 1.5, 2.0, 0.37, 2.71]))

    g = random_dag(100 + seed, n_hidden=5 + seed, p=0.5, delay=delay)
    text = scenario_text(g, RULES[rule], 'kind = "piecewise"\nhold = 3\npatterns = 4',
                         seed, 30.0)
    path = tmp_path / "rand.toml"
    path.write_text(text)
    sc = load(str(path))
    ns = (2, 3) if seed % 2 else (2, 4)
    method = {2: "round-robin", 3: "metis-cut"}.get(seed)
    if method == "metis-cut":
        pytest.importorskip("pymetis")
    ref = run_both(sc, tmp_path, ns, method=method)
    if seed == 1:  # without a log the workers send lighter records: same figures
        got = simulate_distributed(sc, workers=2)
        for k in ("messages", "locality", "link_delay", "latency", "result"):
            assert got[k] == ref[k], k


@pytest.mark.slow
@pytest.mark.parametrize("path", SCENARIOS, ids=[os.path.basename(p) for p in SCENARIOS])
def test_scenarios_identical_longer_every_n(path, tmp_path):
    run_both(shortened(path, 200.0), tmp_path, (1, 2, 3, 4))


def test_checkpoints_identical_when_distributed(tmp_path, monkeypatch):
    """Checkpoints every 1,000 records: the merged log still equals the
    in-process one byte for byte, and every checkpoint checks out on reading."""
    import asyncnet.eventlog as ev
    monkeypatch.setattr(ev, "CHECKPOINT", 1000)
    sc = load(os.path.join(ROOT, "scenarios", "quickstart.toml"))
    a, b = str(tmp_path / "a.log"), str(tmp_path / "b.log")
    simulate(sc, log_path=a)
    simulate_distributed(sc, workers=2, log_path=b)
    assert open(a, "rb").read() == open(b, "rb").read()
    log = EventLog(b)
    n = sum(1 for _ in log.records())
    sealed = [c for c in log.checkpoints if c["checkpoint"] > 0]  # 0: the header's seal
    assert len(sealed) == n // 1000 > 10


def test_windows_grow_and_shrink_with_their_messages_and_change_nothing(tmp_path, monkeypatch):
    """Windows follow the messages they deliver (``WINDOW_MESSAGES``): a small one
    is followed by a longer one, up to the lookahead, a large one by a shorter one.
    Whatever the windows, the log is the in-process one byte for byte."""
    import asyncnet.cluster.coordinator as co
    # 10 units: the first windows (1/50 of the run) are shorter than the lookahead
    sc = shortened(os.path.join(ROOT, "scenarios", "quickstart.toml"), 10.0)
    ref = str(tmp_path / "ref.log")
    simulate(sc, log_path=ref)
    lengths: list[list[int]] = []  # each run's windows, one list a run
    grow = co._Run._next_window

    def seen(run, delivered, length):
        grow(run, delivered, length)
        lengths[-1].append(run.window)  # the next window's length

    monkeypatch.setattr(co._Run, "_next_window", seen)
    counts = {}
    for target in (10**9, 2):  # windows grow to the lookahead; they go up and down
        monkeypatch.setattr(co, "WINDOW_MESSAGES", target)
        log = tmp_path / f"w{target}.log"
        lengths.append([])
        got = simulate_distributed(sc, workers=2, log_path=str(log))
        assert log.read_bytes() == open(ref, "rb").read()
        counts[target] = got["cluster"]["windows"]
    first, second = lengths
    assert first[0] < max(first) and sorted(first) == first  # only longer
    assert any(b < a for a, b in zip(second, second[1:], strict=False))  # shorter after a large one
    assert any(b > a for a, b in zip(second, second[1:], strict=False))
    assert counts[10**9] < counts[2]


def test_workers_import_the_coordinators_asyncnet_from_any_directory(tmp_path, monkeypatch):
    """Run from a directory that holds another ``asyncnet`` (a second checkout,
    say), the local workers still import the coordinator's: ``python -m`` would
    put the working directory ahead of the PYTHONPATH the workers are given."""
    other = tmp_path / "asyncnet"
    other.mkdir()
    (other / "__init__.py").write_text("raise ImportError('another asyncnet')\n")
    (other / "__main__.py").write_text("raise SystemExit('another asyncnet')\n")
    sc = shortened(os.path.join(ROOT, "scenarios", "quickstart.toml"), 4.0)
    ref = simulate(sc)
    monkeypatch.chdir(tmp_path)
    got = simulate_distributed(sc, workers=2, timeout=60.0)
    assert got["messages"] == ref["messages"] and got["cluster"]["windows"] > 0
