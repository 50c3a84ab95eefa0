"""The log writer's fast path (payloads encoded once, an instant packed in one
call) against records packed one at a time with the codec's own packer."""

from __future__ import annotations

import msgpack
import numpy as np

import asyncnet.eventlog as ev
from asyncnet.logformat import _packer, record_key
from asyncnet.messages import DELTA, FORWARD, Message, decode_ext

AGENTS = ["a", "a->b", "b", "b->c", "c"]


def _records(path: str) -> list[bytes]:
    """Each record's bytes as the file holds them (header, seals left out)."""
    data = open(path, "rb").read()
    up = msgpack.Unpacker(raw=False, ext_hook=decode_ext)
    up.feed(data)
    out, pos = [], 0
    for obj in up:
        end = up.tell()
        if isinstance(obj, list):
            out.append(data[pos:end])
        pos = end
    return out


def _reference(batches: list[list[Message]]) -> list[bytes]:
    idx = {n: i for i, n in enumerate(AGENTS)}
    recs = [[m.t_arrive, m.kind, idx[m.src], idx[m.dst], m.t_sent, m.seq, m.payload]
            for b in batches for m in b]
    pk = _packer()
    return [pk.pack(r) for r in sorted(recs, key=record_key)]


def _write(path: str, batches: list) -> dict:
    w = ev.EventLogWriter(path, {"agents": AGENTS, "scenario": "", "seed": 0})
    for b in batches:
        w(b)
    return w.close()


def test_shared_reused_and_out_of_order_payloads(tmp_path):
    """One array object sent at every instant with new contents, one shared by
    two receivers, batches out of canonical order: the records are what the
    codec packs of each message as it was delivered, in canonical order."""
    x = np.array([0.25])
    w = ev.EventLogWriter(str(tmp_path / "one.log"),
                          {"agents": AGENTS, "scenario": "", "seed": 0})
    ref = []
    for t in (2, 3, 4):
        x[0] = t / 7  # the same object, new contents
        y = np.array([t / 3])
        inst = [  # out of order on purpose: c's batch before b's
            [Message(FORWARD, "b->c", "c", t - 1, t, t, y)],
            [Message(FORWARD, "a->b", "b", t - 1, t, t, y),
             Message(DELTA, "b->c", "b", t - 1, t, 10 + t, np.array([[1.0, t]]))],
            [Message(FORWARD, "a", "a->b", t - 1, t, t, 1.5 * t),
             Message(DELTA, "b", "a->b", t - 1, t, 20 + t, x)],
        ]
        for b in inst:
            w(b)
        ref += [[m._replace(payload=np.array(m.payload, copy=True)
                            if isinstance(m.payload, np.ndarray) else m.payload)
                 for m in b] for b in inst]
    footer = w.close()
    assert _records(str(tmp_path / "one.log")) == _reference(ref)
    assert footer["count"] == sum(len(b) for b in ref)
    assert footer["by_kind"] == [sum(m.kind == k for b in ref for m in b) for k in range(3)]


def test_instants_in_canonical_order_write_the_same_bytes_as_sorted(tmp_path, monkeypatch):
    """Batches in canonical order skip the sort; the file is the same as when
    every instant is sorted; a checkpoint falls after the same instant."""
    monkeypatch.setattr(ev, "CHECKPOINT", 5)
    batches = [[Message(FORWARD, "a", "a->b", t - 1, t, t, np.array([t * 0.5]))]
               for t in range(1, 12)]
    batches += [[Message(FORWARD, "a->b", "b", 11, 12, 1, 2.0),
                 Message(DELTA, "b->c", "b", 11, 12, 1, 3.0)],
                [Message(FORWARD, "b", "b->c", 11, 12, 1, 4.0)]]
    p1, p2 = str(tmp_path / "fast.log"), str(tmp_path / "sorted.log")
    _write(p1, batches)
    monkeypatch.setattr(ev.RecordEncoder, "__init__", _unsorted_init)
    _write(p2, batches)
    assert open(p1, "rb").read() == open(p2, "rb").read()
    assert _records(p1) == _reference(batches)


def _unsorted_init(self, agents):
    self.index = {n: i for i, n in enumerate(agents)}
    self.packer = _packer()
    self._names_sorted = False  # always sort: the reference path
    self.drop()
