"""The log writer's fast path (payloads encoded once, an instant packed in one
call) against records packed one at a time with the codec's own packer."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

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


def test_an_instant_sink_writes_the_bytes_of_one_call_per_batch(tmp_path):
    """``EventLogWriter.instant`` (the engine hands it a whole instant) writes
    what the writer fed one batch at a time writes, byte for byte: a
    per-neuron run with probes that split instants' wake order, a
    checkpointed count of records, and a run that stops early."""
    import asyncnet
    from asyncnet.engine import Engine
    from asyncnet.network import Network
    from asyncnet.schemes.diffusion import Diffusion
    net = Network.from_graph(asyncnet.expand_to_neurons(
        Network.from_graph(asyncnet.layered([3, 4, 2]), seed=0)), seed=0)
    for complete in (True, False):
        eng = Engine(net, Diffusion(eta=0.05), seed=2)
        head = {"agents": eng.names, "scenario": "", "seed": 2}
        one = ev.EventLogWriter(str(tmp_path / f"one{complete}.log"), head)
        whole = ev.EventLogWriter(str(tmp_path / f"whole{complete}.log"), head)
        eng.sinks.append(one)
        eng.instant_sinks.append(whole.instant)
        def chain(e, t):  # probes registered mid-run take a place among the wake-ups
            if t < 35:
                e.at(t + 1.5, chain)
        eng.at(0.5, chain)
        eng.run(40.0)
        f1, f2 = one.close(complete=complete), whole.close(complete=complete)
        assert f1["count"] > 50 and f1 == f2
        assert (tmp_path / f"one{complete}.log").read_bytes() \
            == (tmp_path / f"whole{complete}.log").read_bytes()


def test_an_instant_out_of_canonical_order_is_sorted(tmp_path):
    """Batches handed over in a wake order that is not the names' order (a
    probe can split an instant) are written in canonical order, as one call
    per batch writes them."""
    x = np.array([1.0, -2.0])
    inst1 = [[Message(FORWARD, "b->c", "c", 1, 4, 1, x)],
             [Message(FORWARD, "a", "a->b", 2, 4, 1, x), Message(DELTA, "b", "a->b", 2, 4, 1, x)]]
    inst2 = [[Message(DELTA, "a->b", "a", 5, 9, 2, 0.5)],
             [Message(FORWARD, "a->b", "b", 5, 9, 3, x)]]
    one, whole = str(tmp_path / "one.log"), str(tmp_path / "whole.log")
    w1 = ev.EventLogWriter(one, {"agents": AGENTS, "scenario": "", "seed": 0})
    w2 = ev.EventLogWriter(whole, {"agents": AGENTS, "scenario": "", "seed": 0})
    for inst in (inst1, inst2):
        for b in inst:
            w1(b)
        w2.instant(inst)
    w1.close()
    w2.close()
    assert open(one, "rb").read() == open(whole, "rb").read()
    assert _records(whole) == _reference(inst1 + inst2)


@pytest.mark.parametrize("where", ["hash", "write"])
def test_an_interrupt_anywhere_in_the_accounting_leaves_a_verified_prefix(tmp_path, where):
    """Ctrl-C can land between any two steps of a write's accounting (the
    hash updated, the position not yet): the interrupted log's footer still
    matches every byte before it. Checked by raising KeyboardInterrupt right
    after the hash's update, and right after the write."""
    from asyncnet.logfile import open_log
    x = np.array([1.0, -2.0])
    instants = [[[Message(FORWARD, "a", "a->b", t, t + 3, t, x)],
                 [Message(DELTA, "c", "b->c", t, t + 3, t, 0.5)]] for t in range(1, 6)]
    path = str(tmp_path / f"{where}.log")
    w = ev.EventLogWriter(path, {"agents": AGENTS, "scenario": "", "scenario_path": "",
                                 "seed": 0})
    for inst in instants[:3]:
        w.instant(inst)
    real, account, shots = w.digest, w._account, [1]

    class Trap:  # the hash, interrupted right after its (first) update
        def update(self, data):
            real.update(data)
            if shots:
                shots.pop()
                raise KeyboardInterrupt

        def copy(self):
            return real.copy()

    def interrupted_account():  # the write done, interrupted before its accounting
        if shots:
            shots.pop()
            raise KeyboardInterrupt
        account()

    if where == "hash":
        w.digest = Trap()
    else:
        w._account = interrupted_account
    with pytest.raises(KeyboardInterrupt):
        w.instant(instants[3])  # writes the instant held back: interrupted
    w.close(complete=False)
    lg = open_log(path)
    lg.scan()
    assert lg.interrupted and lg.verified and lg.count == 6  # three instants
