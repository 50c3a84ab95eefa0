"""The scalar record scanner: plain msgpack records into int64 columns.

:func:`scan_records` walks an event log's bytes one record at a time and
takes them as long as they are plain and pass every check of
``EventLog.raw`` (see :mod:`asyncnet.logcols`, which compiles it with numba).
It is plain Python on numpy arrays, so the same code also runs interpreted:
:mod:`asyncnet.logvec` hands it the one record at a time its vectorised
pass does not take, so both give the very same verdict.
"""

from __future__ import annotations

import numpy as np

MAX_EXT = 1 << 20
"""Larger extensions are left to msgpack (its own limit is 64 MB): rare, checked there."""
MAX_ARRAY = 1 << 16
"""Likewise for tuple payloads (msgpack and ``_payload_ok`` allow 10⁶ numbers)."""

# why the kernel stopped
FULL, END, ODD = 0, 1, 2
"""The block is full; the buffer ended (maybe inside a record); an item it does not take."""


def scan_records(buf: np.ndarray, pos: int, na: int, prev: np.ndarray, cols: np.ndarray,
                  pay: np.ndarray, by_kind: np.ndarray) -> tuple[int, int, int]:
    """Take plain, valid records from ``buf[pos:]`` into ``cols`` (compiled with numba).

    Parameters
    ----------
    buf:
        the bytes (uint8).
    pos:
        where the first record starts.
    na:
        the number of agents (indices must be below it).
    prev:
        int64[6]: the last record's key ``(t, dst, kind, src, seq)`` and, in
        ``prev[5]``, 1 if there is one; updated.
    cols:
        int64[6, cap]: filled with ``t_arrive, kind, src, dst, t_sent, seq``.
    pay:
        int64[2, cap]: each record's payload start and end in ``buf``.
    by_kind:
        int64[3]: records taken per kind, added to.

    Returns
    -------
    ``(records taken, position after the last one, why it stopped)``.
    """
    end = len(buf)
    cap = cols.shape[1]
    val = np.zeros(6, dtype=np.int64)
    key = np.zeros(5, dtype=np.int64)
    n = 0
    while True:
        if n == cap:
            return n, pos, FULL
        if pos >= end:
            return n, pos, END
        if buf[pos] != 0x97:  # not a fixarray of 7: a checkpoint, the footer, or odd
            return n, pos, ODD
        p = pos + 1
        for f in range(6):  # six non-negative integers that fit in int64
            if p >= end:
                return n, pos, END
            c = int(buf[p])
            if c < 0x80:
                val[f] = c
                p += 1
                continue
            if c < 0xcc or c > 0xd3:  # a negative fixint, bool, float, str, ...
                return n, pos, ODD
            size = 1 << (c & 3)  # uint8/16/32/64, int8/16/32/64
            if p + 1 + size > end:
                return n, pos, END
            if c >= 0xcf and buf[p + 1] >= 0x80:  # negative, or above int64
                return n, pos, ODD
            v = 0
            for j in range(p + 1, p + 1 + size):
                v = (v << 8) | np.int64(buf[j])
            val[f] = v
            p += 1 + size
        # the payload: anything the lazy reader accepts, else leave it to msgpack
        if p >= end:
            return n, pos, END
        c = int(buf[p])
        q = p
        if c < 0x80 or c >= 0xe0 or c == 0xc0:  # fixints, nil
            q = p + 1
        elif c == 0xca or c == 0xcb:  # float32, float64
            q = p + (5 if c == 0xca else 9)
        elif 0xcc <= c <= 0xd3:  # any integer
            q = p + 1 + (1 << (c & 3))
        elif 0xd4 <= c <= 0xd8 or 0xc7 <= c <= 0xc9:  # an extension (ext -1: a timestamp)
            if c >= 0xd4:  # fixext: [c, type, data]; ext8/16/32: [c, length, type, data]
                h, ln = 0, 1 << (c - 0xd4)
            else:
                h = 1 << (c - 0xc7)
                if p + 1 + h > end:
                    return n, pos, END
                ln = 0
                for j in range(p + 1, p + 1 + h):
                    ln = (ln << 8) | np.int64(buf[j])
                if ln > MAX_EXT:
                    return n, pos, ODD
            if p + 1 + h >= end:
                return n, pos, END
            if buf[p + 1 + h] == 0xff:
                return n, pos, ODD
            q = p + 2 + h + ln
        elif 0x90 <= c <= 0x9f or c == 0xdc or c == 0xdd:  # a tuple: an array of numbers
            if c <= 0x9f:
                cnt, q = c - 0x90, p + 1
            else:
                h = 2 if c == 0xdc else 4
                if p + 1 + h > end:
                    return n, pos, END
                cnt = 0
                for j in range(p + 1, p + 1 + h):
                    cnt = (cnt << 8) | np.int64(buf[j])
                if cnt > MAX_ARRAY:
                    return n, pos, ODD
                q = p + 1 + h
            for _ in range(cnt):
                if q >= end:
                    return n, pos, END
                e = int(buf[q])
                if e < 0x80 or e >= 0xe0:
                    q += 1
                elif e == 0xca or e == 0xcb:
                    q += 5 if e == 0xca else 9
                elif 0xcc <= e <= 0xd3:
                    q += 1 + (1 << (e & 3))
                else:
                    return n, pos, ODD
        else:
            return n, pos, ODD
        if q > end:
            return n, pos, END
        t, k, s, d, ts, sq = val[0], val[1], val[2], val[3], val[4], val[5]
        if k > 2 or s >= na or d >= na or ts >= t:  # EventLog.raw's range checks
            return n, pos, ODD
        key[0], key[1], key[2], key[3], key[4] = t, d, k, s, sq
        if prev[5]:  # canonical order: the key never decreases
            for j in range(5):
                if key[j] != prev[j]:
                    if key[j] < prev[j]:
                        return n, pos, ODD
                    break
        for j in range(5):
            prev[j] = key[j]
        prev[5] = 1
        for f in range(6):
            cols[f, n] = val[f]
        pay[0, n] = p
        pay[1, n] = q
        by_kind[k] += 1
        n += 1
        pos = q
