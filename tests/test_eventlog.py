"""Event logs: byte-identical per seed, replay --verify, tampering, truncation."""

import os
import warnings

import msgpack
import numpy as np
import pytest

from asyncnet.eventlog import EventLog, LogError
from asyncnet.messages import decode_ext, encode_payload
from asyncnet.replay import verify
from asyncnet.scenario import load
from asyncnet.simulation import simulate

SCEN = """
[scenario]
name = "tiny"
seed = {seed}
duration = 60
[network]
layers = [2, 3, 1]
[rule]
name = "diffusion"
eta = 0.05
[data]
kind = "xor"
hold = 5
"""


def _run(tmp_path, seed, name="a"):
    path = str(tmp_path / f"{name}.log")
    sc = load(str(tmp_path / "tiny.toml"), text=SCEN.format(seed=seed))
    s = simulate(sc, log_path=path)
    return path, s


def test_same_seed_identical_bytes_other_seed_different(tmp_path):
    a, s = _run(tmp_path, 1, "a")
    b, _ = _run(tmp_path, 1, "b")
    c, _ = _run(tmp_path, 2, "c")
    assert open(a, "rb").read() == open(b, "rb").read()
    assert open(a, "rb").read() != open(c, "rb").read()
    assert s["log"]["records"] == s["messages"]["total"] > 0


def test_records_decode_and_are_canonical(tmp_path):
    a, s = _run(tmp_path, 1)
    log = EventLog(a)
    recs = list(log.records())
    assert len(recs) == s["messages"]["total"]
    keys = [(r[0], r[3], r[1], r[2], r[5]) for r in recs]
    assert keys == sorted(keys)
    assert all(r[0] > r[4] for r in recs)  # nothing arrives before it was sent
    counts = [sum(1 for r in recs if r[1] == k) for k in range(3)]
    assert counts == log.footer["by_kind"]


def test_replay_verify_passes_then_finds_tampering(tmp_path):
    a, _ = _run(tmp_path, 1)
    r = verify(a)
    assert r["identical"] and r["digest_ok"] and not r["truncated"]
    # flip one payload float in record 100
    log = EventLog(a)
    raw = open(a, "rb").read()
    for i, (rec, packed) in enumerate(log.raw()):
        if i == 100:
            b = packed
            rec[6] = np.asarray(rec[6]) + 1e-9
            nb = msgpack.packb(rec, default=encode_payload, use_bin_type=True)
            break
    bad = tmp_path / "bad.log"
    bad.write_bytes(raw.replace(b, nb, 1))
    r = verify(str(bad))
    assert not r["identical"]
    assert r["compared"] == 100
    assert "record 100" in r["divergence"]


def test_truncated_log_reads_to_last_whole_record(tmp_path):
    a, s = _run(tmp_path, 1)
    raw = open(a, "rb").read()
    cut = tmp_path / "cut.log"
    cut.write_bytes(raw[: len(raw) * 2 // 3])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        n = sum(1 for _ in EventLog(str(cut)).records())
    assert 0 < n < s["messages"]["total"]
    assert any("truncated" in str(x.message) for x in w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = verify(str(cut))
    assert r["identical"] and r["truncated"] and r["compared"] == n


def test_garbage_and_foreign_files_are_refused(tmp_path):
    junk = tmp_path / "junk.log"
    junk.write_bytes(os.urandom(300))
    with pytest.raises(LogError):
        list(EventLog(str(junk)).records())
    other = tmp_path / "other.log"
    other.write_bytes(msgpack.packb({"format": "something-else"}))
    with pytest.raises(LogError, match="not an asyncnet event log"):
        EventLog(str(other))


def test_payload_codec_is_exact_and_bounded():
    a = np.random.default_rng(0).standard_normal((3, 4))
    b = msgpack.unpackb(msgpack.packb(a, default=encode_payload), ext_hook=decode_ext)
    assert b.shape == a.shape and np.array_equal(a, b)
    with pytest.raises(ValueError):
        decode_ext(1, bytes([1]) + (10).to_bytes(4, "little") + b"\0" * 8)


def test_checkpoints_sit_between_instants_and_are_checked(tmp_path, monkeypatch):
    """Small checkpoint interval: each checkpoint closes an instant, its count
    and digest match a blake2b recomputed here over every byte of the file
    before the digest's value (format version 2: header, records, earlier
    checkpoints), and a record altered before a checkpoint is refused there."""
    import hashlib

    import asyncnet.eventlog as ev
    monkeypatch.setattr(ev, "CHECKPOINT", 50)
    a, _ = _run(tmp_path, 1)
    data = open(a, "rb").read()
    up = msgpack.Unpacker(raw=False, ext_hook=decode_ext)
    up.feed(data)
    next(up)
    h, n, last_t, seen, pos = hashlib.blake2b(digest_size=16), 0, None, 0, up.tell()
    items = []
    for obj in up:
        items.append((obj, pos, up.tell()))
        pos = up.tell()
    for i, (obj, start, end) in enumerate(items):
        if isinstance(obj, list):
            h.update(data[start:end])
            n += 1
            last_t = obj[0]
        elif "checkpoint" in obj:
            seen += 1
            # the digest is the map's last value: a 32-char str8 (2 + 32 bytes)
            assert list(obj)[-1] == "digest" and data[end - 34:end - 32] == b"\xd9\x20"
            assert obj["checkpoint"] == n
            assert obj["digest"] == hashlib.blake2b(data[:end - 34], digest_size=16).hexdigest()
            nxt = items[i + 1][0]
            assert not isinstance(nxt, list) or nxt[0] != last_t  # an instant boundary
    assert seen >= n // 50 - 1 and seen >= 2
    # alter the payload of the first record: the first checkpoint refuses it
    first = next(s for o, s, e in items if isinstance(o, list))
    bad = bytearray(data)
    bad[first + 3] ^= 0x01  # t_sent/seq bytes: still valid msgpack
    p = tmp_path / "altered.log"
    p.write_bytes(bytes(bad))
    with pytest.raises(LogError, match="checkpoint"):
        list(EventLog(str(p)).records())


def test_agents_get_each_batch_in_the_documented_order():
    """DESIGN.md §6 / CONTRACT.md: react() sees one instant's messages sorted by
    (t_arrive, kind, src, seq), written out here, not in scheduler order."""
    from asyncnet.engine import Engine
    from asyncnet.network import Network
    from asyncnet.schemes.diffusion import Diffusion

    from .helpers import random_dag
    net = Network.from_graph(random_dag(7, n_hidden=6, p=0.7), seed=7)
    eng = Engine(net, Diffusion(eta=0.05, init_state="random"), seed=7,
                 sources={"in": lambda t: np.ones(net.populations["in"].size),
                          "out": lambda t: np.zeros(net.populations["out"].size)})
    seen = []

    class Tap:  # stands in for a model (which may have __slots__): notes each batch
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, key):
            return getattr(self.inner, key)

        def react(self, now, batch):
            seen.append(list(batch))
            return self.inner.react(now, batch)

    for agent in eng.agents.values():
        agent.model = Tap(agent.model)
    eng.run(12)
    multi = [b for b in seen if len({(m.kind, m.src) for m in b}) > 1]
    assert len(multi) > 20
    for b in seen:
        assert b == sorted(b, key=lambda m: (m.t_arrive, m.kind, m.src, m.seq))
