"""The column readers (compiled and numpy scans) against the msgpack path and ``EventLog.raw``.

:func:`asyncnet.logcols.read_columns` with its numba kernel, and with the
numpy scanner (:mod:`asyncnet.logvec`), must each leave exactly what the
msgpack path (``read_blocks``, used when the kernel is
off) leaves — the same columns, sequence numbers, lazy payloads, counts,
checkpoints, footer, flags and warnings, or the same ``LogError`` message —
and the six integer fields must be those ``EventLog.raw`` reads record by
record. Checked on real logs of several scenarios (one past a checkpoint at
100,000 records, a truncated one, an interrupted one, a cluster-merged one),
on logs written by the real writer from random record streams (every
payload kind), and on hostile logs: forged records whose digests match,
flipped and cut bytes, garbage after the footer. Small pieces and blocks
make every log cross the kernel's stops (a record cut by a piece's end, a
full block). ``log_stats`` is compared the same way, and against a
``Traffic`` fed message by message.
"""

from __future__ import annotations

import itertools
import math
import os
import struct
import warnings

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asyncnet.eventlog as ev
import asyncnet.logcols as lc
import asyncnet.logscan as ls
import asyncnet.logvec as lv
from asyncnet.eventlog import EventLogWriter, _sealed
from asyncnet.logfile import EventLog, LogError, open_log
from asyncnet.messages import Message, encode_payload
from asyncnet.scenario import load
from asyncnet.simulation import build_engine, log_header, simulate
from asyncnet.stats import log_stats
from tests.test_hostile_inputs import MUTATION, base, mutate
from tests.test_logscan import _reference_stats

HAS_KERNEL = lc.kernel() is not None  # no numba, or ASYNCNET_NO_NUMBA
FAST = ["vector"] + (["compiled"] if HAS_KERNEL else [])
"""The scans compared with the msgpack path (the reference here)."""
needs_kernel = pytest.mark.skipif(not HAS_KERNEL, reason="the compiled log scanner is off")

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scenarios")
SCENARIOS = ["diffusion_exact", "leastaction_async", "continuous_cyclic",
             "stlp_fixedpoint_dag", "ep_gradient", "waves_fast"]
SIZES = [(None, None), (64, 5), (333, 1 << 15), (4096, 7)]
"""(PIECE, BLOCK): the defaults, then pieces that cut records and blocks that fill."""


def _norm(p):
    """A payload as comparable data (NaN and -0.0 as their bits, arrays as bytes)."""
    if type(p) is float:
        return ("f", struct.pack("<d", p))
    if type(p) is slice:
        return ("ext", p.start, bytes(p.stop))
    if type(p) is list:
        return ("list", tuple(_norm(x) for x in p))
    if type(p) is np.ndarray:
        return ("arr", p.shape, p.tobytes())
    return (type(p).__name__, p)


def _use(mode: str, monkeypatch) -> None:
    """Make :func:`read_columns` take the ``msgpack``, ``vector`` or ``compiled`` path."""
    monkeypatch.setattr(lc, "COMPILED", mode == "compiled")
    monkeypatch.setattr(lc, "VECTOR", mode == "vector")
    monkeypatch.setattr(lc, "MIN_BYTES", 0)


def _cols_outcome(path: str, mode: str, monkeypatch, piece=None, block=None) -> dict:
    """Everything :func:`read_columns` leaves: columns, payloads, counters, verdict."""
    _use(mode, monkeypatch)
    if piece is not None:
        monkeypatch.setattr(lc, "PIECE", piece)
        monkeypatch.setattr(lc, "BLOCK", block)
        monkeypatch.setattr(ls, "PIECE", piece)
    cols: list[list[int]] = [[] for _ in range(6)]
    pays: list = []
    err = log = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            log = open_log(path, strict=False)
            for b in lc.read_columns(log):
                assert all(type(c) is np.ndarray and c.dtype == np.int64 for c in b[:5])
                for i in range(6):
                    cols[i] += [int(x) for x in b[i]]
                pays += [_norm(b.payload[i]) for i in range(len(b.t_arrive))]
        except (LogError, OverflowError) as e:
            err = f"{type(e).__name__}: {e}"
    out = {"err": err, "cols": cols, "pays": pays,
           "warnings": [str(w.message) for w in caught]}
    if log is not None:
        out.update(count=log.count, verified=log.verified_count, footer=log.footer,
                   truncated=log.truncated, altered=log.altered, checkpoints=log.checkpoints,
                   tail=log.tail_bytes, done=log._done, complete=log.complete,
                   interrupted=log.interrupted, ok=log.verified)
    return out


def _raw_outcome(path: str) -> dict:
    """The record-at-a-time reference: ``EventLog.raw``'s six integer fields."""
    cols: list[list[int]] = [[] for _ in range(6)]
    err = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            for r, _ in EventLog(path, strict=False).raw():
                for i in range(6):
                    cols[i].append(r[i])
        except LogError as e:
            err = f"LogError: {e}"
    return {"err": err, "cols": cols}


def check_same(path: str, monkeypatch, sizes=SIZES) -> dict:
    """Each fast scan == msgpack path (at every piece/block size), and == raw's integers."""
    want = _cols_outcome(path, "msgpack", monkeypatch)
    raw = _raw_outcome(path)
    for (piece, block), mode in itertools.product(sizes, FAST):
        got = _cols_outcome(path, mode, monkeypatch, piece, block)
        for k in want:
            if want["err"] and k in ("cols", "pays"):
                continue  # before an error: records go a piece at a time (checked below)
            assert got[k] == want[k], (k, mode, piece, block, str(got[k])[:300], str(want[k])[:300])
        # records before an error: the same as the other path's and raw's, as far as each went
        m = min(len(got["pays"]), len(want["pays"]))
        assert got["pays"][:m] == want["pays"][:m]
        n = min(len(got["cols"][0]), len(raw["cols"][0]))
        assert [c[:n] for c in got["cols"]] == [c[:n] for c in raw["cols"]]
    n = len(raw["cols"][0])
    if want["err"] is None:
        assert raw["err"] is None or "array" in raw["err"] or "corrupt" in raw["err"]
        if raw["err"] is None:
            assert want["cols"] == raw["cols"]
        else:  # raw decodes array payloads (a lazy reader leaves them): same records before
            assert [c[:n] for c in want["cols"]] == raw["cols"]
    else:
        m = min(n, len(want["cols"][0]))
        assert [c[:m] for c in want["cols"]] == [c[:m] for c in raw["cols"]]
    return want


def _stats_outcome(path: str, mode: str, monkeypatch) -> tuple:
    _use(mode, monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return log_stats(path), [str(w.message) for w in caught]
        except (LogError, OverflowError) as e:
            return f"{type(e).__name__}: {e}", None


# ---------------------------------------------------------------- real logs

@pytest.fixture(scope="module")
def real_logs(tmp_path_factory):
    d = tmp_path_factory.mktemp("cols")
    paths = {}
    for name in SCENARIOS:
        paths[name] = str(d / f"{name}.log")
        simulate(load(os.path.join(ROOT, f"{name}.toml")), log_path=paths[name])
    # past the first checkpoint (100,000 records)
    text = open(os.path.join(ROOT, "quickstart.toml")).read()
    assert "duration = 4000" in text
    sc = load(str(d / "long.toml"), text=text.replace("duration = 4000", "duration = 11000"))
    paths["long"] = str(d / "long.log")
    simulate(sc, log_path=paths["long"])
    # interrupted: closed as a verified prefix
    sc = load(os.path.join(ROOT, "continuous_cyclic.toml"))
    eng, _, _ = build_engine(sc)
    paths["interrupted"] = str(d / "interrupted.log")
    w = EventLogWriter(paths["interrupted"], log_header(sc, eng.names))
    eng.sinks.append(w)
    eng.run(17.3)
    w.close(complete=False)
    # truncated: cut inside a record, past the last checkpoint
    data = open(paths["long"], "rb").read()
    paths["truncated"] = str(d / "truncated.log")
    with open(paths["truncated"], "wb") as f:
        f.write(data[:len(data) * 19 // 20 + 5])
    return paths


@pytest.mark.parametrize("name", SCENARIOS + ["long", "interrupted", "truncated"])
def test_real_logs_read_alike(real_logs, name, monkeypatch):
    # the long logs (5 MB) with the defaults and 4 KB pieces: enough to cross every stop
    sizes = SIZES if name not in ("long", "truncated") else [SIZES[0], SIZES[3]]
    want = check_same(real_logs[name], monkeypatch, sizes)
    assert want["err"] is None and want["count"] > 0
    if name == "long":
        assert want["count"] > 100_000 and len(want["checkpoints"]) >= 1 and want["ok"]
    if name == "interrupted":
        assert want["interrupted"] and want["ok"]
    if name == "truncated":
        assert want["truncated"] and want["tail"] > 0 and want["warnings"]
        assert 0 < want["count"] - want["verified"] < want["count"]


@pytest.mark.parametrize("name", SCENARIOS[:3] + ["long", "interrupted", "truncated"])
def test_stats_alike_and_equal_to_traffic(real_logs, name, monkeypatch):
    path = real_logs[name]
    got, warned = _stats_outcome(path, "msgpack", monkeypatch)
    for mode in FAST:
        assert (got, warned) == _stats_outcome(path, mode, monkeypatch), mode
    want = _reference_stats(path)  # every record a Message, fed to Traffic
    assert {k: got[k] for k in want} == want


@pytest.mark.parametrize("mode", FAST)
def test_a_clean_log_never_leaves_the_scan(real_logs, monkeypatch, mode):
    """The fast path is really taken: no msgpack record path on a clean log, and the
    numpy scan hands no record of these logs to the scalar scanner."""
    _use(mode, monkeypatch)

    def refuse(*a, **k):
        raise AssertionError("a slower path was used")

    monkeypatch.setattr(lc, "read_blocks", refuse)
    monkeypatch.setattr(ls._Scan, "slow", refuse)
    scalar = lv.scan_records

    def stops_only(*a):  # the scalar scanner may say why the scan stops, not take a record
        took, end, why = scalar(*a)
        assert not took, "a record went to the scalar scanner"
        return took, end, why

    monkeypatch.setattr(lv, "scan_records", stops_only)
    for name in ("long", "interrupted", "continuous_cyclic", "diffusion_exact"):
        log = open_log(real_logs[name])
        assert sum(len(b.t_arrive) for b in lc.read_columns(log)) == log.count > 0
        assert log.verified


@needs_kernel
def test_small_logs_do_not_load_the_kernel(real_logs, monkeypatch):
    """Under MIN_BYTES the numpy scan reads a log until the kernel is loaded (loading
    costs more than it saves there); from then on the kernel reads every log."""
    monkeypatch.setattr(lc, "_kernel", None)
    used = []
    monkeypatch.setattr(lc, "_compiled", lambda log, k: used.append(k) or iter(()))
    path = real_logs["diffusion_exact"]
    assert lc.MIN_BYTES > os.path.getsize(path)
    list(lc.read_columns(open_log(path)))
    assert used == [lv.scan_vector] and lc._kernel is None
    monkeypatch.setattr(lc, "MIN_BYTES", os.path.getsize(path))
    list(lc.read_columns(open_log(path)))
    assert used[-1] is lc._kernel is not None and used[-1] is not lv.scan_vector
    monkeypatch.setattr(lc, "MIN_BYTES", os.path.getsize(path) + 1)  # loaded now: taken
    list(lc.read_columns(open_log(path)))
    assert used[-1] is lc._kernel


def test_switched_off_the_kernel_is_not_used(monkeypatch):
    monkeypatch.setattr(lc, "COMPILED", False)
    assert lc.kernel() is None
    monkeypatch.setattr(lc, "COMPILED", True)
    monkeypatch.setenv("ASYNCNET_NO_NUMBA", "1")
    assert lc.kernel() is None
    used = []
    monkeypatch.setattr(lc, "_compiled", lambda log, k: used.append(k) or iter(()))
    monkeypatch.setattr(lc, "read_blocks", lambda log, lazy: used.append("msgpack") or iter(()))
    log = base()[0]
    for vector in (True, False):
        monkeypatch.setattr(lc, "VECTOR", vector)
        list(lc.read_columns(open_log(os.path.join(log, "base.log"))))
    assert used == [lv.scan_vector, "msgpack"]


def test_cluster_merged_log(tmp_path, monkeypatch):
    pytest.importorskip("zmq")
    from asyncnet.cluster import simulate_distributed
    sc = load(os.path.join(ROOT, "diffusion_exact.toml"))
    path = str(tmp_path / "cluster.log")
    simulate_distributed(sc, workers=2, log_path=path)
    check_same(path, monkeypatch, SIZES[:2])
    got, warned = _stats_outcome(path, "msgpack", monkeypatch)
    assert "cluster" in got  # read from the sidecar the coordinator wrote
    for mode in FAST:
        assert (got, warned) == _stats_outcome(path, mode, monkeypatch), mode


# ---------------------------------------------------------------- written streams

AGENTS = [f"a{i}" for i in range(5)]
INT = st.one_of(st.integers(0, 200), st.integers(-(1 << 63), (1 << 64) - 1))
NUM = st.one_of(INT, st.floats(allow_nan=True, allow_infinity=True, width=64))
PAYLOAD = st.one_of(
    st.none(), NUM,
    st.lists(st.floats(width=64), max_size=6).map(lambda x: np.array(x, dtype=float)),
    st.tuples(st.integers(1, 3), st.integers(1, 3)).map(lambda s: np.arange(float(s[0] * s[1]))
                                                         .reshape(s)),
    st.lists(NUM, max_size=5).map(tuple))
RECORD = st.tuples(st.integers(0, 2), st.integers(0, 4), st.integers(0, 4),
                   st.integers(0, 40), st.integers(1, 40), st.integers(0, 3), PAYLOAD)
BIG = st.one_of(st.just(0), st.just((1 << 63) - 1 - 100), st.just(1 << 40))


def write_stream(path: str, recs: list, offset: int = 0, complete: bool = True) -> None:
    """``recs`` (kind, src, dst, t_sent, delay, seq, payload) through the real writer."""
    msgs = sorted((Message(k, AGENTS[s], AGENTS[d], offset + ts, offset + ts + dl, q, p)
                   for k, s, d, ts, dl, q, p in recs),
                  key=lambda m: (m.t_arrive, m.dst, m.kind, m.src, m.seq))
    w = EventLogWriter(path, {"scenario": "", "scenario_path": "", "seed": 0,
                              "agents": AGENTS})
    i = 0
    while i < len(msgs):
        j = i
        while j < len(msgs) and msgs[j][2:5:2] == msgs[i][2:5:2]:
            j += 1
        w(msgs[i:j])
        i = j
    w.close(complete=complete)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(RECORD, max_size=60), BIG, st.booleans(), st.integers(1, 7))
def test_written_streams_read_alike(tmp_path, monkeypatch, recs, offset, complete, ck):
    monkeypatch.setattr(ev, "CHECKPOINT", ck * 3)
    path = str(tmp_path / "stream.log")
    write_stream(path, recs, offset, complete)
    want = check_same(path, monkeypatch, SIZES[:3])
    assert want["err"] is None and want["ok"] and want["interrupted"] != complete
    # an interrupted run drops its unfinished last instant
    assert want["count"] == len(recs) if complete else want["count"] <= len(recs)


# ---------------------------------------------------------------- hostile logs

def _items(data: bytes) -> list[tuple[object, bytes]]:
    up = msgpack.Unpacker(raw=False, ext_hook=msgpack.ExtType, strict_map_key=False)
    up.feed(data)
    out, pos = [], 0
    for obj in up:
        out.append((obj, data[pos:up.tell()]))
        pos = up.tell()
    return out


def forge(items: list[tuple[object, bytes]]) -> bytes:
    """Re-seal items (records as given bytes): digests and counts match (a careful forger)."""
    h, n, out = ev._new_hash(), 0, []
    for i, (obj, b) in enumerate(items):
        if isinstance(obj, dict) and ("checkpoint" in obj or obj.get("footer")) and i > 0:
            body = {k: v for k, v in obj.items() if k != "digest"}
            body["checkpoint" if "checkpoint" in obj else "count"] = n
            b = _sealed(body, h)
        else:
            n += isinstance(obj, list)
        h.update(b)
        out.append(b)
    return b"".join(out)


def _pack(r) -> bytes:
    return msgpack.packb(r, default=encode_payload, use_bin_type=True)


def _with_record(items, k, fn=None, raw: bytes | None = None):
    its = list(items)
    r = list(its[k][0])
    if fn is not None:
        fn(r)
    its[k] = (r, raw if raw is not None else _pack(r))
    return forge(its)


def hostile(data: bytes) -> dict[str, bytes]:
    items = _items(data)
    recs = [i for i, (o, _) in enumerate(items) if isinstance(o, list)]
    k = recs[len(recs) // 2]
    r = items[k][0]
    big = (1 << 64) - 1
    out = {name: _with_record(items, k, fn) for name, fn in {
        "index out of range": lambda r: r.__setitem__(2, 10_000),
        "dst out of range": lambda r: r.__setitem__(3, len(base_agents())),
        "negative index": lambda r: r.__setitem__(3, -1),
        "negative seq": lambda r: r.__setitem__(5, -3),
        "bool kind": lambda r: r.__setitem__(1, True),
        "bool seq": lambda r: r.__setitem__(5, False),
        "float time": lambda r: r.__setitem__(0, 1.5),
        "string time": lambda r: r.__setitem__(0, "12"),
        "kind 7": lambda r: r.__setitem__(1, 7),
        "kind 3": lambda r: r.__setitem__(1, 3),
        "arrives before sent": lambda r: r.__setitem__(4, r[0] + 10),
        "arrives when sent": lambda r: r.__setitem__(4, r[0]),
        "huge seq": lambda r: r.__setitem__(5, big),
        "huge time": lambda r: r.__setitem__(0, big),
        "string payload": lambda r: r.__setitem__(6, "abc"),
        "map payload": lambda r: r.__setitem__(6, {"a": 1}),
        "bool payload": lambda r: r.__setitem__(6, True),
        "nested payload": lambda r: r.__setitem__(6, [1, [2]]),
        "tuple payload": lambda r: r.__setitem__(6, [1, 2.5, -3, big]),
        "float payload": lambda r: r.__setitem__(6, -0.0),
        "ext 5 payload": lambda r: r.__setitem__(6, msgpack.ExtType(5, b"xyz")),
        "malformed array payload": lambda r: r.__setitem__(6, msgpack.ExtType(1, b"\1\5")),
        "six fields": lambda r: r.pop(),
        "eight fields": lambda r: r.append(0),
    }.items()}
    # payloads msgpack's packer will not write: ext codes -1 (a timestamp) and -5
    fields = b"".join(_pack(x) for x in r[:6])
    for name, p in (("timestamp payload", b"\xd6\xff" + b"\0" * 4),
                    ("bad timestamp payload", b"\xc7\x03\xff" + b"\0" * 3),
                    ("ext -5 payload", b"\xd4\xfb\x00")):
        out[name] = _with_record(items, k, raw=b"\x97" + fields + p)
    # the same value in a wider encoding (msgpack reads it as the same int)
    body = b"".join(b"\xd0" + bytes([x]) if x < 0x80 else _pack(x) for x in r[:6])
    out["int8 fields"] = _with_record(items, k, raw=b"\x97" + body + _pack(r[6]))
    body = b"".join(b"\xcf" + x.to_bytes(8, "big") for x in r[:6])
    out["uint64 fields"] = _with_record(items, k, raw=b"\x97" + body + _pack(r[6]))
    its = list(items)  # out of canonical order: two records swapped
    its[recs[5]], its[recs[6]] = its[recs[6]], its[recs[5]]
    if its[recs[5]][0][:6] != its[recs[6]][0][:6]:
        out["out of order"] = forge(its)
    # bytes changed without a new seal
    out["flipped record byte"] = data[:len(items[0][1]) + 200] + bytes(
        [data[len(items[0][1]) + 200] ^ 4]) + data[len(items[0][1]) + 201:]
    end = sum(len(b) for _, b in items[:k])
    out["record byte 0xc1"] = data[:end + 1] + b"\xc1" + data[end + 2:]
    out["cut in a record"] = data[:end + 3]
    out["cut at a record's end"] = data[:end]
    out["cut in the footer"] = data[:-5]
    out["garbage after the footer"] = data + b"\x93\x01\x02\x03"
    out["a cut item after the footer"] = data + b"\x93\x01"
    out["a record after the footer"] = data + items[k][1]
    out["no footer, a checkpoint last"] = b"".join(b for _, b in items[:-1])
    first = next(i for i, (o, _) in enumerate(items)
                 if isinstance(o, dict) and o.get("checkpoint", 0) > 0)
    kept = items[:first] + items[first + 1:]
    out["checkpoint dropped"] = b"".join(b for _, b in kept)
    out["checkpoint dropped, resealed"] = forge(kept)
    return out


def base_agents() -> list[str]:
    return open_log(os.path.join(base()[0], "base.log")).agents


HOSTILE = [
    "index out of range", "dst out of range", "negative index", "negative seq", "bool kind",
    "bool seq", "float time", "string time", "kind 7", "kind 3", "arrives before sent",
    "arrives when sent", "huge seq", "huge time", "string payload", "map payload",
    "bool payload", "nested payload", "tuple payload", "float payload", "timestamp payload",
    "bad timestamp payload", "ext 5 payload", "ext -5 payload", "malformed array payload",
    "six fields", "eight fields", "int8 fields", "uint64 fields", "out of order",
    "flipped record byte", "record byte 0xc1", "cut in a record", "cut at a record's end",
    "cut in the footer", "garbage after the footer", "a cut item after the footer",
    "a record after the footer", "no footer, a checkpoint last", "checkpoint dropped",
    "checkpoint dropped, resealed"]
VALID = {"tuple payload", "float payload", "int8 fields", "uint64 fields", "ext 5 payload",
         "ext -5 payload", "malformed array payload", "huge seq", "cut at a record's end",
         "no footer, a checkpoint last", "checkpoint dropped, resealed"}
"""Logs any reader accepts (a payload left encoded is checked only when decoded)."""
"""Named here (not made at collection): ``test_hostile_names`` checks they are all made."""


def test_hostile_names():
    assert sorted(hostile(base()[1])) == sorted(HOSTILE)


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_logs_read_alike(name, monkeypatch):
    d, data, _ = base()
    path = os.path.join(d, "cols-hostile.log")
    with open(path, "wb") as f:
        f.write(hostile(data)[name])
    want = check_same(path, monkeypatch)
    if name not in VALID:
        assert want["err"] or want["truncated"] or want["altered"], name
    stats = _stats_outcome(path, "msgpack", monkeypatch)
    for mode in FAST:
        assert stats == _stats_outcome(path, mode, monkeypatch), mode


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(MUTATION, min_size=1, max_size=3))
def test_mutated_logs_read_alike(monkeypatch, muts):
    d, original, _ = base()
    path = os.path.join(d, "cols-mutated.log")
    with open(path, "wb") as f:
        f.write(mutate(original, muts))
    check_same(path, monkeypatch, SIZES[:3])
    stats = _stats_outcome(path, "msgpack", monkeypatch)
    for mode in FAST:
        assert stats == _stats_outcome(path, mode, monkeypatch), mode


def test_norm_tells_payloads_apart():
    """The comparison itself can fail: NaN equals NaN, -0.0 differs from 0.0."""
    assert _norm(math.nan) == _norm(math.nan) and _norm(-0.0) != _norm(0.0)
    assert _norm(1) != _norm(1.0) and _norm(slice(1, b"a")) != _norm(slice(2, b"a"))


@pytest.mark.slow
@settings(max_examples=500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(MUTATION, min_size=1, max_size=4))
def test_mutated_logs_read_alike_many(monkeypatch, muts):
    test_mutated_logs_read_alike.hypothesis.inner_test(monkeypatch, muts)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(RECORD, max_size=200), BIG, st.booleans(), st.integers(1, 7))
def test_written_streams_read_alike_many(tmp_path, monkeypatch, recs, offset, complete, ck):
    test_written_streams_read_alike.hypothesis.inner_test(tmp_path, monkeypatch, recs, offset,
                                                          complete, ck)


def test_tuple_payloads_stay_in_the_numpy_scan(tmp_path, monkeypatch):
    """Tuples of up to MAX_TUPLE numbers (every width of number; fixarrays and array 16)
    are parsed by the numpy pass itself, not handed to the scalar scanner one by one."""
    rng = np.random.default_rng(5)
    numbers = [0, 127, -1, -33, 200, 70_000, 2**33, -(2**40), 1.5, -0.0, 2**63 - 1]
    recs = []
    for i in range(3000):
        size = int(rng.integers(0, 16 if i % 2 else lv.MAX_TUPLE + 1))
        p = tuple(numbers[j] for j in rng.integers(0, len(numbers), size))
        recs.append((i % 3, i % 5, (i + 1) % 5, i, 1 + i % 3, i, p))
    path = str(tmp_path / "tuples.log")
    write_stream(path, recs)
    want = check_same(path, monkeypatch, SIZES[:2])
    assert want["err"] is None and want["count"] == len(recs)
    _use("vector", monkeypatch)
    scalar = lv.scan_records

    def stops_only(*a):
        took, end, why = scalar(*a)
        assert not took, "a record went to the scalar scanner"
        return took, end, why

    monkeypatch.setattr(lv, "scan_records", stops_only)
    assert sum(len(b.t_arrive) for b in lc.read_columns(open_log(path))) == len(recs)


def test_longer_tuples_read_alike(tmp_path, monkeypatch):
    """Tuples past MAX_TUPLE go to the scalar scanner, every other record: still the
    msgpack path's outcome."""
    recs = [(i % 3, i % 5, (i + 1) % 5, i, 1, i, tuple(range(lv.MAX_TUPLE + 1 + i % 3))
             if i % 2 else 1.5) for i in range(400)]
    path = str(tmp_path / "long-tuples.log")
    write_stream(path, recs)
    want = check_same(path, monkeypatch, SIZES[:2])
    assert want["err"] is None and want["count"] == len(recs)
