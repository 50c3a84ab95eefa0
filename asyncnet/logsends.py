"""The records of an instant's sends, packed by one compiled loop (optional: numba).

:func:`pack_sends` does what :func:`asyncnet.capture.expand` and
:func:`asyncnet.logpack.pack_rows` do with a dozen numpy calls — expand
each send to its receivers, sort the messages canonically, write each
record's msgpack bytes — in one pass: at ~1,000 records an instant,
numpy's fixed costs were most of the log's cost
(``tools/bench_engine.py --figures log``). The bytes are the same
(``tests/test_log_sends.py`` compares both on generated instants).

It is plain Python on numpy arrays; :func:`kernel` compiles it once a log
is large enough to pay for loading numba (:data:`MIN_RECORDS`), and
without numba (or with ``ASYNCNET_NO_NUMBA=1``) the numpy path runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from .numbajit import compiled

MIN_RECORDS = 1_300_000
"""A log loads the kernel once it is on course for this many records by the
run's end (:func:`projected`), or has them (or at once where the process has
imported numba already): importing numba and reading the kernel from its
cache costs ~0.3–0.5 CPU-s, the kernel saves ~0.3 µs a record
(``tools/bench_engine.py --figures log``), so it pays back after ~1.3 M. A
cluster worker counts its own records: on the L net, 16 time units on two
workers (0.69 M records each) took 6.72 CPU-s in all without it and 7.11
with it loaded at start."""
COMPILED = True
"""Use the kernel where numba is (tests flip this to cover both paths)."""
_kernel: Any = None


def pack_sends(table, flat, start, length, ta, agents, head, pay):  # noqa: ANN001, ANN201
    """Records ``[ta, kind, src, dst, t_sent, seq, payload]`` of the sends, canonical order.

    Parameters
    ----------
    table:
        int64 ``(g, 5)``: each send's sender, t_sent, seq before it, kind,
        receivers' key (negative: the one receiver ``-key - 1``).
    flat, start, length:
        the receiver table (:meth:`asyncnet.wiring.ReceiverTable.arrays`).
    ta:
        the arrival instant.
    agents:
        the number of agents.
    head:
        uint8: every payload's packed header (the same for all).
    pay:
        uint8 ``(g, b)``: each send's payload bytes after the header.

    Returns
    -------
    ``(data, counts by kind, dst, kind, ends)``: the records back to back
    (uint8), counts int64[3], and each record's receiver, kind and where it
    ends in ``data`` (int64).
    """
    g = table.shape[0]
    # the messages in the sends' order, then sorted by receiver (stable): a
    # counting sort where they are many for the agents, a merge sort where few
    # (a counting sort walks every agent); then each receiver's messages by
    # (kind, src, seq) where they are not in that order already (they mostly
    # are: agents wake in index order)
    cap = 0
    for i in range(g):  # messages, at most (a receiver elsewhere is none here)
        key = table[i, 4]
        cap += 1 if key < 0 else length[key]
    send0 = np.empty(cap, dtype=np.int64)
    seq0 = np.empty(cap, dtype=np.int64)
    dst0 = np.empty(cap, dtype=np.int64)
    m = 0
    for i in range(g):
        key = table[i, 4]
        q0 = table[i, 2] + 1
        if key < 0:  # one receiver named outright: a message injected, not sent here
            send0[m] = i
            seq0[m] = q0
            dst0[m] = -key - 1
            m += 1
            continue
        b = start[key]
        for j in range(length[key]):
            d = flat[b + j]
            if d >= 0:  # not another partition's
                send0[m] = i
                seq0[m] = q0 + j
                dst0[m] = d
                m += 1
    send = np.empty(m, dtype=np.int64)
    seq = np.empty(m, dtype=np.int64)
    dst = np.empty(m, dtype=np.int64)
    if 4 * m < agents:
        by_dst = np.argsort(dst0[:m], kind="mergesort")
        for r in range(m):
            x = by_dst[r]
            send[r] = send0[x]
            seq[r] = seq0[x]
            dst[r] = dst0[x]
    else:
        ends = np.zeros(agents + 1, dtype=np.int64)
        for r in range(m):
            ends[dst0[r] + 1] += 1
        for d in range(agents):
            ends[d + 1] += ends[d]
        for r in range(m):
            d = dst0[r]
            x = ends[d]
            send[x] = send0[r]
            seq[x] = seq0[r]
            dst[x] = d
            ends[d] = x + 1
    # each send's place in canonical order among one receiver's: (kind, src)
    skey = np.empty(g, dtype=np.int64)
    for i in range(g):
        skey[i] = table[i, 3] * agents + table[i, 0]
    order = np.arange(m)
    lo = 0
    while lo < m:
        hi = lo + 1
        inorder = True
        while hi < m and dst[hi] == dst[lo]:
            k0 = skey[send[hi - 1]]
            k1 = skey[send[hi]]
            if k1 < k0 or (k1 == k0 and seq[hi] < seq[hi - 1]):
                inorder = False
            hi += 1
        if not inorder:  # by seq, then stably by (kind, src)
            by_seq = np.argsort(seq[lo:hi], kind="mergesort") + lo
            keys = np.empty(hi - lo, dtype=np.int64)
            for r in range(hi - lo):
                keys[r] = skey[send[by_seq[r]]]
            order[lo:hi] = by_seq[np.argsort(keys, kind="mergesort")]
        lo = hi
    nh = head.shape[0]
    npay = pay.shape[1]
    out = np.empty(m * (55 + nh + npay), dtype=np.uint8)
    counts = np.zeros(3, dtype=np.int64)
    rec_dst = np.empty(m, dtype=np.int64)
    rec_kind = np.empty(m, dtype=np.int64)
    rec_end = np.empty(m, dtype=np.int64)
    vals = np.empty(6, dtype=np.int64)
    p = 0
    for x in range(m):
        r = order[x]
        i = send[r]
        k = table[i, 3]
        counts[k] += 1
        out[p] = 0x97  # fixarray of 7
        p += 1
        vals[0] = ta
        vals[1] = k
        vals[2] = table[i, 0]
        vals[3] = dst[r]
        vals[4] = table[i, 1]
        vals[5] = seq[r]
        # msgpack's smallest encoding of each (all in [0, 2**63)), its bytes
        # written out: a loop over them cost a third more instructions a record
        for f in range(6):
            v = vals[f]
            if v < 128:
                out[p] = v
                p += 1
            elif v < 256:
                out[p] = 0xCC
                out[p + 1] = v
                p += 2
            elif v < 65536:
                out[p] = 0xCD
                out[p + 1] = v >> 8
                out[p + 2] = v & 0xFF
                p += 3
            elif v < 4294967296:
                out[p] = 0xCE
                out[p + 1] = v >> 24
                out[p + 2] = (v >> 16) & 0xFF
                out[p + 3] = (v >> 8) & 0xFF
                out[p + 4] = v & 0xFF
                p += 5
            else:
                out[p] = 0xCF
                for j in range(8):
                    out[p + 8 - j] = (v >> (8 * j)) & 0xFF
                p += 9
        o = out[p:p + nh + npay]  # a view: its indices cost less than out's p + j
        for j in range(nh):
            o[j] = head[j]
        row = pay[i]
        for j in range(npay):
            o[nh + j] = row[j]
        p += nh + npay
        rec_dst[x] = dst[r]
        rec_kind[x] = k
        rec_end[x] = p
    return out[:p], counts, rec_dst, rec_kind, rec_end


def projected(records: int, t: int, end: int | None) -> int:
    """How many records a log will have by the run's end, at the pace so far.

    Parameters
    ----------
    records:
        the records so far, up to instant ``t``.
    t:
        the instant reached (quanta).
    end:
        the run's last instant (quanta), or ``None`` if not known.

    Returns
    -------
    ``records`` scaled by ``end / t`` (never less than ``records``; ``records``
    itself where ``t`` or ``end`` says nothing).
    """
    if end is None or t <= 0 or end <= t:
        return records
    return records * end // t


def kernel(records: int) -> Callable[..., Any] | None:
    """The compiled :func:`pack_sends`, or ``None`` (no numba, turned off, or not worth it).

    Parameters
    ----------
    records:
        how many records the log has, or will have by the run's end
        (:func:`projected`): under :data:`MIN_RECORDS`, ``None`` unless the
        kernel or numba is loaded already.

    Returns
    -------
    The kernel, or ``None``.
    """
    global _kernel
    if not COMPILED or os.environ.get("ASYNCNET_NO_NUMBA"):
        return None
    if _kernel is None and records < MIN_RECORDS and "numba" not in sys.modules:
        return None
    if _kernel is None:  # False: no numba here
        _kernel = compiled(pack_sends, nogil=True, boundscheck=False) or False
    return _kernel or None


def warm(kern: Callable[..., Any] | None) -> None:
    """Run ``kern`` (:func:`kernel`'s) once on a tiny instant: numba compiles it, or
    reads it from its cache, now rather than at a run's first instant."""
    if kern is None:
        return
    one = np.zeros(1, dtype=np.int64)
    # an array's payloads arrive read-only (joined bytes), floats' writable: both
    for head, pay in ((np.frombuffer(bytes(1), dtype=np.uint8),
                       np.frombuffer(bytes(8), dtype=np.uint8).reshape(1, 8)),
                      (np.zeros(1, dtype=np.uint8), np.zeros((1, 8), dtype=np.uint8))):
        kern(np.zeros((1, 5), dtype=np.int64), one, one, np.ones(1, dtype=np.int64), 0, 1,
             head, pay)
