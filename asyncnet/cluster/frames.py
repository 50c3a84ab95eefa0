"""Frames of messages between partitions, column by column.

A partition sends each neighbour, once a window, every message that crosses
the cut to it. Most such frames are uniform: six integer fields and a payload
that is, for every message, a float or a float64 array of one shape. Those
go as columns: a map ``{"n": count, "cols": the six integer fields as
little-endian int64, message after message, "pay": payload kind, ...}``
with each distinct array sent once (``"uniq"``: their values back to back;
``"which"``: each message's array, int64) — a neuron's value sent to sixty
synapses of the peer is one row, and the peer shares it among the sixty
messages as the sending process did. Anything else (a mixed frame, ``None``
payloads, integers too big for int64, a frame of fewer than
:data:`SMALL_FRAME` messages) goes as before: a msgpack array of
``[kind, src, dst, t_sent, t_arrive, seq, payload]`` per message.

Reading checks every size against the frame's own count before making
anything (peers may be hostile): a malformed frame is a
:class:`~.wire.WireError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from operator import countOf, itemgetter
from typing import Any

import numpy as np

from ..capture import int64s
from ..logpack import INT_TYPES, array_shape
from . import wire

_tobytes = np.ndarray.tobytes
_DST = itemgetter(2)
MAX_NDIM = 8
"""Most dimensions a payload array may have on the wire (as in the event log)."""
SMALL_FRAME = 16
"""A frame of fewer messages goes message by message (and is read so): the
columns' numpy calls cost a small scenario's worker ≈ a fifth of its window,
a frame of one or two messages a window."""


def group_by_peer(msgs: list, owner_of: Callable[[str], int]) -> dict[int, list]:
    """A window's outgoing messages by the partition that owns each receiver.

    Parameters
    ----------
    msgs:
        the messages, in the order they were sent.
    owner_of:
        agent name -> its partition.

    Returns
    -------
    partition -> its messages, each list in the order sent.
    """
    owners = list(map(owner_of, map(_DST, msgs)))
    first = owners[0] if owners else None
    if owners.count(first) == len(owners):  # one neighbour (two workers): no split
        return {first: msgs} if owners else {}
    out: dict[int, list] = {}
    for p, m in zip(owners, msgs, strict=True):
        bucket = out.get(p)
        if bucket is None:
            out[p] = [m]
        else:
            bucket.append(m)
    return out


def _payload_columns(payloads: list | tuple) -> dict[str, Any] | None:
    """The payloads as a column (see the module), or ``None`` if not uniform."""
    n = len(payloads)
    if n and countOf(map(type, payloads), float) == n:  # floats: no sharing to find
        return {"pay": "float", "values": np.array(payloads, dtype="<f8").tobytes()}
    # each distinct object once (by identity: what one sender sent to many; every
    # payload is alive, so an id is one object's): only those are looked at,
    # numbered in the order they first come (the same frame run after run)
    ids = np.fromiter(map(id, payloads), dtype=np.uint64, count=n)
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    if len(first) == n:  # every message its own array (a synapse's value to its neuron)
        uniq, which = payloads, None
    else:
        order = np.argsort(first)  # the distinct ids by first place
        rank = np.empty(len(order), dtype="<i8")
        rank[order] = np.arange(len(order))
        uniq = list(map(payloads.__getitem__, first[order].tolist()))
        which = rank[inverse.reshape(-1)]
    shape = array_shape(uniq)  # (a 0-d array would come back a numpy scalar: none)
    if shape is None or len(shape) > MAX_NDIM:
        return None
    try:  # the arrays' own buffers, joined in one C loop (no bytes object each)
        values = b"".join(uniq)
    except (BufferError, TypeError, ValueError):  # not C-contiguous: C order, copied
        values = b"".join(map(_tobytes, uniq))
    if which is None:
        which = np.arange(n, dtype="<i8")
    return {"pay": "f8", "shape": list(shape), "uniq": values, "which": which.tobytes()}


def pack_frame(msgs: list, index: dict[str, int], packer: Any) -> bytes:
    """One frame of messages for a peer (column-wise where it can be).

    Parameters
    ----------
    msgs:
        ``Message`` tuples ``(kind, src, dst, t_sent, t_arrive, seq, payload)``.
    index:
        agent name -> its index in the run's agent table.
    packer:
        a :func:`~.wire.packer` (for the per-message form).

    Returns
    -------
    The frame's bytes.
    """
    if msgs:
        kind, src, dst, t_sent, t_arr, seq, payload = zip(*msgs, strict=True)
        if INT_TYPES.issuperset(map(type, (*kind, *t_sent, *t_arr, *seq))):
            n = len(msgs)
            cols = np.empty((n, 6), dtype="<i8")
            try:
                cols[:, 0] = kind
                cols[:, 1] = np.fromiter(map(index.__getitem__, src), dtype=np.int64, count=n)
                cols[:, 2] = np.fromiter(map(index.__getitem__, dst), dtype=np.int64, count=n)
                cols[:, 3] = t_sent
                cols[:, 4] = t_arr
                cols[:, 5] = seq
            except OverflowError:  # an integer past int64: msgpack carries it
                pass
            else:
                return pack_columns(cols, payload, packer)
    return packer.pack([(m[0], index[m[1]], index[m[2]], m[3], m[4], m[5], m[6])
                        for m in msgs])


def pack_columns(cols: np.ndarray, payloads: list | tuple, packer: Any) -> bytes:
    """One frame of messages given as columns (column-wise where the payloads allow).

    Parameters
    ----------
    cols:
        ``(n, 6)`` int64 rows ``kind, src, dst, t_sent, t_arrive, seq``
        (agents as indices into the run's agent table).
    payloads:
        the messages' payloads, one a row.
    packer:
        a :func:`~.wire.packer`.

    Returns
    -------
    The frame's bytes: the same as :func:`pack_frame` makes of these messages.
    """
    if not len(payloads):
        return packer.pack([])
    pay = _payload_columns(payloads) if len(payloads) >= SMALL_FRAME else None
    if pay is None:
        return packer.pack([(*row, p) for row, p in zip(cols.tolist(), payloads, strict=True)])
    return packer.pack({"n": len(payloads), "cols": cols.astype("<i8", copy=False).tobytes(),
                        **pay})


def outbox_frames(numbers: list, payloads: list, owner: np.ndarray, peers: list[int],
                  packer: Any) -> tuple[dict[int, bytes], int | None] | None:
    """A window's outgoing messages, as an :class:`~asyncnet.agents.Outbox` kept
    them, in one frame a neighbouring partition.

    Parameters
    ----------
    numbers, payloads:
        six integers a message (``kind, src, dst, t_sent, t_arrive, seq``)
        and its payload, in the order sent.
    owner:
        each agent's partition, by its index (int64).
    peers:
        the neighbouring partitions (each gets a frame, empty or not).
    packer:
        a :func:`~.wire.packer`.

    Returns
    -------
    ``(peer -> frame, the earliest arrival or None)``; ``None`` if a kind is
    not a plain integer or a number does not fit int64 (the caller makes
    the messages and packs them with :func:`pack_frame`).

    Raises
    ------
    ValueError
        a message to an agent of no neighbouring partition.
    """
    if not INT_TYPES.issuperset(map(type, numbers[::6])):
        return None
    flat = int64s(numbers)
    if flat is None:  # past int64
        return None
    cols = flat.reshape(-1, 6)
    if len(peers) == 1:  # links are symmetric: all of it goes to the one neighbour
        parts = {peers[0]: (cols, payloads)}
        if len(payloads) and (owner[cols[:, 2]] != peers[0]).any():
            raise ValueError("a message was sent to an agent of no neighbouring partition")
    else:
        to = owner[cols[:, 2]]
        if len(payloads) and not np.isin(to, peers).all():
            raise ValueError("a message was sent to an agent of no neighbouring partition")
        parts = {}
        for p in peers:
            at = np.flatnonzero(to == p)
            parts[p] = (cols[at], list(map(payloads.__getitem__, at.tolist())))
    frames = {p: pack_columns(c, pays, packer) for p, (c, pays) in parts.items()}
    return frames, (int(cols[:, 4].min()) if len(payloads) else None)


def _bytes(frame: dict, key: str, size: int) -> bytes:
    value = frame.get(key)
    if type(value) is not bytes or len(value) != size:
        raise wire.WireError(f"a column frame's {key!r} is not {size} bytes")
    return value


def read_columns(frame: dict) -> tuple[np.ndarray, list]:
    """A column frame's messages as six integer columns and the payloads.

    Parameters
    ----------
    frame:
        the decoded map (see the module).

    Returns
    -------
    ``(cols, payloads)``: an ``(n, 6)`` int64 array of ``kind, src, dst,
    t_sent, t_arrive, seq`` (agents as indices), and a list of one payload
    per message; the payloads share arrays as the sender's did.
    """
    n = frame.get("n")
    if type(n) is not int or not 0 <= n <= wire.MAX_ITEMS:
        raise wire.WireError("a column frame's message count is missing or out of range")
    cols = np.frombuffer(_bytes(frame, "cols", 48 * n), dtype="<i8").reshape(n, 6)
    kind = frame.get("pay")
    if kind == "float":
        payloads = np.frombuffer(_bytes(frame, "values", 8 * n), dtype="<f8").tolist()
    elif kind == "f8":
        shape = frame.get("shape")
        if type(shape) is not list or not 1 <= len(shape) <= MAX_NDIM or not all(
                type(s) is int and 0 <= s <= wire.MAX_FRAME for s in shape) \
                or math.prod(shape) > wire.MAX_FRAME:
            raise wire.WireError("a column frame's payload shape is malformed")
        which = np.frombuffer(_bytes(frame, "which", 8 * n), dtype="<i8")
        size = math.prod(shape)
        values = frame.get("uniq")
        if type(values) is not bytes or (len(values) % (8 * size) if size else len(values)):
            raise wire.WireError("a column frame's payload values do not match their shape")
        m = len(values) // (8 * size) if size else (int(which.max()) + 1 if n else 0)
        if m > n or (n and (which.min() < 0 or which.max() >= m)):
            raise wire.WireError("a column frame refers to a payload it does not hold")
        # each distinct array a copy of its own: receivers keep payloads, and a view
        # would keep the whole frame's values alive
        block = np.frombuffer(values, dtype="<f8") if size else np.empty(0)
        rows = [r.copy() for r in block.reshape(m, *shape)]
        if m == n and np.array_equal(which, np.arange(n)):  # each message its own array
            payloads = rows
        else:
            payloads = list(map(rows.__getitem__, which.tolist()))
    else:
        raise wire.WireError(f"a column frame's payload kind {kind!r} is unknown")
    return cols, payloads


class IncomingLinks:
    """The links by which a partition's neighbours may reach it, to check a whole
    column frame at once (every message on one of them, with its delay).

    Parameters
    ----------
    links:
        agent -> neighbour -> delay (quanta), the locality graph.
    index:
        agent name -> its index in the run's agent table.
    mine:
        the partition's agents.
    """

    def __init__(self, links: dict[str, dict[str, int]], index: dict[str, int],
                 mine: set[str]):
        self.n = n = len(index)
        keys, delays = [], []
        for a in mine:
            at = index[a]
            for b, delay in links[a].items():
                if b not in mine:
                    keys.append(index[b] * n + at)
                    delays.append(delay)
        order = np.argsort(np.array(keys, dtype=np.int64), kind="stable")
        self.keys = np.array(keys, dtype=np.int64)[order]
        self.delays = np.array(delays, dtype=np.int64)[order]

    def admit(self, cols: np.ndarray, now: int) -> bool:
        """Whether every message of ``cols`` (see :func:`read_columns`) is of a known
        kind, comes from a neighbouring partition's agent along a link into this
        one with that link's delay, and arrives at ``now`` or later.

        Parameters
        ----------
        cols:
            the frame's ``(n, 6)`` integer columns.
        now:
            the partition's present (quanta).

        Returns
        -------
        True if all are; False if any is not (the caller says which, one by one).
        """
        if not len(cols):
            return True
        kind, src, dst, t_sent, t_arrive = cols[:, 0], cols[:, 1], cols[:, 2], cols[:, 3], \
            cols[:, 4]
        n = self.n
        if kind.min() < 0 or kind.max() > 2 or t_arrive.min() < now or not len(self.keys) \
                or src.min() < 0 or dst.min() < 0 or src.max() >= n or dst.max() >= n:
            return False
        key = src * n + dst
        at = np.minimum(np.searchsorted(self.keys, key), len(self.keys) - 1)
        with np.errstate(over="ignore"):  # a hostile t_sent: the delays differ
            return bool((self.keys[at] == key).all()
                        and (self.delays[at] == t_arrive - t_sent).all())
