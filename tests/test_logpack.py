"""The column-wise record packer (:mod:`asyncnet.logpack`) against msgpack itself.

Every record :func:`pack_batches` packs must be the bytes msgpack's own
packer makes for ``[t_arrive, kind, src, dst, t_sent, seq, payload]`` with
the log's payload hook — checked on generated instants (integers at every
boundary of msgpack's classes, NaN and signed zeros, arrays of any shape
including empty ones) and on whole runs, where a log written with the
packer must equal, byte for byte, one written record by record. What it
cannot pack exactly it must refuse (``None``), never pack differently.
"""

from __future__ import annotations

import os

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import asyncnet.logencode as logencode
from asyncnet.eventlog import EventLogWriter
from asyncnet.logpack import pack_batches
from asyncnet.messages import Message, encode_payload
from asyncnet.scenario import load
from asyncnet.simulation import simulate

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scenarios")
NAMES = [f"a{i:04d}" for i in range(70_000)]  # indices past every class (65,535 included)
INDEX = {n: i for i, n in enumerate(NAMES)}
EDGES = [0, 1, 127, 128, 255, 256, 65_535, 65_536, 2**32 - 1, 2**32, 2**63 - 1]
INT = st.one_of(st.sampled_from(EDGES), st.integers(0, 2**63 - 1))
AGENT = st.one_of(st.sampled_from([0, 127, 128, 255, 256, 65_535, 65_536, 69_999]),
                  st.integers(0, len(NAMES) - 1))
FLOAT = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                  st.sampled_from([0.0, -0.0, 5e-324, float("nan")]))
SHAPE = st.sampled_from([(0,), (1,), (3,), (16,), (2, 3), (1, 1), (40,), (2, 0)])


def _reference(batches: list[list[Message]]) -> tuple[bytes, list[int]]:
    """msgpack's own bytes, one record at a time, and where each record ends."""
    pk = msgpack.Packer(default=encode_payload, use_bin_type=True)
    out, ends = b"", []
    for b in batches:
        for m in b:
            out += pk.pack([m.t_arrive, m.kind, INDEX[m.src], INDEX[m.dst], m.t_sent, m.seq,
                            m.payload])
            ends.append(len(out))
    return out, ends


@st.composite
def instants(draw, payloads: str):
    """An instant: batches (one receiver each) of messages with payloads of one mode."""
    shape = draw(SHAPE)
    t = draw(INT)
    batches = []
    for _ in range(draw(st.integers(1, 6))):
        dst = NAMES[draw(AGENT)]
        batch = []
        for _ in range(draw(st.integers(1, 8))):
            if payloads == "floats":
                p = draw(FLOAT)
            else:
                vals = draw(st.lists(FLOAT, min_size=int(np.prod(shape)),
                                     max_size=int(np.prod(shape))))
                p = np.array(vals, dtype="<f8").reshape(shape)
            batch.append(Message(draw(st.integers(0, 2)), NAMES[draw(AGENT)], dst,
                                 draw(INT), t, draw(INT), p))
        batches.append(batch)
    return batches


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.one_of(instants("floats"), instants("arrays")))
def test_packs_what_msgpack_packs(batches):
    got = pack_batches(batches, INDEX)
    assert got is not None
    data, ends, kinds, dst = got
    want, want_ends = _reference(batches)
    assert data == want
    assert ends.tolist() == want_ends
    assert kinds.tolist() == [m.kind for b in batches for m in b]
    assert dst.tolist() == [INDEX[m.dst] for b in batches for m in b]


def _msg(p, kind=0, t=10, seq=1, ts=5):
    return Message(kind, NAMES[1], NAMES[2], ts, t, seq, p)


@pytest.mark.parametrize("batch", [
    [_msg(1.0), _msg(np.zeros(1))],                         # two payload kinds
    [_msg(np.zeros(2)), _msg(np.zeros(3))],                 # two shapes
    [_msg(np.zeros(2, dtype=np.float32))],                  # not float64
    [_msg(np.zeros(2, dtype=">f8"))],                       # not little-endian
    [_msg(np.zeros(2)), _msg(np.zeros((2, 1)))],            # same length, another shape
    [_msg(np.array(1.0))],                                  # 0-d (packed as a vector)
    [_msg(3)], [_msg(None)], [_msg([1.0, 2.0])],            # numbers, nil, tuples
    [_msg(1.0, kind=3)], [_msg(1.0, kind=300)], [_msg(1.0, kind=True)],  # kinds
    [_msg(1.0, seq=-1)], [_msg(1.0, t=2**63)], [_msg(1.0, ts=2**64)],  # out of int64 / sign
    [_msg(1.0, t=10.5)], [_msg(1.0, ts=np.float64(5))], [_msg(1.0, seq=True)],  # not ints
    [_msg(1.0, seq="7")],
])
def test_refuses_what_it_cannot_pack_exactly(batch):
    assert pack_batches([batch], INDEX) is None


def test_numpy_integer_fields_pack_as_msgpack_does():
    batch = [_msg(1.0, t=np.int64(10), ts=np.uint32(5), seq=np.int32(3))]
    got = pack_batches([batch], INDEX)
    assert got is not None and got[0] == _reference([batch])[0]


def _write(path, batches_by_instant, use_columns: bool, monkeypatch) -> bytes:
    monkeypatch.setattr(logencode, "MIN_RECORDS", 1 if use_columns else 10**9)
    w = EventLogWriter(path, {"agents": NAMES[:300], "scenario": "", "seed": 0})
    for inst in batches_by_instant:
        if inst == "flush":  # a checkpoint: the buffered instant written record by record
            w._write(w.enc.flush_records())
        elif isinstance(inst, tuple):  # one instant handed over in two calls
            for part in inst:
                w.instant(part)
        else:
            w.instant(inst)
    w.close()
    return open(path, "rb").read()


def test_writer_bytes_alike_with_split_and_unordered_instants(tmp_path, monkeypatch):
    """An instant packed column-wise, then handed more of itself (a probe's split),
    out of canonical order, or written at a checkpoint, gives the record path's bytes."""
    rng = np.random.default_rng(0)

    def batch(t, dst, n):
        return [Message(int(rng.integers(0, 3)), NAMES[int(s)], NAMES[dst], t - 1, t, k + 1,
                        rng.standard_normal(1)) for k, s in enumerate(sorted(rng.choice(
                            300, n, replace=False)))]
    inst = [[sorted(batch(t, d, 3)) for d in range(0, 200, 7)] for t in range(1, 6)]
    plan = [inst[0], "flush", (inst[1][:10], inst[1][10:]), inst[2][::-1], inst[3], "flush",
            (inst[4][5:], inst[4][:5])]
    a = _write(str(tmp_path / "cols.log"), plan, True, monkeypatch)
    b = _write(str(tmp_path / "recs.log"), plan, False, monkeypatch)
    assert a == b


@pytest.mark.parametrize("name", ["quickstart", "diffusion_streams", "continuous_latch_ff"])
def test_scenario_logs_alike(tmp_path, monkeypatch, name):
    """A whole run's log: column-wise where it can be, and record by record, the same."""
    sc = load(os.path.join(ROOT, f"{name}.toml"))
    logs = []
    for min_records in (1, 10**9):
        monkeypatch.setattr(logencode, "MIN_RECORDS", min_records)
        path = str(tmp_path / f"{name}-{min_records}.log")
        simulate(sc, log_path=path)
        logs.append(open(path, "rb").read())
    assert logs[0] == logs[1]
