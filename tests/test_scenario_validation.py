"""Every malformed scenario value gets one clear line (exit 2), before anything runs.

One case per class of ``tools/scenario_corpus.py`` (non-finite and wrong-typed
numbers, wrong items in lists, scheme parameters of the wrong type, sizes the
machine cannot hold, schedules too long to build, keys that do not apply),
and a property test that puts hostile values into a real scenario's keys.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import tomllib

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncnet.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def base(name: str = "quickstart") -> dict:
    with open(os.path.join(ROOT, "scenarios", name + ".toml"), "rb") as f:
        d = tomllib.load(f)
    d["scenario"]["duration"] = min(d["scenario"]["duration"], 40)
    return d


class LongRun(BaseException):
    """A valid scenario still running after ``LONG_RUN`` seconds (not an Exception, so
    no handler of the CLI can take it for an error)."""


LONG_RUN = 30
"""Seconds after which a hostile but valid value (``duration = 1e7``) counts as a
legitimate long run: it is stopped, and it did not crash."""


def run(doc: dict, tmp_path, long_ok: bool = False) -> tuple[int, list[str]]:
    p = tmp_path / "s.toml"
    p.write_text(tomli_w.dumps(doc), encoding="utf-8")
    err = io.StringIO()

    def stop(signum, frame):
        raise LongRun
    old = signal.signal(signal.SIGALRM, stop) if long_ok else None
    if long_ok:
        signal.alarm(LONG_RUN)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(["run", str(p), "--no-log", "-q"])
    except LongRun:
        rc = 0
    finally:
        if long_ok:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
    lines = [ln for ln in err.getvalue().splitlines() if "warning" not in ln]
    return rc, lines


def with_(doc: dict, sec: str, key: str, val) -> dict:
    doc.setdefault(sec, {})[key] = val
    return doc


CASES = [
    (("scenario", "duration", float("inf")), "finite"),
    (("scenario", "duration", float("nan")), "finite"),
    (("scenario", "duration", 1e300), "too long"),
    (("scenario", "seed", 2 ** 80), "out of range"),
    (("data", "hold", 1e-9), "frames"),
    (("data", "hold", "3"), "number"),
    (("data", "input", [1, "a"]), "item 2"),
    # a matrix must be one: numpy refused a ragged one later, with a traceback
    (("data", "input", [[1, 2], [3]]), "not rectangular: item 2 has shape [1], item 1 [2]"),
    (("data", "target", [[[1], [2]], [[3], 4]]), "mixes numbers and lists"),
    (("data", "target", [[1], 2]), "mixes numbers and lists: item 2 is 2"),
    (("analysis", "holds", [[1, 2], [3]]), "item 1 must be a finite number"),
    (("analysis", "betas", [[0.1]]), "item 1 must be a finite number"),
    (("rule", "eta", "0.1"), "finite number"),
    (("rule", "eta", float("nan")), "finite number"),
    (("rule", "init_state", "later"), "one of"),
    (("analysis", "tolerance", 1e-3), "does not apply"),
    (("data", "batch", 0), "between 1"),
    # data for a population of another role: a target at a hidden one was dropped
    (("data", "output_node", "l1"), "population 'l1' has role 'hidden'; targets are"),
    (("data", "output_node", "l0"), "population 'l0' has role 'input'"),
    (("data", "input_node", "l1"), "population 'l1' has role 'hidden'; inputs are"),
    (("data", "target", [1.0]), "does not apply to data kind 'xor'"),
    (("analysis", "kind", "gradient"), "does not apply to rule"),
    (("cluster", "workers", 0), "at least 1"),
    (("network", "layers", [2, 10 ** 9, 1]), "GiB"),
    (("network", "delay", 2.2e301), "too long"),  # its quanta would overflow a float horizon
    (("network", "delay", 1e10), "too long"),
]


@pytest.mark.parametrize("change,words", CASES, ids=[f"{c[0]}.{c[1]}" for c, _ in CASES])
def test_one_clear_line(change, words, tmp_path):
    rc, lines = run(with_(base(), *change), tmp_path)
    assert rc == 2 and len(lines) == 1, lines
    assert lines[0].startswith("asyncnet: error: ") and words in lines[0]
    assert f"[{change[0]}]" in lines[0]


@pytest.mark.parametrize("key", ["leg", "settle"])
def test_gradient_check_window_far_longer_than_the_run(key, tmp_path):
    """A gradient check simulates window 0 whatever the duration: a huge leg is refused
    at once (it ran for ever, found by test_hostile_values_never_crash_many)."""
    doc = with_(base("ep_gradient"), "data", key, 34880627585575012)
    rc, lines = run(doc, tmp_path)
    assert rc == 2 and len(lines) == 1, lines
    assert "[data] settle/leg" in lines[0] and "gradient analysis" in lines[0]


@pytest.mark.parametrize("name,key,value", [("coupled_conservation", "target", [0.5]),
                                            ("coupled_conservation", "input", [1.0]),
                                            ("ep_gradient", "patterns", 4),
                                            ("ep_gradient", "samples", 10),
                                            ("ep_digits", "target", [1.0]),
                                            ("stlp_fixedpoint_dag", "period", 50),
                                            ("stlp_fixedpoint_dag", "lag", 2)])
def test_an_energy_dataset_refuses_a_key_it_would_ignore(name, key, value, tmp_path):
    """The generic data kinds refused a key they would ignore; the energy rules'
    datasets took it and did nothing (``target`` for a linear teacher, ``patterns``
    for one constant pattern)."""
    rc, lines = run(with_(base(name), "data", key, value), tmp_path)
    assert rc == 2 and len(lines) == 1, lines
    assert f"[data] key {key!r} does not apply to data kind" in lines[0]


@pytest.mark.parametrize("key,value", [("leg", 1e-15), ("settle", 5e-7), ("release", 1e-9)])
def test_a_nudge_schedule_part_shorter_than_a_quantum(key, value, tmp_path):
    """A part of the schedule shorter than the clock's quantum ended where it began:
    the gradient check's probe of the free phase never ran, a traceback (found by
    test_hostile_values_never_crash_many: leg = 1e-15)."""
    rc, lines = run(with_(base("ep_gradient"), "data", key, value), tmp_path)
    assert rc == 2 and len(lines) == 1, lines
    assert f"[data] {key} must be at least one time quantum" in lines[0]
    doc = with_(base("ep_gradient"), "data", key, 2e-6)  # two quanta: runs
    doc["scenario"]["duration"] = 400
    rc, lines = run(doc, tmp_path)
    assert rc == 0, lines


NODES = [{"name": "a", "size": 2, "role": "input"}, {"name": "b", "size": 2, "role": "output"}]


@pytest.mark.parametrize("node_bias,weight,words", [
    (None, [[1.0, 2.0], [3.0]], "[[network.edges]] #1 key 'weight' is not rectangular"),
    ([[1.0], 2.0], None, "[[network.nodes]] #2 key 'bias' mixes numbers and lists"),
    (None, [[0.1, 0.2], [0.3, 0.4]], None),  # a matrix: runs
])
def test_ragged_matrices_in_the_network(node_bias, weight, words, tmp_path):
    nodes = [dict(n) for n in NODES]
    if node_bias is not None:
        nodes[1]["bias"] = node_bias
    edge = {"pre": "a", "post": "b", **({"weight": weight} if weight is not None else {})}
    doc = {"scenario": {"duration": 10}, "rule": {"name": "diffusion"},
           "network": {"nodes": nodes, "edges": [edge]}}
    rc, lines = run(doc, tmp_path)
    if words is None:
        assert rc == 0, lines
    else:
        assert rc == 2 and len(lines) == 1 and words in lines[0], lines


@pytest.mark.parametrize("scenario", ["continuous_cyclic", "ep_gradient", "ep_symmetric",
                                      "stlp_fixedpoint_dag"])
def test_a_net_too_large_to_flatten_is_refused_before_the_run(scenario, tmp_path, monkeypatch):
    """The analyses' references and the faces flatten the net to dense N × N matrices:
    a first layer of 10⁵ ran into numpy's MemoryError (a traceback), for the EP
    gradient check only after the whole run. The machine's memory is fixed here at
    24 GiB, so the case does not depend on the box."""
    monkeypatch.setattr("asyncnet.network.machine_memory", lambda: 24 << 30)
    doc = base(scenario)
    if "layers" in doc["network"]:
        doc["network"]["layers"][0] = 10 ** 5
    else:
        doc["network"]["nodes"][0]["size"] = 10 ** 5
    rc, lines = run(doc, tmp_path)
    assert rc == 2 and len(lines) == 1, lines
    assert "dense 100,0" in lines[0] or "dense 1000" in lines[0], lines


@pytest.mark.parametrize("period", [1e300, 1e15, 70_000])
def test_stlp_tracking_free_run_far_longer_than_the_run(period, tmp_path):
    """The tracking analysis runs a free recursion of 2 × period steps after the run:
    period = 1e300 was numpy's "maximum dimension" error, 1e15 its MemoryError, both
    after the whole run; now refused before it (the run is 12,000 steps)."""
    doc = base("stlp_sines")
    doc["scenario"]["duration"] = 12_000
    doc["data"]["period"] = period
    rc, lines = run(doc, tmp_path)
    assert rc == 2 and len(lines) == 1, lines
    assert "[analysis] the tracking analysis's free run is 2 × [data] period" in lines[0]


def test_dense_check_is_the_machine_memory_against_four_matrices(monkeypatch):
    from asyncnet.network import NetworkError, check_dense
    n = 1000
    monkeypatch.setattr("asyncnet.network.machine_memory", lambda: 4 * 8 * n * n)
    check_dense(n)  # exactly fits
    with pytest.raises(NetworkError, match="1,001 × 1,001 matrix"):
        check_dense(n + 1)
    monkeypatch.setattr("asyncnet.network.machine_memory", lambda: 0)  # unknown: no refusal
    check_dense(10 ** 6)


def test_an_edge_given_twice_is_refused(tmp_path):
    """networkx merged the two (the later delay won, one projection): silently."""
    edges = [{"pre": "a", "post": "b", "delay": 1.0}, {"pre": "a", "post": "b", "delay": 3.0}]
    doc = {"scenario": {"duration": 10}, "rule": {"name": "diffusion"},
           "network": {"nodes": [dict(n) for n in NODES], "edges": edges}}
    rc, lines = run(doc, tmp_path)
    assert rc == 2 and len(lines) == 1, lines
    assert "[[network.edges]] #2 a -> b is given twice" in lines[0]
    doc["network"]["edges"] = edges[:1]  # once: runs
    rc, lines = run(doc, tmp_path)
    assert rc == 0, lines


def test_analysis_that_does_not_fit_the_network(tmp_path):
    doc = base("continuous_cyclic")
    doc["analysis"] = {"kind": "exactness"}  # exactness needs a DAG's depth and constant data
    rc, lines = run(doc, tmp_path)
    assert rc == 2 and len(lines) == 1 and "acyclic" in lines[0]


HOSTILE = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5),
                    st.integers(min_value=-2 ** 70, max_value=2 ** 70), st.booleans(),
                    st.lists(st.one_of(st.floats(), st.text(max_size=2)), max_size=3),
                    # nested: ragged, mixed or rectangular (a matrix where one is allowed)
                    st.lists(st.one_of(st.floats(-1, 1), st.lists(st.floats(-1, 1), max_size=2)),
                             max_size=3))


FAST = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(data=st.data())
def test_hostile_values_never_crash(data, tmp_path):
    hostile_value_case(data, tmp_path)


@pytest.mark.slow
@SLOW
@given(data=st.data())
def test_hostile_values_never_crash_many(data, tmp_path):
    hostile_value_case(data, tmp_path)


def hostile_value_case(data, tmp_path) -> None:
    doc = base(data.draw(st.sampled_from(["quickstart", "leastaction_exact", "ep_gradient",
                                          "stlp_fixedpoint_dag"])))
    sec = data.draw(st.sampled_from([s for s in ("scenario", "network", "rule", "data",
                                                 "analysis") if isinstance(doc.get(s), dict)]))
    keys = [k for k in doc[sec] if k not in ("nodes", "edges", "name")] or ["extra"]
    key = data.draw(st.sampled_from(keys))
    val = data.draw(HOSTILE)
    try:
        doc2 = tomllib.loads(tomli_w.dumps(with_(doc, sec, key, val)))
    except (TypeError, ValueError):
        return  # not representable in TOML
    rc, lines = run(doc2, tmp_path, long_ok=True)
    if rc == 2:
        assert len(lines) == 1 and lines[0].startswith("asyncnet: error: ")
    else:
        assert rc in (0, 3), lines


def _ck_files(d) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_output_checkpoint_keys(tmp_path):
    """[output] checkpoint_every / checkpoint_dir do what the flags do; the flags win."""
    doc = base()
    doc["output"] = {"checkpoint_every": 10.0, "checkpoint_dir": str(tmp_path / "ck")}
    rc, lines = run(doc, tmp_path)
    assert rc == 0, lines
    keyed = _ck_files(tmp_path / "ck")
    assert keyed, "no checkpoint written"
    # the same scenario with the flag: the flag's period and directory win
    p = tmp_path / "s2.toml"
    p.write_text(tomli_w.dumps(doc), encoding="utf-8")
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["run", str(p), "--no-log", "-q", "--checkpoint-every", "1000",
                   "--checkpoint-dir", str(tmp_path / "flag")])
    assert rc == 0 and _ck_files(tmp_path / "flag") == []  # 1000 > duration 40: none


@pytest.mark.parametrize("scenario,output,words", [
    ("quickstart", {"checkpoint_dir": "x"}, "needs --checkpoint-every"),
    ("quickstart", {"checkpoint_every": -1.0}, "checkpoint_every"),
    ("floweqprop_short", {"checkpoint_every": 5.0}, "its own training loop"),
])
def test_output_checkpoint_keys_refused(scenario, output, words, tmp_path):
    doc = base(scenario)
    doc.setdefault("output", {}).update(output)
    rc, lines = run(doc, tmp_path)
    assert rc == 2 and len(lines) == 1, lines
    assert lines[0].startswith("asyncnet: error: ") and words in lines[0]
