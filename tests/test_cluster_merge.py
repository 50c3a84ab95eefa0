"""The coordinator's byte-level merge and the workers' direct links.

The merge is checked against the event log writer fed the same records one
instant at a time in canonical order (the in-process path), with
checkpoints every few records so that blocks must be cut where the writer
cuts; the peer links against what was sent, window by window.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import zmq

import asyncnet.eventlog as ev
from asyncnet.cluster import merge, wire
from asyncnet.cluster.merge import SegmentMerger
from asyncnet.cluster.peers import PeerNet
from asyncnet.eventlog import EventLog, EventLogWriter
from asyncnet.logformat import _packer

AGENTS = [f"a{i:02d}" for i in range(12)]
HEADER = {"agents": AGENTS, "scenario": "", "scenario_path": "x.toml", "seed": 1}


def random_records(rng: random.Random, windows: int) -> list[list[list]]:
    """Records [t, kind, src, dst, t_sent, seq, payload] of each window."""
    out, seq, t = [], {}, 0
    for _ in range(windows):
        recs = []
        for _ in range(rng.randint(0, 4)):  # instants of this window
            t += rng.randint(1, 5)
            for d in rng.sample(range(len(AGENTS)), rng.randint(1, 6)):
                for _ in range(rng.randint(1, 3)):
                    s = rng.randrange(len(AGENTS))
                    seq[s] = seq.get(s, 0) + 1
                    kind = rng.randrange(3)
                    x = np.array([rng.random()]) if kind != 2 else rng.random()
                    recs.append([t, kind, s, d, t - 1, seq[s], x])
        t += 1
        out.append(recs)
    return out


# 0: every window through the numpy path; else windows of up to that many
# (t, dst) groups (all of these tests') through the Python one
SMALL = pytest.mark.parametrize("small", [0, merge.SMALL_WINDOW])


@SMALL
@pytest.mark.parametrize("seed", range(4))
def test_segments_merge_into_the_in_process_bytes(tmp_path, monkeypatch, seed, small):
    monkeypatch.setattr(ev, "CHECKPOINT", 7)  # checkpoints inside windows and instants
    monkeypatch.setattr(merge, "SMALL_WINDOW", small)
    rng = random.Random(seed)
    _merge_against_the_writer(tmp_path, rng, random_records(rng, 12))


@SMALL
def test_windows_that_grow_and_shrink_merge_into_the_in_process_bytes(tmp_path, monkeypatch,
                                                                        small):
    """Windows of a few hundred bytes to a few megabytes, in an order that makes
    the merge's kept buffers grow, be reused by smaller windows, and grow again."""
    monkeypatch.setattr(ev, "CHECKPOINT", 50)
    monkeypatch.setattr(merge, "SMALL_WINDOW", small)
    rng = random.Random(5)
    windows = random_records(rng, 6)
    at = windows[-1][-1][0] if windows[-1] else 100
    for width in (2_000, 10, 40_000, 3):  # payload arrays: bigger records, bigger windows
        at += 10
        recs = []
        for d in range(len(AGENTS)):
            for k in range(3):
                recs.append([at, k % 2, (d + k) % len(AGENTS), d, at - 1, 10**6 + at + k,
                             np.full(width, rng.random())])
        windows.append(recs)
    _merge_against_the_writer(tmp_path, rng, windows)


def _merge_against_the_writer(tmp_path, rng: random.Random, windows: list[list[list]]) -> None:
    """Merge each window's segments (three partitions) and compare with the writer."""
    owner = [rng.randrange(3) for _ in AGENTS]
    key = lambda r: (r[0], r[3], r[1], r[2], r[5])  # noqa: E731  (the log's order)
    pk = _packer()
    ref = EventLogWriter(tmp_path / "ref.log", HEADER)
    for recs in windows:  # the in-process writer, instant by instant
        recs = sorted(recs, key=key)
        for t in sorted({r[0] for r in recs}):
            ref.write_instant([(r[0], r[1], pk.pack(r)) for r in recs if r[0] == t])
    ref.close()
    got = EventLogWriter(tmp_path / "got.log", HEADER)
    merger = SegmentMerger(got, keep_counts=True)
    total = 0
    for recs in windows:
        segments = []
        for part in range(3):  # each partition: its agents' records, grouped by (t, dst)
            mine = sorted((r for r in recs if owner[r[3]] == part), key=key)
            meta, blob = [], b""
            for r in mine:
                b = pk.pack(r)
                if not meta or meta[-1][:2] != [r[0], r[3]]:
                    meta.append([r[0], r[3], 0, 0, 0, 0])
                meta[-1][2] += len(b)
                meta[-1][3 + r[1]] += 1
                blob += b
            segments.append((np.asarray(meta, dtype="<i8").tobytes() if meta else b"", blob))
        rng.shuffle(segments)  # the order partitions answer in does not matter
        merger.add(segments)
        total += len(recs)
    got.close()
    merger.finish()
    assert (tmp_path / "got.log").read_bytes() == (tmp_path / "ref.log").read_bytes()
    assert EventLog(str(tmp_path / "got.log")).verify_digest() == (True, total)
    ts = [r[0] for recs in windows for r in recs]
    for t in set(ts) | {0, max(ts) + 1}:
        assert merger.through(t) == sum(1 for x in ts if x <= t)


def test_merge_refuses_meta_that_does_not_match_its_bytes(tmp_path):
    m = SegmentMerger(None, keep_counts=False)
    meta = np.asarray([[1, 0, 10, 1, 0, 0]], dtype="<i8").tobytes()
    with pytest.raises(wire.WireError, match="does not match"):
        m.add([(meta, b"short")])
    with pytest.raises(wire.WireError, match="wrong length"):
        m.add([(meta[:-3], b"")])
    with pytest.raises(wire.WireError, match="without its meta"):
        m.add([(b"", b"bytes")])


def test_peers_deliver_window_by_window_and_drop_strangers():
    ctx = zmq.Context()
    nets = [PeerNet(ctx, "127.0.0.1") for _ in range(3)]
    try:
        nonce = b"12345678"
        for k, n in enumerate(nets):
            n.connect(k, nonce, {p: nets[p].endpoint for p in range(3) if p != k})
        stranger = ctx.socket(zmq.DEALER)
        stranger.setsockopt(zmq.LINGER, 0)
        stranger.connect(nets[0].endpoint)
        stranger.send_multipart([b"other-rn" + (1).to_bytes(4, "little")
                                 + (0).to_bytes(8, "little", signed=True), b"evil"])
        # partition 2 is quick: its window 1 arrives before partition 1's window 0
        nets[2].send(0, {0: b"2->0 w0", 1: b"2->1 w0"})
        nets[2].send(1, {0: b"2->0 w1", 1: b"2->1 w1"})
        nets[1].send(0, {0: b"1->0 w0", 2: b"1->2 w0"})

        def wait(net, window, peers):
            for _ in range(200):
                got = net.take(window, peers)
                if got is not None:
                    return got
                net.sock.poll(20)
            raise AssertionError("frames did not arrive")

        assert wait(nets[0], 0, [1, 2]) == [b"1->0 w0", b"2->0 w0"]
        assert nets[0].take(1, [1, 2]) is None  # partition 1 has not sent window 1 yet
        nets[1].send(1, {0: b"1->0 w1", 2: b"1->2 w1"})
        assert wait(nets[0], 1, [1, 2]) == [b"1->0 w1", b"2->0 w1"]
        nets[1].send(0, {0: b"again w0"})  # a window that is over
        with pytest.raises(wire.WireError, match="unexpected frame"):
            wait(nets[0], 2, [1, 2])
        stranger.close(0)
    finally:
        for n in nets:
            n.close()
        ctx.term()
