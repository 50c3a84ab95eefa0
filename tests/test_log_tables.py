"""``tables.log_batches`` (columns a block at a time) against the records one by one.

The reference here is written from ``EventLog.records()`` (every payload
decoded by the strict reader) with plain Python and numpy per record. Every
row of every column must be the same, bit for bit (NaN, -0.0 and overflowing
payloads included), on per-neuron logs (single-number payloads, the fast
path), population logs (vectors), logs with every payload kind, and at batch
sizes that cut blocks.
"""

from __future__ import annotations

import math
import os
import struct
import warnings

import numpy as np
import pytest

from asyncnet.eventlog import EventLogWriter
from asyncnet.logfile import LogError, open_log
from asyncnet.messages import KIND_NAMES, QUANTA, Message
from asyncnet.scenario import load
from asyncnet.simulation import simulate
from asyncnet.tables import COLUMNS, log_batches

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scenarios")


def _bits(x):
    if type(x) is list:
        return [_bits(y) for y in x]
    return struct.pack("<d", x) if type(x) is float else x


def _reference(path: str, values: bool) -> dict[str, list]:
    log = open_log(path)
    names = log.agents
    out: dict[str, list] = {c: [] for c in COLUMNS + (("values",) if values else ())}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t, kind, s, d, ts, seq, p in log.records():
            v = (np.empty(0) if p is None else np.ravel(p).astype(float)
                 if isinstance(p, (np.ndarray, list)) else np.array([p], dtype=float))
            out["time"].append(t / QUANTA)
            out["kind"].append(KIND_NAMES[kind])
            out["src"].append(names[s])
            out["dst"].append(names[d])
            out["t_sent"].append(ts / QUANTA)
            out["delay"].append((t - ts) / QUANTA)
            out["seq"].append(seq)
            out["size"].append(v.size)
            out["value"].append(float(v[0]) if v.size else math.nan)
            out["mean"].append(float(np.mean(v)) if v.size else math.nan)
            out["norm"].append(float(np.sqrt(np.dot(v, v))) if v.size else math.nan)
            if values:
                out["values"].append(v.tolist())
    return out


def _check(path: str, batch_size: int = 65_536, values: bool = False) -> int:
    want = _reference(path, values)
    got: dict[str, list] = {c: [] for c in want}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = list(log_batches(open_log(path), "values" if values else "summary",
                                   batch_size))
    assert all(len(b["time"]) == batch_size for b in batches[:-1])
    for b in batches:
        assert set(b) == set(want)
        for c in b:
            got[c] += b[c]
    for c in want:
        assert [_bits(x) for x in got[c]] == [_bits(x) for x in want[c]], c
        assert [type(x) for x in got[c]] == [type(x) for x in want[c]], c
    return len(want["time"])


@pytest.mark.parametrize("name", ["quickstart", "diffusion_exact", "ep_gradient",
                                  "continuous_cyclic", "stlp_fixedpoint_dag"])
def test_scenario_logs(tmp_path, name):
    path = str(tmp_path / f"{name}.log")
    simulate(load(os.path.join(ROOT, f"{name}.toml")), log_path=path)
    assert _check(path) > 0
    if name == "quickstart":
        assert _check(path, batch_size=1000, values=True) > 0


def test_every_payload_kind(tmp_path):
    """Floats (NaN, -0.0, huge), vectors of one and of many, 2-D arrays, ints, None, tuples."""
    names = [f"a{i}" for i in range(4)]
    pays = [1.5, -0.0, math.nan, float("inf"), 1e300, -5e-324, np.array([-0.0]),
            np.array([math.nan]), np.array([1e200]), np.array([2.0, -3.0, 4.0]),
            np.zeros((2, 3)) + 0.5, np.array(7.0), np.zeros(0), 3, None, (1.0, 2.5),
            np.array([1.0], dtype=np.float32)]
    path = str(tmp_path / "kinds.log")
    w = EventLogWriter(path, {"agents": names, "scenario": "", "scenario_path": "", "seed": 0})
    seq = 0
    for t in range(1, 60):
        batch = []
        for k, p in enumerate(pays[t % 3::3] if t % 2 else pays):
            seq += 1
            batch.append(Message(k % 3, names[k % 4], names[(t + 1) % 4], t * 10 - 1, t * 10,
                                 seq, p))
        batch.sort()
        w.instant([batch])
    w.close()
    assert _check(path) > 0
    _check(path, batch_size=7, values=True)


def test_a_malformed_array_payload_is_an_error(tmp_path):
    """A lazily read payload that does not decode stops the table with a LogError."""
    import msgpack

    from asyncnet.eventlog import _packer
    names = ["a", "b"]
    path = str(tmp_path / "bad.log")
    w = EventLogWriter(path, {"agents": names, "scenario": "", "scenario_path": "", "seed": 0})
    w.instant([[Message(0, "a", "b", 1, 2, 1, np.array([1.0]))]])
    w.close()
    data = open(path, "rb").read()
    good = _packer().pack(msgpack.ExtType(1, struct.pack("<BI", 1, 1) + struct.pack("<d", 1.0)))
    bad = msgpack.packb(msgpack.ExtType(1, struct.pack("<BI", 1, 2) + struct.pack("<d", 1.0)))
    assert data.count(good) == 1 and len(good) == len(bad)
    open(path, "wb").write(data.replace(good, bad))
    with pytest.raises(LogError):
        list(log_batches(open_log(path, strict=False)))
