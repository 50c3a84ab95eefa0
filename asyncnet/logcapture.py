"""An instant's records packed from the engine's sends (:mod:`asyncnet.capture`).

The event log's writer takes each instant as the engine captured it: one
entry a send, however many messages it made. :func:`pack_instant` expands
the sends to records with numpy (:func:`asyncnet.capture.expand`), encodes
each send's payload once (:func:`asyncnet.logpack.payload_block`) and packs
the records column-wise (:func:`asyncnet.logpack.pack_rows`) — the bytes
msgpack makes of ``[t_arrive, kind, src, dst, t_sent, seq, payload]``
records in canonical order, the same as packing the delivered messages one
by one. Where that cannot be done exactly (an instant with a message that
was not a send of this engine, a payload of another shape or type, a kind
or number msgpack packs otherwise), the records are made one by one, the
way :class:`asyncnet.logencode.RecordEncoder` makes them.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import msgpack
import numpy as np

from . import logsends
from .capture import Captured, expand, send_bounds, send_table
from .logformat import array_items, record_key
from .logpack import block_of, cols_ends, pack_rows, payload_parts

_kind_of = itemgetter(1)
SMALL_INSTANT = 64
"""An instant of fewer sends is packed record by record: the column-wise
path's fixed cost (the send table, its checks, the payloads' block: ~15 µs an
instant) is more than it saves there. Measured (log on ÷ off, interleaved):
quickstart's 3-4 sends an instant 2.37 → 1.99, waves_fast 2.07 → 1.78,
continuous_dag 1.71 → 1.56; a net of ~1,000 messages an instant is not
affected."""


def pack_instant(parts: list[Captured], index: dict[str, int], packer: msgpack.Packer,
                 code: Any, records: int = 0) -> tuple[Any, int, list[int], int]:
    """One instant's records, packed in canonical order.

    Parameters
    ----------
    parts:
        what the engine handed over for one arrival instant (more than one
        part only where a zero-delay link ran the instant twice).
    index:
        agent name -> its index in the log's agent table.
    packer:
        the log's msgpack packer (payload codes as ``default``).
    code:
        payload -> its log code (:class:`asyncnet.logencode.PayloadCodes`).
    records:
        how many records the log has, or will have by the run's end (a
        large log compiles the packing loop: :func:`asyncnet.logsends.kernel`).

    Returns
    -------
    ``(data, records, counts by kind, t_arrive)``.
    """
    t = parts[0].t
    if len(parts) == 1 and parts[0].sends is not None \
            and len(parts[0].sends[1]) >= SMALL_INSTANT:
        got = pack_sends(parts[0], records)
        if got is not None:
            return got[0], len(got[1]), got[4], t
    recs: list[tuple] = []
    for part in parts:
        if part.sends is not None:
            recs += send_records(part, code)
        else:
            recs += [(ta, k, index[s], index[d], ts, q, code(p))
                     for b in part.batches or () for k, s, d, ts, ta, q, p in b]
    recs.sort(key=record_key)
    n = len(recs)
    ks = bytes(map(_kind_of, recs))  # 0..2: the engine counted them by kind already
    kinds = [ks.count(0), ks.count(1), ks.count(2)]
    return array_items(packer.pack(recs)), n, kinds, t


_BIG = 1 << 62
"""Numbers from here on go record by record: a seq plus a group's place must stay
below 2⁶³ (numpy's int64), and a Python int there is msgpack's uint64 anyway."""


def _plain(table: np.ndarray, part: Captured) -> bool:
    """Whether the sends' numbers are what the column-wise paths pack exactly
    (kinds 0, 1 or 2; the rest non-negative, below 2⁶²) and their keys name
    receivers of the table."""
    got = send_bounds(table, part)
    if got is None:
        return True
    lo, hi, keys_known = got  # (src, t_sent, seq before, kind, key)
    if min(lo[0], lo[1], lo[2] + 1, lo[3]) < 0 or max(hi[0], hi[1], hi[2]) >= _BIG \
            or hi[3] > 2 or not 0 <= part.t < _BIG:
        return False  # a rule's own kind, a negative number (an injected message's), a huge one
    return keys_known


def pack_sends(part: Captured, records: int, table: np.ndarray | None = None
               ) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, list[int]] | None:
    """The records of one part of sends, packed column-wise, or ``None`` (not exactly).

    Parameters
    ----------
    part:
        a :class:`~asyncnet.capture.Captured` with sends.
    records:
        how many records the log has, or will have (see :func:`asyncnet.logsends.kernel`).
    table:
        its :func:`~asyncnet.capture.send_table` if the caller made it (read only).

    Returns
    -------
    ``(data, dst, kind, ends, counts by kind)``: the records back to back in
    canonical order, and each record's receiver, kind and end in ``data``.
    """
    sends = part.sends
    assert sends is not None
    if table is None:
        table = send_table(sends)
    if table is None or not _plain(table, part):
        return None
    parts = payload_parts(sends[1])
    if parts is None:
        return None
    head, rows = parts
    kern = logsends.kernel(records)
    if kern is not None:
        flat, start, length = part.table.arrays()
        if not len(flat):  # no routes (every message injected): a table to index
            flat = start = length = np.zeros(1, dtype=np.int64)
        data, counts, dst, kind, ends = kern(table, flat, start, length, part.t,
                                             part.agents, head, rows)
        return data, dst, kind, ends, counts.tolist()
    cols = expand(table, part.table)
    m = len(cols.dst)
    recs = np.empty((m, 6), dtype=np.int64)
    recs[:, 0] = part.t
    recs[:, 1] = cols.kind
    recs[:, 2] = cols.src
    recs[:, 3] = cols.dst
    recs[:, 4] = cols.t_sent
    recs[:, 5] = cols.seq
    block = block_of(head, rows)
    return pack_rows(recs, block, cols.send), cols.dst, cols.kind, cols_ends(recs, block), \
        np.bincount(cols.kind, minlength=3).tolist()


def send_records(part: Captured, code: Any) -> list[tuple]:
    """A part's sends as record tuples, one by one (any kind, any payload)."""
    assert part.sends is not None
    numbers, payloads = part.sends
    group = part.table.group
    out = []
    ta = part.t
    at = 0
    for p in payloads:
        s, ts, q, k, key = numbers[at:at + 5]
        at += 5
        c = code(p)
        if key < 0:  # one receiver named outright
            out.append((ta, k, s, -key - 1, ts, q + 1, c))
            continue
        for j, a in enumerate(group(key), q + 1):
            if a.idx >= 0:  # not another partition's
                out.append((ta, k, s, a.idx, ts, j, c))
    return out
