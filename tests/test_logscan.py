"""The fast log reader (pieces checked with numpy, bytes hashed in bulk) against
the record-at-a-time reader ``EventLog.raw``, and ``stats`` against a
``Traffic`` fed message by message.

Small read sizes (``CHUNK``) and hold sizes make a small log cross every
path: pieces of plain records, checkpoints inside a piece, records split
across pieces, located ends. Mutated logs (as in ``test_hostile_inputs``)
must give the same records, the same error and the same verdict.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asyncnet.logscan as ls
from asyncnet.logfile import LogError, open_log
from asyncnet.logscan import payload_value
from asyncnet.logtools import scenario_of
from asyncnet.messages import Message, to_quanta
from asyncnet.metrics import Traffic
from asyncnet.network import traffic_horizon
from asyncnet.stats import links_of, log_stats
from tests.test_hostile_inputs import MUTATION, base, mutate

SIZES = [(64, 100), (333, 1000), (4096, 1 << 20), (1 << 20, 1 << 24)]


def _same_payload(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
                and a.tobytes() == b.tobytes())
    return a == b and type(a) is type(b)


def _outcome(path: str, how: str) -> dict:
    """Everything a reader leaves: records, error, counters, verdict."""
    log = None
    recs: list = []
    err = None
    try:
        log = open_log(path, strict=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if how == "raw":
                for r, _ in log.raw():
                    recs.append(r)
            else:
                for chunk in log.chunks(lazy=how == "lazy"):
                    recs += chunk
    except LogError as e:
        err = str(e)
    if log is None:
        return {"err": err}
    return {"err": err, "recs": recs, "count": log.count, "verified": log.verified_count,
            "footer": log.footer, "truncated": log.truncated, "altered": log.altered,
            "checkpoints": log.checkpoints, "tail": log.tail_bytes, "done": log._done}


def _check_same(path: str, monkeypatch) -> None:
    want = _outcome(path, "raw")
    if "recs" not in want:  # the header is refused, whoever reads
        assert _outcome(path, "full") == _outcome(path, "lazy") == want
        return
    for chunk, hold in SIZES:
        monkeypatch.setattr(ls, "PIECE", chunk)
        monkeypatch.setattr(ls, "_HOLD", hold)
        got = _outcome(path, "full")
        assert got.keys() == want.keys()
        for k in want:
            if k != "recs":
                assert got[k] == want[k], (k, chunk, got[k], want[k])
        if "recs" in want:
            assert len(got["recs"]) == len(want["recs"])
            for a, b in zip(got["recs"], want["recs"], strict=True):
                assert a[:6] == b[:6] and _same_payload(a[6], b[6])
        # lazy: array payloads left encoded; the same records where raw read them
        lazy = _outcome(path, "lazy")
        if want["err"] is None or lazy["err"] == want["err"]:
            for k in want:
                if k != "recs":
                    assert lazy[k] == want[k], (k, chunk)
        else:  # only a malformed array can pass unread: what raw read is the same
            assert "corrupt" in want["err"]
        n = min(len(lazy["recs"]), len(want["recs"]))
        for a, b in zip(lazy["recs"][:n], want["recs"][:n], strict=True):
            assert a[:6] == b[:6]
            try:
                assert _same_payload(payload_value(a[6]), b[6])
            except LogError:
                pass


def test_unaltered_log_reads_alike(monkeypatch):
    d, original, _ = base()
    path = os.path.join(d, "scan-original.log")
    with open(path, "wb") as f:
        f.write(original)
    _check_same(path, monkeypatch)
    assert _outcome(path, "raw")["footer"] is not None


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(MUTATION)
def test_mutated_logs_read_alike(monkeypatch, mut):
    d, original, _ = base()
    path = os.path.join(d, "scan-mutated.log")
    with open(path, "wb") as f:
        f.write(mutate(original, [mut]))
    _check_same(path, monkeypatch)


def _reference_stats(path: str) -> dict:
    """The traffic figures the old way: every record a message, fed to Traffic."""
    log = open_log(path)
    sc = scenario_of(log)
    net = sc.build_network()
    tr = Traffic(links_of(log, net), net.inputs(), net.outputs(),
                 horizon=to_quanta(traffic_horizon(net)))
    names = log.agents
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r, _ in log.raw():
            tr([Message(r[1], names[r[2]], names[r[3]], r[4], r[0], r[5], r[6])])
    return tr.summary()


@pytest.mark.parametrize("chunk", [200, 1 << 20])
def test_stats_equal_traffic_fed_message_by_message(chunk, monkeypatch):
    d, original, _ = base()
    path = os.path.join(d, "scan-stats.log")
    with open(path, "wb") as f:
        f.write(original)
    want = _reference_stats(path)
    monkeypatch.setattr(ls, "PIECE", chunk)
    monkeypatch.setattr(ls, "_HOLD", 500)
    got = log_stats(path)
    assert {k: got[k] for k in want} == want
    assert want["latency"]["input_changes_traced"] > 0  # the traces were exercised


@pytest.mark.slow
@settings(max_examples=600, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(MUTATION, min_size=1, max_size=4))
def test_mutated_logs_read_alike_many(monkeypatch, muts):
    d, original, _ = base()
    path = os.path.join(d, "scan-mutated-many.log")
    with open(path, "wb") as f:
        f.write(mutate(original, muts))
    _check_same(path, monkeypatch)
