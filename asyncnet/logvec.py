"""The record scanner with numpy alone: every record of a piece at once.

Same contract as :func:`asyncnet.logkernel.scan_records` (same arguments,
same columns, same return), without numba. Loading numba costs ~0.7 CPU-s,
more than it saves on a log under a few tens of MB; unpacking each record
into Python lists costs ~1 µs a record. Here a piece is parsed with array
operations:

1. every byte ``0x97`` (a fixarray of seven) is a candidate record start;
2. for every candidate at once, the six integer fields and the payload are
   sized from their type bytes, their values read big-endian, and the
   record's end and its plainness (integers that fit in int64, a payload
   the lazy reader takes, the range checks) computed;
3. the records really there are the chain of ends from the first one
   (a Python walk over a list, ~50 ns a record); canonical order is
   checked on the chain with numpy.

Bytes inside a payload or an integer that happen to be ``0x97`` are
candidates too, but the chain never lands on them. A record this pass does
not take (a tuple of more than :data:`MAX_TUPLE` numbers, anything odd, one
cut by the buffer's end) goes
to the scalar scanner, interpreted, for that one record: it takes it or
stops and says why, so every verdict is the scalar scanner's own.
"""

from __future__ import annotations

import numpy as np

from .logkernel import END, FULL, MAX_EXT, ODD, scan_records

MAX_TUPLE = 64
"""Longest tuple payload parsed here (longer ones: the scalar scanner)."""
_PAD = 1024
"""Zero bytes after the data: a candidate's reads run at most ~640 bytes past its start
(six integers of nine bytes, then a tuple of MAX_TUPLE numbers of nine)."""
_SHIFT = np.arange(1, 9, dtype=np.uint64) * np.uint64(8)
_SPAN = 64
"""Candidates the first chain after a hand-off looks at (see ``_chain``)."""


def _be(win: np.ndarray, at: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Big-endian unsigned integers of ``size`` (1–8) bytes at ``at`` (uint64)."""
    raw = win[at].view(">u8")[:, 0]
    return raw >> (np.uint64(64) - _SHIFT[size - 1])


def _parse(b: np.ndarray, starts: np.ndarray, n_data: int, na: int) -> tuple[np.ndarray, ...]:
    """Fields, payload start, end and plainness of a record at each of ``starts``.

    Returns
    -------
    ``(values int64[6, m], payload starts, ends, ok)``; ``ok`` is True
    where the record is plain, within ``n_data`` and passes the range checks.
    """
    win = np.lib.stride_tricks.sliding_window_view(b, 8)
    p = starts + 1
    ok = np.ones(len(starts), dtype=bool)
    vals = np.empty((6, len(starts)), dtype=np.int64)
    for f in range(6):
        tb = b[p]
        fix = tb < 0x80
        isint = (tb >= 0xCC) & (tb <= 0xD3)
        size = np.where(isint, 1 << (tb & 3), 0).astype(np.int64)
        v = _be(win, p + 1, np.maximum(size, 1))
        # uint64 or a signed integer with its top bit set: above int64, or negative
        ok &= (fix | isint) & ~((tb >= 0xCF) & (b[p + 1] >= 0x80))
        vals[f] = np.where(fix, tb, v.view(np.int64))
        p = p + 1 + size
    pay = p
    tb = b[p].astype(np.int64)
    q = np.full(len(starts), -1, dtype=np.int64)  # -1: not a payload taken here
    small = (tb < 0x80) | (tb >= 0xE0) | (tb == 0xC0)
    q[small] = p[small] + 1
    q = np.where(tb == 0xCA, p + 5, np.where(tb == 0xCB, p + 9, q))
    isint = (tb >= 0xCC) & (tb <= 0xD3)
    q = np.where(isint, p + 1 + (1 << (tb & 3)), q)
    fixext = (tb >= 0xD4) & (tb <= 0xD8)
    q = np.where(fixext & (b[p + 1] != 0xFF), p + 2 + (1 << (tb - 0xD4).clip(0, 4)), q)
    ext = (tb >= 0xC7) & (tb <= 0xC9)
    if ext.any():  # ext 8/16/32: [c, length, type, data]
        h = (1 << (tb - 0xC7).clip(0, 2)).astype(np.int64)
        ln = _be(win, p + 1, h).astype(np.int64)  # at most 2³² - 1
        q = np.where(ext & (ln <= MAX_EXT) & (b[np.minimum(p + 1 + h, len(b) - 1)] != 0xFF),
                     p + 2 + h + ln, q)
    a16 = tb == 0xDC
    tup = np.flatnonzero(((tb >= 0x90) & (tb <= 0x9F)) | a16)
    if len(tup):  # a tuple payload: an array of numbers (more than MAX_TUPLE: the scalar way)
        long = a16[tup]
        count = np.where(long, _be(win, p[tup] + 1, np.full(len(tup), 2)).astype(np.int64),
                         tb[tup] - 0x90)
        at = p[tup] + np.where(long, 3, 1)
        good = count <= MAX_TUPLE
        for j in range(int(count[good].max(initial=0))):
            e = b[at].astype(np.int64)
            width = np.where((e < 0x80) | (e >= 0xE0), 1, np.where(
                e == 0xCA, 5, np.where(e == 0xCB, 9, np.where(
                    (e >= 0xCC) & (e <= 0xD3), 1 + (1 << (e & 3)), 0))))
            live = j < count
            good &= ~live | (width > 0)
            at = np.where(live & good, at + width, at)
        q[tup] = np.where(good, at, -1)
    ok &= (q > 0) & (q <= n_data)
    t, k, s, d, ts = vals[0], vals[1], vals[2], vals[3], vals[4]
    ok &= (k <= 2) & (s < na) & (d < na) & (ts < t)  # EventLog.raw's range checks
    return vals, pay, q, ok


def scan_vector(buf: np.ndarray, pos: int, na: int, prev: np.ndarray, cols: np.ndarray,
                pay: np.ndarray, by_kind: np.ndarray) -> tuple[int, int, int]:
    """Take plain, valid records from ``buf[pos:]`` (see :func:`~asyncnet.logkernel.scan_records`).

    Parameters
    ----------
    buf, pos, na, prev, cols, pay, by_kind:
        as for :func:`~asyncnet.logkernel.scan_records`.

    Returns
    -------
    ``(records taken, position after the last one, why it stopped)``.
    """
    end = len(buf)
    cap = cols.shape[1]
    b = np.zeros(end - pos + _PAD, dtype=np.uint8)
    b[:end - pos] = buf[pos:]
    n_data = end - pos
    starts = np.flatnonzero(b[:n_data] == 0x97)
    vals, pstart, q, ok = _parse(b, starts, n_data, na)
    # each candidate's successor: the candidate where its record ends, if taken (-1 if not)
    at = np.minimum(np.searchsorted(starts, q), max(len(starts) - 1, 0))
    succ = np.where(ok & (starts[at] == q) & ok[at], at, -1) if len(starts) else at
    first = dict(zip(starts.tolist(), range(len(starts)), strict=True))
    n = 0
    rel = 0  # pos - the original pos
    # candidates looked at for the next chain: all at first; after a record handed
    # to the scalar scanner a few, doubled while chains run to the window's end
    span = len(starts)
    while n < cap:
        if rel >= n_data:
            return n, pos + rel, END
        i = first.get(rel, -1)
        if i >= 0 and ok[i]:
            chain, whole = _chain(succ, i, cap - n, span)
            span = span if whole else 2 * span
            m = _in_order(vals, chain, prev)
            if m:
                c = chain[:m]
                cols[:, n:n + m] = vals[:, c]
                pay[0, n:n + m] = pstart[c] + pos
                pay[1, n:n + m] = q[c] + pos
                by_kind += np.bincount(vals[1, c], minlength=3)
                last = c[-1]
                prev[:5] = vals[[0, 3, 1, 2, 5], last]
                prev[5] = 1
                n += m
                rel = int(q[last])
                continue
        if buf[pos + rel] != 0x97:  # not a record: a checkpoint, the footer, or odd
            return n, pos + rel, ODD
        # one record the pass above did not take: the scalar scanner's verdict
        took, new, why = scan_records(buf, pos + rel, na, prev, cols[:, n:n + 1],
                                      pay[:, n:n + 1], by_kind)
        if not took:
            return n, pos + rel, why
        n += 1
        rel = new - pos
        span = _SPAN
    return n, pos + rel, FULL


def _chain(succ: np.ndarray, i: int, room: int, span: int) -> tuple[np.ndarray, bool]:
    """The candidates reached from ``i`` by successors, in order, within ``span``
    candidates from ``i`` (and at most ``room``); whether the chain ended there.

    A candidate is kept while it is ``i`` or the successor of one kept: a
    few passes drop every run of candidates no record ends at (one pass per
    candidate in the longest such run, nearly always one or two). Each kept
    one then has a kept predecessor, back to ``i``, and successors are a
    function, so the kept ones are exactly the chain from ``i``. The span
    bounds the work after a record the scan could not take: the caller
    widens it while chains run to its end.
    """
    stop = min(len(succ), i + span)
    nxt = succ[i:stop] - i  # successors within the window (outside: dropped)
    nxt[(nxt < 0) | (nxt >= stop - i)] = stop - i
    alive = np.ones(stop - i, dtype=bool)
    for _ in range(16):
        pred = np.zeros(stop - i + 1, dtype=bool)  # the last slot: "no successor here"
        pred[nxt[alive]] = True
        pred[0] = True
        kept = alive & pred[:-1]
        if (kept == alive).all():
            chain = np.flatnonzero(alive)[:room] + i
            # the last one's successor is none, or lies past the window (then widen it)
            return chain, len(chain) == room or succ[chain[-1]] < stop
        alive = kept
    chain = [i]  # an unusually long run of false starts: walk it
    while len(chain) < room and succ[chain[-1]] >= 0:
        chain.append(int(succ[chain[-1]]))
    return np.array(chain), True


def _in_order(vals: np.ndarray, chain: np.ndarray, prev: np.ndarray) -> int:
    """How many records of ``chain`` keep the canonical order (from ``prev`` on)."""
    keys = [vals[f, chain] for f in (0, 3, 1, 2, 5)]  # (t, dst, kind, src, seq)
    if prev[5]:
        keys = [np.concatenate((prev[j:j + 1], c)) for j, c in enumerate(keys)]
    else:
        keys = [np.concatenate((c[:1], c)) for c in keys]
    ok = np.zeros(len(chain), dtype=bool)
    eq = np.ones(len(chain), dtype=bool)
    for c in keys:
        step = np.diff(c)
        ok |= eq & (step > 0)
        eq &= step == 0
    bad = np.flatnonzero(~(ok | eq))
    return int(bad[0]) if len(bad) else len(chain)
