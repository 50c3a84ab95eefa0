"""The coordinator's merge: packed log segments, per-instant counts, traffic.

Each partition sends, per window, its delivered records already packed as
the event log packs them, grouped by ``(t_arrive, dst)`` with one meta row
per group (see :mod:`.part`). All records of one agent at one instant come
from the partition that owns the agent, so the canonical order of the whole
window is the order of the groups by ``(t, dst)``: one ``numpy.lexsort``
over the groups, then the bytes are copied in that order — runs of groups
that lie next to each other in one segment in one slice. No record is
unpacked and no Python object is made per message.

Checkpoints go where the in-process writer puts them: after the first whole
instant at which the record count reaches the writer's next checkpoint, so
blocks are cut at those instants.
"""

from __future__ import annotations

import struct

import numpy as np

from ..eventlog import EventLogWriter
from ..messages import KIND_NAMES
from ..metrics import Traffic
from . import wire
from .cones import read_trace_frame
from .part import META_COLS, TRAFFIC_KEYS

_META_ROW = "<" + "q" * META_COLS
_MISMATCH = "log segment meta does not match its bytes"
SMALL_WINDOW = 128
"""A window of at most this many ``(t, dst)`` groups is merged in Python
(:meth:`SegmentMerger._add_small`): the numpy path's fixed cost, ≈ 75 µs a
window, was most of the coordinator's time on a small scenario's windows of
an instant each."""


class SegmentMerger:
    """Merges one window's segments and writes them (see the module docstring).

    Parameters
    ----------
    writer:
        The event log writer, or None (only per-instant counts are kept).
    keep_counts:
        Whether to keep messages delivered per instant (for ``through``).
    """

    def __init__(self, writer: EventLogWriter | None, keep_counts: bool):
        self.writer = writer
        self.keep_counts = keep_counts
        self._t: list[np.ndarray] = []
        self._n: list[np.ndarray] = []
        self.instants: np.ndarray = np.zeros(0, dtype=np.int64)
        self.through_count: np.ndarray = np.zeros(0, dtype=np.int64)
        # a window's segments side by side, and its records in log order: two
        # buffers kept from window to window. Fresh bytes objects of a window's
        # size (megabytes) came from the system each time and were paid for
        # again, page by page, at their first write: a third of the merge's CPU
        self._joined = bytearray()
        self._ordered = bytearray()

    def add(self, segments: list[tuple[bytes, bytes]]) -> None:
        """Merge and write one window.

        Parameters
        ----------
        segments:
            ``(meta, blob)`` from each partition, in any order.
        """
        got, groups = [], 0
        for meta_b, blob in segments:
            if not meta_b:
                if blob:
                    raise wire.WireError("a log segment without its meta rows")
                continue
            if len(meta_b) % (8 * META_COLS):
                raise wire.WireError("log segment meta of a wrong length")
            got.append((meta_b, blob))
            groups += len(meta_b) // (8 * META_COLS)
        if not got:
            return
        if groups <= SMALL_WINDOW:
            self._add_small(got)
            return
        metas, blobs, bases = [], [], []
        base = 0
        for meta_b, blob in got:
            meta = np.frombuffer(meta_b, dtype="<i8").reshape(-1, META_COLS)
            if (meta[:, 2:] < 0).any() or int(meta[:, 2].sum()) != len(blob):
                raise wire.WireError(_MISMATCH)
            metas.append(meta)
            blobs.append(blob)
            bases.append(base)
            base += len(blob)
        meta = np.concatenate(metas) if len(metas) > 1 else metas[0]
        ends = np.concatenate([b + np.cumsum(m[:, 2]) for b, m in zip(bases, metas,
                                                                       strict=True)])
        order = np.lexsort((meta[:, 1], meta[:, 0]))
        meta, ends = meta[order], ends[order]
        n = meta[:, 3:].sum(axis=1)
        t = meta[:, 0]
        if self.keep_counts:
            self._t.append(t)
            self._n.append(n)
        if self.writer is not None:
            self._joined = _room(self._joined, base)
            joined = memoryview(self._joined)[:base]
            for at, blob in zip(bases, blobs, strict=True):
                joined[at:at + len(blob)] = blob
            self._write(joined, meta, ends, n)
            joined.release()

    def _add_small(self, segments: list[tuple[bytes, bytes]]) -> None:
        """:meth:`add` for a window of a few groups, in Python: the same checks,
        order and blocks, without the numpy calls' fixed cost."""
        rows = []  # (t, dst, segment, start, end, forward, delta, control)
        for k, (meta_b, blob) in enumerate(segments):
            at = 0
            for t, dst, size, *by in struct.iter_unpack(_META_ROW, meta_b):
                if size < 0 or min(by) < 0:
                    raise wire.WireError(_MISMATCH)
                rows.append((t, dst, k, at, at + size, *by))
                at += size
            if at != len(blob):
                raise wire.WireError(_MISMATCH)
        rows.sort()  # ties (an instant run twice) keep the segments' order, as lexsort
        if self.keep_counts:
            self._t.append(np.array([r[0] for r in rows], dtype=np.int64))
            self._n.append(np.array([r[5] + r[6] + r[7] for r in rows], dtype=np.int64))
        writer = self.writer
        if writer is None:
            return
        views = [memoryview(b) for _, b in segments]
        pieces: list[memoryview] = []
        by_kind = [0, 0, 0]
        for i, (t, _, k, lo, hi, a, b, c) in enumerate(rows):
            pieces.append(views[k][lo:hi])
            by_kind[0] += a
            by_kind[1] += b
            by_kind[2] += c
            last = i + 1 == len(rows)
            # a block ends after the first whole instant that reaches the next checkpoint
            if last or (rows[i + 1][0] != t
                        and writer.count + sum(by_kind) >= writer.next_checkpoint):
                writer.write_block(b"".join(pieces), sum(by_kind), by_kind, t)
                pieces, by_kind = [], [0, 0, 0]

    def _write(self, mv: memoryview, meta: np.ndarray, ends: np.ndarray,
               n: np.ndarray) -> None:
        starts = ends - meta[:, 2]
        # runs: groups whose bytes follow each other in one segment are one slice
        brk = np.flatnonzero(starts[1:] != ends[:-1]) + 1
        run_lo = np.concatenate(([0], brk))
        run_hi = np.concatenate((brk, [len(meta)]))
        t = meta[:, 0]
        last_of_instant = np.flatnonzero(np.diff(t)) + 1  # group index where t changes
        cum = np.cumsum(n)
        writer = self.writer
        self._ordered = _room(self._ordered, len(mv))  # the window's bytes, reordered
        lo = 0
        while lo < len(meta):
            # cut after the first whole instant that reaches the next checkpoint
            need = writer.next_checkpoint - writer.count
            k = int(np.searchsorted(cum, need + (cum[lo - 1] if lo else 0), side="left"))
            if k >= len(meta):
                hi = len(meta)
            else:
                j = int(np.searchsorted(last_of_instant, k, side="right"))
                hi = int(last_of_instant[j]) if j < len(last_of_instant) else len(meta)
            a, b = np.searchsorted(run_lo, lo, side="right") - 1, np.searchsorted(
                run_lo, hi, side="left")
            lo_r, hi_r = run_lo[a:b].copy(), run_hi[a:b].copy()
            lo_r[0], hi_r[-1] = lo, hi
            s0, s1 = starts[lo_r].tolist(), ends[hi_r - 1].tolist()
            with memoryview(self._ordered) as out:
                at = 0
                for x, y in zip(s0, s1, strict=True):
                    out[at:at + y - x] = mv[x:y]
                    at += y - x
                by_kind = meta[lo:hi, 3:].sum(axis=0).tolist()
                # written before the next window reuses the buffer (a write cut
                # short keeps its view until the writer closes; nothing is
                # merged after it)
                writer.write_block(out[:at], int(cum[hi - 1] - (cum[lo - 1] if lo else 0)),
                                   by_kind, int(t[hi - 1]))
            lo = hi

    def finish(self) -> None:
        """Fold the per-instant counts into ``instants`` and ``through_count``."""
        if not self._t:
            return
        t, n = np.concatenate(self._t), np.concatenate(self._n)
        self.instants, first = np.unique(t, return_index=True)
        self.through_count = np.cumsum(n)[np.r_[first[1:] - 1, len(n) - 1]]
        self._t, self._n = [], []

    def through(self, t: int) -> int:
        """Messages delivered up to and including an instant.

        Parameters
        ----------
        t:
            the instant (quanta).

        Returns
        -------
        The count (after :meth:`finish`).
        """
        k = int(np.searchsorted(self.instants, t, side="right"))
        return int(self.through_count[k - 1]) if k else 0


def _room(buf: bytearray, size: int) -> bytearray:
    """``buf``, or a larger one if it holds fewer than ``size`` bytes (grown by half
    again, so a run's windows of slowly growing size reallocate it rarely)."""
    if len(buf) >= size:
        return buf
    return bytearray(max(size, len(buf) * 3 // 2))


def trace_messages(frames: list[bytes], names: list[str]) -> list[tuple]:
    """Trace rows of one window from every partition, as messages in log order.

    Parameters
    ----------
    frames:
        one :func:`~asyncnet.cluster.cones.trace_frame` per partition
        (``b""``: none).
    names:
        every agent's name, by index.

    Returns
    -------
    The messages, in the log's canonical order, as plain tuples of a
    :class:`~asyncnet.messages.Message`'s fields in its order (what
    :meth:`~asyncnet.metrics.Traffic.follow` reads; made in C loops, where a
    ``Message`` a row cost ≈ 0.4 µs). A forward or delta message's payload
    is ``None`` (the trace reads only control messages'), a control
    message's its value as a float64 vector.
    """
    parts, payloads = [], []
    for f in frames:
        if f:
            rows, pays = read_trace_frame(f, len(names))
            parts.append(rows)
            payloads += pays
    if not parts:
        return []
    rows = np.concatenate(parts) if len(parts) > 1 else parts[0]
    # the log's order (t, dst, kind, src, seq): one lexsort, not a Python sort a row
    order = np.lexsort(rows[:, [4, 3, 2, 1, 0]].T)
    t, dst, kind, src, seq, t_sent = rows[order].T.tolist()
    at = names.__getitem__
    return list(zip(kind, map(at, src), map(at, dst), t_sent, t, seq,
                    map(payloads.__getitem__, order.tolist()), strict=True))


def merge_traffic(traffic: Traffic, parts: list[dict]) -> None:
    """Set the counters of ``traffic`` to the sum of the partitions' counters.

    ``traffic`` keeps what only it knows (the traced latencies); counts, link
    delays and locality are what the partitions counted, added up.

    Parameters
    ----------
    traffic:
        the coordinator's counter (it traced the latencies).
    parts:
        each partition's ``TRAFFIC_KEYS`` counters.
    """
    k = len(KIND_NAMES)
    count, dsum, dmax = [0] * k, [0] * k, [0] * k
    dmin = [float("inf")] * k
    local = 0
    for p in parts:
        if set(p) != set(TRAFFIC_KEYS):
            raise wire.WireError("malformed traffic counters")
        local += int(p["local"])
        for i in range(k):
            count[i] += int(p["count"][i])
            dsum[i] += p["dsum"][i]
            dmin[i] = min(dmin[i], p["dmin"][i])
            dmax[i] = max(dmax[i], p["dmax"][i])
    traffic.count, traffic.local, traffic.dsum = count, local, dsum
    traffic.dmin, traffic.dmax = dmin, dmax
