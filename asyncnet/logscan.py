"""The fast way through an event log: records a piece at a time, bytes hashed in bulk.

:meth:`asyncnet.logfile.EventLog.chunks` (and ``records``, ``messages``,
``scan``) run here. Every record gets the checks of ``EventLog.raw`` (seven
fields, integer times and indices in range, canonical order, a numeric
payload) and every checkpoint and the footer the digest check, but the
digest is fed whole pieces of the file rather than one record's bytes at a
time, and no record's bytes are copied. With ``lazy`` an array payload is left
encoded (framed by msgpack and covered by the digest; its shape and length
are checked when :func:`payload_value` decodes it): ``stats`` looks at few
payloads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain
from typing import Any

import msgpack
import numpy as np

from . import logformat as fmt
from .gcpause import collector_paused
from .logformat import MAX_ITEM, LogError, _new_hash
from .messages import decode_ext


def unpacker(ext_hook: Callable[[int, bytes], Any] = decode_ext) -> msgpack.Unpacker:
    """The log's msgpack reader: no code runs, every size is bounded.

    Parameters
    ----------
    ext_hook:
        what an extension (an array payload) becomes.

    Returns
    -------
    A streaming ``msgpack.Unpacker``.
    """
    return msgpack.Unpacker(
        raw=False, ext_hook=ext_hook, max_buffer_size=MAX_ITEM + fmt.CHUNK,
        max_str_len=MAX_ITEM, max_bin_len=MAX_ITEM, max_array_len=1_000_000,
        max_map_len=10_000, max_ext_len=MAX_ITEM, strict_map_key=True, use_list=True)


def payload_value(p: Any) -> Any:
    """A payload as :func:`~asyncnet.messages.decode_ext` gives it (decodes a lazy one).

    Parameters
    ----------
    p:
        a record's payload, as read with ``lazy``.

    Returns
    -------
    The number, list or array.

    Raises
    ------
    LogError
        a malformed array.
    """
    if type(p) is not slice:
        return p
    try:
        return decode_ext(p.start, p.stop)
    except ValueError as e:
        raise LogError(f"a malformed array payload ({e})") from None


def _payload_ok(p: Any) -> bool:
    if p is None or type(p) in (int, float, np.ndarray):
        return True
    if type(p) is list:  # a tuple payload travels as an array of numbers
        return len(p) <= 1_000_000 and all(type(x) in (int, float) for x in p)
    return False


class _Scan:
    """One pass over a log: the digest, the counters and the canonical-order key."""

    def __init__(self, log: Any, lazy: bool):
        log.count = log.verified_count = 0
        log.footer, log.checkpoints, log.altered, log.truncated = None, [], None, False
        log._done = False
        self.log = log
        self.lazy = lazy
        # lazy: an extension stays ``slice(code, bytes)`` (made in C, no Python
        # call): framed and covered by the digest, decoded and checked when used
        self.hook: Callable[[int, bytes], Any] = slice if lazy else decode_ext
        self.ok_payloads = ({slice, float, int, type(None)} if lazy
                            else {np.ndarray, float, int, type(None)})
        self.h = _new_hash()
        self.n_agents = len(log.agents)
        self.by_kind = [0, 0, 0]
        self.n = 0
        self.prev: tuple | None = None
        self.seen = 0  # items read, the header included

    def fast(self, items: list) -> tuple[list, ...] | None:
        """Check a piece of records at numpy speed; ``None`` if anything is unusual.

        Unusual (a checkpoint, a malformed record, a huge integer) sends the
        piece to :meth:`slow`, which reads it item by item and raises where
        ``EventLog.raw`` would.

        Returns
        -------
        The columns ``(t_arrive, kind, src, dst, t_sent)`` (int64 arrays),
        ``seq`` and ``payload`` (tuples), or ``None``.
        """
        if not items or self.seen == 0 or self.log.footer is not None \
                or set(map(type, items)) != {list} or set(map(len, items)) != {7}:
            return None
        cols = list(zip(*items, strict=True))
        if set(map(type, chain.from_iterable(cols[:6]))) != {int} \
                or not set(map(type, cols[6])) <= self.ok_payloads:
            return None
        try:
            t, k, s, d, ts, q = np.array(cols[:6], dtype=np.int64)
            last = None if self.prev is None else np.array(self.prev, dtype=np.int64)
        except OverflowError:
            return None
        na = self.n_agents
        if (k.min() < 0 or k.max() > 2 or s.min() < 0 or s.max() >= na or d.min() < 0
                or d.max() >= na or ts.min() < 0 or (ts >= t).any() or q.min() < 0):
            return None
        # canonical order: (t, dst, kind, src, seq) never decreases, from the last key on
        keys = (t, d, k, s, q)
        if last is not None:
            keys = tuple(np.concatenate((last[i:i + 1], c)) for i, c in enumerate(keys))
        ok = np.zeros(len(keys[0]) - 1, dtype=bool)
        eq = np.ones(len(keys[0]) - 1, dtype=bool)
        for c in keys:
            step = np.diff(c)
            ok |= eq & (step > 0)
            eq &= step == 0
        if not (ok | eq).all():
            return None
        self.prev = tuple(int(c[-1]) for c in (t, d, k, s, q))
        self.n += len(items)
        for kind, c in enumerate(np.bincount(k, minlength=3)):
            self.by_kind[kind] += int(c)
        return t, k, s, d, ts, cols[5], cols[6]

    def slow(self, data: bytes, pos: int, out: list[list]) -> int:
        """Read ``data`` (items starting at file offset ``pos``) item by item.

        Records go to ``out``; checkpoints and the footer are checked against
        the digest; the digest is fed every whole item. Raises
        :class:`LogError` at the first thing ``EventLog.raw`` would refuse.

        Returns
        -------
        The file offset after the last whole item.
        """
        log, fail, h = self.log, self.log._fail, self.h
        up = unpacker(self.hook)
        up.feed(data)
        na, by_kind = self.n_agents, self.by_kind
        start = pos
        hashed = pos
        try:
            for obj in up:
                end = start + up.tell()
                self.seen += 1
                if self.seen == 1:  # the header (checked when the log was opened)
                    pos = end
                    continue
                if log.footer is not None:
                    raise fail(f"unexpected item after the footer at byte {pos}")
                n = self.n
                if type(obj) is list:
                    if len(obj) != 7:
                        raise fail(f"record {n} at byte {pos} is malformed "
                                   f"({len(obj)} fields, not 7)")
                    t, kind, s, d, ts, seq, payload = obj
                    if not (type(t) is type(kind) is type(s) is type(d) is type(ts)
                            is type(seq) is int):
                        raise fail(f"record {n} at byte {pos} is malformed (a time, "
                                   f"kind, index or seq is not an integer)")
                    if not (0 <= kind <= 2 and 0 <= s < na and 0 <= d < na):
                        raise fail(f"record {n} at byte {pos}: kind or agent index out "
                                   f"of range ({na} agents)")
                    if not 0 <= ts < t or seq < 0:
                        raise fail(f"record {n} at byte {pos}: impossible times "
                                   f"(sent {ts}, arrives {t}) or seq {seq}")
                    if type(payload) is not slice and not _payload_ok(payload):
                        raise fail(f"record {n} at byte {pos}: payload of type "
                                   f"{type(payload).__name__} is not a number or array")
                    key = (t, d, kind, s, seq)
                    if self.prev is not None and key < self.prev:
                        raise fail(f"record {n} at byte {pos} is out of canonical order")
                    self.prev = key
                    self.n = n + 1
                    log.count = n + 1
                    by_kind[kind] += 1
                    out.append(obj)
                elif isinstance(obj, dict) and ("checkpoint" in obj
                                                or obj.get("footer") is True):
                    h.update(data[hashed - start:pos - start])
                    b = data[pos - start:end - start]
                    self._sealed(obj, b, pos)
                    h.update(b)
                    hashed = end
                else:
                    raise fail(f"unexpected item at byte {pos} (after {n} records)")
                pos = end
        except LogError:
            raise
        except Exception as e:  # msgpack raises several types: all mean corrupt
            raise fail(f"corrupt at byte {pos}, after {self.n} records "
                       f"({type(e).__name__}: {e})") from None
        h.update(data[hashed - start:pos - start])
        return pos

    def seal(self, obj: dict, b: bytes, pos: int) -> None:
        """Check a checkpoint or the footer (bytes ``b`` at ``pos``), then hash it."""
        self.seen += 1
        self._sealed(obj, b, pos)
        self.h.update(b)

    def _sealed(self, obj: dict, b: bytes, pos: int) -> None:
        log, n = self.log, self.n
        log.count = n
        if "checkpoint" in obj:
            log._check_sealed(obj, b, self.h, pos, {"checkpoint", "t", "digest"})
            if obj["checkpoint"] != n or (self.prev is not None
                                          and obj["t"] != self.prev[0]):
                log._altered(f"the checkpoint at byte {pos} does not match the {n} "
                             f"records before it (the log was altered)")
            if log.altered is None:
                log.verified_count = n
            if obj["checkpoint"] or log.checkpoints or n:  # not the header's seal
                log.checkpoints.append(obj)
        else:
            log._check_sealed(obj, b, self.h, pos, None)
            if obj.get("count") != n or obj.get("by_kind") != self.by_kind:
                log._altered(f"the footer's counts do not match the {n} records (the "
                             f"log was altered)")
            if log.altered is None:
                log.verified_count = n
            log.footer = obj


PIECE = 1 << 17
"""Bytes read at a time: a piece's records are checked together (memory: a few MB)."""
_HOLD = 1 << 19
"""Bytes of whole records kept before their end is located and they are hashed."""


def read_blocks(log: Any, lazy: bool) -> Iterator[tuple[list, tuple | None]]:
    """The records of ``log``, checked, a block per piece of the file read.

    A piece of plain records is unpacked in one call and checked with numpy
    (``_Scan.fast``); where its items end in the file is found (and those
    bytes hashed) only when needed — before a checkpoint or the footer, or
    every ``_HOLD`` bytes — by skipping the same number of items in C. A
    piece with anything else is read item by item (``_Scan.slow``).

    Parameters
    ----------
    log:
        the opened log (its counters and end attributes are set as it is read).
    lazy:
        leave array payloads encoded.

    Returns
    -------
    An iterator of ``(records, columns)``: the records as lists, and, for
    a piece checked at numpy speed, its columns (see ``_Scan.fast``), else
    ``None``.
    """
    sc = _Scan(log, lazy)
    up = unpacker(sc.hook)
    buf = bytearray()
    base = 0    # file offset of buf[0]: where the last located item ended
    held = 0    # items after ``base`` already checked (fast pieces), not yet located

    def locate() -> None:
        """Find where the ``held`` items end; hash them; let their bytes go."""
        nonlocal base, held
        if held:
            u = unpacker(slice)  # only their ends are wanted: skipped, nothing built
            u.feed(buf)
            skip = u.skip
            for _ in range(held):
                skip()
            end = u.tell()
            sc.h.update(memoryview(buf)[:end])
            del buf[:end]
            base += end
            held = 0

    with open(log.path, "rb") as f:
        while True:
            chunk = f.read(PIECE)
            if chunk:
                up.feed(chunk)
                buf += chunk
            try:
                with collector_paused():  # thousands of small acyclic lists at once
                    items: list | None = list(up)
            except Exception:  # corrupt: the slow path finds where, and says so
                items = None
            # runs of records at numpy speed, checkpoints between them located
            # and checked; anything else (or a run that fails) item by item
            rest = 0 if items is None or sc.seen == 0 or log.footer is not None \
                else len(items)
            i = 0
            while i < rest:
                j = i
                while j < rest and type(items[j]) is list:
                    j += 1
                run = items[i:j] if j > i else []
                if run:
                    with collector_paused():
                        cols = sc.fast(run)
                    if cols is None:
                        break
                    held += len(run)
                    log.count = sc.n
                    yield run, cols
                i = j
                if i < rest:
                    obj = items[i]
                    if not (type(obj) is dict and ("checkpoint" in obj
                                                   or obj.get("footer") is True)):
                        break
                    locate()
                    u = unpacker(slice)
                    u.feed(buf)
                    next(u)
                    end = u.tell()
                    sc.seal(obj, bytes(buf[:end]), base)
                    del buf[:end]
                    base += end
                    i += 1
            else:
                if items is not None and rest == len(items):
                    if len(buf) > _HOLD:
                        locate()
                    if not chunk:
                        break
                    continue
            # item by item from the first item not yet taken
            locate()
            out: list[list] = []
            try:
                end = sc.slow(bytes(buf), base, out)
                if items is None:  # the stream refused what one item at a time did not
                    raise log._fail(f"corrupt at byte {end}, after {sc.n} records")
            except LogError:
                if out:
                    yield out, None
                raise
            del buf[:end - base]
            base = end
            if out:
                yield out, None
            if not chunk:
                break
    locate()
    log.tail_bytes = len(buf)
    log._finish(sc.seen > 0, sc.n)


def read_chunks(log: Any, lazy: bool) -> Iterator[list[list]]:
    """The records of ``log``, checked, a list per piece read (see ``EventLog.chunks``).

    Parameters
    ----------
    log:
        the opened log.
    lazy:
        leave array payloads encoded.

    Returns
    -------
    An iterator of lists of records.
    """
    for items, _ in read_blocks(log, lazy):
        yield items
