"""Frames of messages between partitions (asyncnet.cluster.frames): what a peer
reads back is what was sent — field by field, value by value, arrays shared as
the sender shared them — whichever form the frame took; a malformed column
frame is a WireError before anything is made."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from asyncnet.cluster import frames, wire
from asyncnet.cluster.frames import (
    SMALL_FRAME,
    IncomingLinks,
    group_by_peer,
    outbox_frames,
    pack_frame,
    read_columns,
)
from asyncnet.messages import CONTROL, DELTA, FORWARD, Message

NAMES = [f"n{i}" for i in range(40)]


@pytest.fixture(autouse=True)
def columns_at_any_size(monkeypatch):
    """Column frames however few the messages (the tests that look at the frames
    of few messages as well say so)."""
    monkeypatch.setattr(frames, "SMALL_FRAME", 0)
INDEX = {n: i for i, n in enumerate(NAMES)}


def messages(rng: np.random.Generator, n: int, payload) -> list[Message]:
    out = []
    for k in range(n):
        s, d = rng.choice(len(NAMES), 2, replace=False)
        ts = int(rng.integers(0, 1 << 40))
        out.append(Message((FORWARD, DELTA, CONTROL)[k % 3], NAMES[s], NAMES[d], ts,
                           ts + int(rng.integers(1, 9)), int(rng.integers(1, 1 << 50)),
                           payload(k)))
    return out


def read(frame: bytes) -> tuple[bool, list[tuple]]:
    """A frame's messages as a receiver gets them: (column form?, messages)."""
    obj = wire.unpack(frame)
    if isinstance(obj, dict):
        cols, payloads = read_columns(obj)
        rows = zip(*cols.T.tolist(), payloads, strict=True)
        return True, [(k, NAMES[s], NAMES[d], ts, ta, q, p) for k, s, d, ts, ta, q, p in rows]
    return False, [(k, NAMES[s], NAMES[d], ts, ta, q, p) for k, s, d, ts, ta, q, p in obj]


def same_payload(a, b) -> bool:
    """Equal type, shape and bits (-0.0 is not 0.0; a NaN is its own bit pattern)."""
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape \
            and a.tobytes() == b.tobytes()
    if type(a) is float:
        return type(b) is float and struct.pack("<d", a) == struct.pack("<d", b)
    return type(a) is type(b) and a == b


SHARED = [np.array([0.5, -0.0, np.nan]), np.array([1e300, -2.0, 3.0])]

CASES = {
    "floats": (True, lambda k: [0.25, -0.0, float("inf"), 1e-310][k % 4]),
    "fresh vectors": (True, lambda k: np.arange(3.0) * k),
    "shared vectors": (True, lambda k: SHARED[k % 2]),
    "matrices": (True, lambda k: np.full((2, 3), k / 7)),
    "empty vectors": (True, lambda k: np.empty(0)),
    "a non-contiguous view": (True, lambda k: np.arange(6.0)[::2] + k),
    "mixed floats and arrays": (False, lambda k: 1.5 if k % 2 else np.ones(3)),
    "vectors of two lengths": (False, lambda k: np.ones(2 + k % 2)),
    "0-d arrays": (False, lambda k: np.array(k / 3)),
    "float32 arrays": (False, lambda k: np.ones(3, dtype=np.float32)),
    "None": (False, lambda k: None),
    "ints": (False, lambda k: k),
}


@pytest.mark.parametrize("small", [0, SMALL_FRAME])  # fewer messages: message by message
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("n", [1, 2, 37])
def test_a_frame_reads_back_what_was_sent(case, n, small, monkeypatch):
    monkeypatch.setattr(frames, "SMALL_FRAME", small)
    columns, payload = CASES[case]
    columns = columns or (n == 1 and case in ("mixed floats and arrays", "vectors of two lengths"))
    columns = columns and n >= small
    sent = messages(np.random.default_rng(n), n, payload)
    got_columns, got = read(pack_frame(sent, INDEX, wire.packer()))
    assert got_columns == columns
    assert len(got) == len(sent)
    for m, r in zip(sent, got, strict=True):
        assert tuple(m)[:6] == r[:6]
        want = m.payload
        if isinstance(want, np.ndarray) and not columns:  # the log's msgpack form
            want = want.reshape(1) if want.ndim == 0 else want.astype("<f8")
        assert same_payload(want, r[6]), (case, m.payload, r[6])
    if columns and isinstance(sent[0].payload, np.ndarray):
        # arrays shared as the sender shared them, and each writable (a receiver's own)
        for i in range(n):
            for j in range(n):
                assert (sent[i].payload is sent[j].payload) == (got[i][6] is got[j][6])
        # each its own (receivers keep payloads: none may hold the frame's buffer)
        assert all(r[6].flags.writeable and r[6].base is None for r in got)


def test_an_empty_frame_and_integers_past_int64():
    assert read(pack_frame([], INDEX, wire.packer())) == (False, [])
    big = [Message(FORWARD, "n1", "n2", 1 << 63, (1 << 63) + 1, 1, 0.5)]
    assert read(pack_frame(big, INDEX, wire.packer())) == (False, [tuple(big[0])])
    huge = [Message(FORWARD, "n1", "n2", np.uint64(1 << 63), np.uint64((1 << 63) + 1), 1, 0.5)]
    assert read(pack_frame(huge, INDEX, wire.packer())) == (False, [(0, "n1", "n2", 1 << 63,
                                                                     (1 << 63) + 1, 1, 0.5)])


def test_messages_are_grouped_by_their_receivers_partition():
    sent = messages(np.random.default_rng(0), 50, lambda k: 0.5)
    owner = {n: i % 3 for i, n in enumerate(NAMES)}
    groups = group_by_peer(sent, owner.__getitem__)
    assert sorted(groups) == sorted({owner[m.dst] for m in sent})
    for p, ms in groups.items():
        assert ms == [m for m in sent if owner[m.dst] == p]
    assert group_by_peer(sent, lambda name: 4) == {4: sent}
    assert group_by_peer([], owner.__getitem__) == {}


def outbox_of(sent: list[Message]) -> tuple[list, list]:
    """The messages as an engine's Outbox keeps them: six numbers and a payload each."""
    numbers = [x for m in sent for x in (m.kind, INDEX[m.src], INDEX[m.dst], m.t_sent,
                                         m.t_arrive, m.seq)]
    return numbers, [m.payload for m in sent]


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("n", [0, 1, 37])
@pytest.mark.parametrize("parts", [1, 3])
def test_an_outbox_makes_the_frames_its_messages_make(case, n, parts):
    """A window's outbox, split by receiver and packed from its numbers, gives each
    peer the bytes :func:`pack_frame` makes of the same messages (the per-message
    path, grouped by :func:`group_by_peer`), and the earliest arrival."""
    sent = messages(np.random.default_rng(n + 7), n, CASES[case][1])
    owner = {name: i % parts for i, name in enumerate(NAMES)}
    peers = list(range(parts))
    got = outbox_frames(*outbox_of(sent), np.array([owner[m] for m in NAMES]), peers,
                        wire.packer())
    assert got is not None
    groups = group_by_peer(sent, owner.__getitem__)
    assert got[0] == {p: pack_frame(groups.get(p, []), INDEX, wire.packer()) for p in peers}
    assert got[1] == (min(m.t_arrive for m in sent) if sent else None)


def test_an_outbox_with_odd_numbers_goes_message_by_message_or_is_refused():
    owner = np.zeros(len(NAMES), dtype=np.int64)
    sent = messages(np.random.default_rng(3), 4, lambda k: 0.5)
    numbers, payloads = outbox_of(sent)
    for odd in (True, np.int8(1), 1.0):  # a kind of the rule's own (not a plain integer)
        assert outbox_frames([odd, *numbers[1:]], payloads, owner, [0], wire.packer()) is None
    assert outbox_frames([*numbers[:3], 1 << 63, *numbers[4:]], payloads, owner, [0],
                         wire.packer()) is None  # past int64
    owner[INDEX[sent[2].dst]] = 5  # a receiver of no neighbouring partition
    with pytest.raises(ValueError, match="no neighbouring partition"):
        outbox_frames(numbers, payloads, owner, [0], wire.packer())
    with pytest.raises(ValueError, match="no neighbouring partition"):
        outbox_frames(numbers, payloads, owner, [0, 1], wire.packer())


def good_frame() -> dict:
    sent = messages(np.random.default_rng(1), 5, lambda k: SHARED[k % 2])
    return wire.unpack(pack_frame(sent, INDEX, wire.packer()))


@pytest.mark.parametrize("spoil", [
    lambda f: f.update(n=-1), lambda f: f.update(n=6), lambda f: f.update(n="5"),
    lambda f: f.update(n=wire.MAX_ITEMS + 1),
    lambda f: f.update(cols=f["cols"][:-1]), lambda f: f.update(cols=None),
    lambda f: f.update(pay="f4"), lambda f: f.pop("pay"),
    lambda f: f.update(shape=[]), lambda f: f.update(shape=[3, -1]),
    lambda f: f.update(shape=[1 << 40, 1 << 40]), lambda f: f.update(shape="3"),
    lambda f: f.update(shape=[1] * 9), lambda f: f.update(uniq=f["uniq"][:-8]),
    lambda f: f.update(uniq=f["uniq"] + b"\0"),
    lambda f: f.update(uniq=f["uniq"] * 4),  # more distinct arrays than messages
    lambda f: f.update(which=f["which"][:-1]),
    lambda f: f.update(which=np.array([0, 1, 0, 1, 2], dtype="<i8").tobytes()),
    lambda f: f.update(which=np.array([0, 1, 0, 1, -1], dtype="<i8").tobytes()),
    lambda f: f.update(pay="float", values=b"\0" * 39),
])
def test_a_malformed_column_frame_is_refused(spoil):
    frame = good_frame()
    read_columns(dict(frame))  # the frame itself is good
    spoil(frame)
    with pytest.raises(wire.WireError):
        read_columns(frame)


def test_a_column_frame_maps_each_message_to_the_array_its_which_names():
    """A frame's ``which`` is read as sent, whatever order it names the distinct
    arrays in (as many arrays as messages included: each message its own, in
    order, is what a sender makes; a peer may number them otherwise)."""
    rng = np.random.default_rng(5)
    sent = messages(rng, 6, lambda k: np.full(2, float(k)))
    frame = wire.unpack(pack_frame(sent, INDEX, wire.packer()))
    assert np.frombuffer(frame["which"], dtype="<i8").tolist() == list(range(6))
    for which in ([5, 4, 3, 2, 1, 0], [1, 0, 2, 3, 4, 5], [0, 0, 2, 3, 4, 5]):
        f = dict(frame, which=np.array(which, dtype="<i8").tobytes())
        _, payloads = read_columns(f)
        assert [p.tolist() for p in payloads] == [[float(w)] * 2 for w in which]
        for i in range(6):
            for j in range(6):
                assert (payloads[i] is payloads[j]) == (which[i] == which[j])


@pytest.mark.parametrize("small", [0, SMALL_FRAME])  # fewer: read message by message at once
def test_a_partition_injects_a_column_frame_as_it_would_the_same_messages_one_by_one(
        small, monkeypatch):
    """The same messages, the same checks (links, agents, time), the same error."""
    from types import SimpleNamespace

    from asyncnet.cluster.part import PartRunner
    from asyncnet.messages import LocalityError

    def outcome(msgs: list[Message], columns: bool):
        got = []
        pr = PartRunner.__new__(PartRunner)
        pr.names = NAMES
        pr.stats = {"cut_received": 0}
        links = {"n1": {"n0": 5}, "n2": {"n0": 5, "n1": 3}, "n0": {"n1": 5, "n2": 5}}

        def inject_columns(cols, payloads):  # a checked frame's rows and payloads
            got.extend(Message(k, NAMES[s], NAMES[d], ts, ta, q, p) for (k, s, d, ts, ta, q), p
                       in zip(cols.tolist(), payloads, strict=True))

        pr.eng = SimpleNamespace(agents={"n1": 0, "n2": 0}, env=SimpleNamespace(now=10),
                                 links=links, inject=got.append,
                                 inject_columns=inject_columns)
        pr.incoming = IncomingLinks(links, INDEX, {"n1", "n2"})
        frame = pack_frame(msgs, INDEX, wire.packer())
        assert isinstance(wire.unpack(frame), dict)
        monkeypatch.setattr(frames, "SMALL_FRAME", small)  # what the receiver reads so
        if not columns:
            frame = wire.pack([[m[0], INDEX[m[1]], INDEX[m[2]], *m[3:]] for m in msgs])
        try:
            pr.inject(frame)
            err = None
        except (wire.WireError, LocalityError) as e:
            err = (type(e), str(e))
        finally:
            monkeypatch.setattr(frames, "SMALL_FRAME", 0)
        return err, [tuple(m) for m in got], pr.stats["cut_received"]

    good = [Message(FORWARD, "n0", "n1", 5, 10, 1, 1.5), Message(DELTA, "n0", "n2", 7, 12, 2, 2.5),
            Message(FORWARD, "n0", "n2", 6, 11, 3, -0.0)]
    for extra in ([], [Message(FORWARD, "n0", "n1", 6, 10, 4, 0.0)],   # no link of that delay
                  [Message(DELTA, "n1", "n2", 7, 10, 4, 0.0)],         # from this partition
                  [Message(DELTA, "n5", "n2", 7, 10, 4, 0.0)],         # no link at all
                  [Message(FORWARD, "n0", "n3", 5, 10, 4, 0.0)],       # not this partition's
                  [Message(FORWARD, "n0", "n1", 3, 8, 4, 0.0)],        # before now
                  [Message(3, "n0", "n1", 5, 10, 4, 0.0)],             # no such kind
                  [Message(-1, "n0", "n1", 5, 10, 4, 0.0)],
                  [Message(1 << 40, "n0", "n1", 5, 10, 4, 0.0)]):
        assert outcome(good + extra, True) == outcome(good + extra, False), extra
    assert outcome(good, True) == (None, [tuple(m) for m in good], 3)
    err = outcome(good + [Message(3, "n0", "n1", 5, 10, 4, 0.0)], True)[0]
    assert err == (wire.WireError, "a message of unknown kind 3")
    err = outcome(good + [Message(FORWARD, "n0", "n1", 3, 8, 4, 0.0)], True)[0]
    assert err[0] is wire.WireError and "past" in err[1]
    for wrong in (Message(FORWARD, "n0", "n1", 6, 10, 4, 0.0),  # no link of that delay
                  Message(DELTA, "n5", "n2", 7, 10, 4, 0.0)):   # no link at all
        for columns in (True, False):
            assert outcome(good + [wrong], columns)[0][0] is LocalityError


@pytest.mark.parametrize("odd", ["bool kind", "int8 kind", "seq past int64"])
def test_a_partitions_odd_outbox_reaches_each_peer_message_by_message(odd):
    """``PartRunner._frames`` with an outbox the column path refuses (a kind of the
    rule's own, a number past int64): each neighbour reads back exactly its
    messages, as sent (a bool stays a bool, a big seq stays exact); the earliest
    arrival and the count are the outbox's; a receiver of no neighbour is refused."""
    from asyncnet.agents import Outbox
    from asyncnet.cluster.part import PartError, PartRunner

    sent = messages(np.random.default_rng(11), 9, lambda k: np.arange(2.0) + k)
    change = {"bool kind": lambda m: m._replace(kind=True),
              "int8 kind": lambda m: m._replace(kind=np.int8(1)),
              "seq past int64": lambda m: m._replace(seq=(1 << 64) - 3)}[odd]
    sent[4] = change(sent[4])
    owner = {name: 1 + i % 2 for i, name in enumerate(NAMES)}  # this partition: 0

    def runner(owner: dict) -> PartRunner:
        pr = PartRunner.__new__(PartRunner)
        pr.outbox = Outbox(INDEX)
        for m in sent:
            pr.outbox(m)
        pr.names, pr.index, pr.packer, pr.peers = NAMES, INDEX, wire.packer(), [1, 2]
        pr.owner = np.array([owner[n] for n in NAMES], dtype=np.int64)
        pr.owner_by_name = owner
        return pr

    frames, first, count = runner(owner)._frames()
    assert set(frames) == {1, 2} and count == len(sent)
    assert first == min(m.t_arrive for m in sent)
    for p in (1, 2):
        column, got = read(frames[p])
        assert not column or p != owner[sent[4].dst]  # the odd one's frame: by message
        want = [m for m in sent if owner[m.dst] == p]
        assert [g[:6] for g in got] == [tuple(m[:6]) for m in want]
        assert [type(g[0]) for g in got] == [bool if type(m.kind) is bool else int for m in want]
        assert all(same_payload(g[6], m.payload) for g, m in zip(got, want, strict=True))
    elsewhere = {**owner, sent[2].dst: 3}
    with pytest.raises(PartError, match="no neighbouring partition"):
        runner(elsewhere)._frames()
