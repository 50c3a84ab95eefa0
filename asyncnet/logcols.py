"""An event log's records as int64 columns, scanned by a compiled kernel (numba).

``asyncnet stats`` needs six integers of every record and the payload of a
few. Unpacking every record into Python lists and checking them with numpy
(:func:`asyncnet.logscan.read_blocks`) costs ~1 µs a record; walking the
msgpack bytes in a compiled loop that writes the columns directly costs a
few tens of nanoseconds.

:func:`read_columns` reads the file a piece at a time. The kernel
(:func:`~asyncnet.logkernel.scan_records`) takes records as long as they are plain — a
fixarray of seven, six non-negative integers that fit in int64, a payload
the lazy reader accepts (a number, nil, an extension, an array of numbers)
— *and* pass every check of ``EventLog.raw`` (kind and agent indices in
range, ``0 <= t_sent < t_arrive``, canonical order). It stops before
anything else and says why: the piece ended (maybe mid-record), or the
next item is something it does not take. A checkpoint or the footer there
is checked by the same code as the msgpack path (``_Scan.seal``); any
other item, and the rest of that piece, go through ``_Scan.slow``, so a
malformed, out-of-range or out-of-order record raises the very
:class:`~asyncnet.logformat.LogError` the msgpack path raises. Since the
kernel knows where each record ends, the digest is fed the exact bytes
taken, with no second pass to find item ends.

Without numba (or with ``ASYNCNET_NO_NUMBA=1``, or :data:`COMPILED` set to
False), and for a log under :data:`MIN_BYTES` while the kernel is not
loaded yet (loading numba costs more than it saves there), the same loop
runs with the numpy scanner (:func:`asyncnet.logvec.scan_vector`): the same
contract, every record of a piece parsed at once. With :data:`VECTOR` set
to False, :func:`read_columns` gives the same blocks from ``read_blocks``
(the msgpack path: the reference the tests compare both scans with).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

from .logkernel import END, FULL, scan_records
from .logscan import _Scan, read_blocks, unpacker
from .logvec import scan_vector
from .numbajit import compiled

COMPILED = True
"""Use the compiled kernel when numba is there (tests flip this to cover every path)."""
VECTOR = True
"""Without the compiled kernel, scan with numpy (:mod:`asyncnet.logvec`), not msgpack."""
MIN_BYTES = 64 << 20
"""Logs this large take the kernel even in a fresh process. Importing numba and
loading the kernel from its cache costs ~0.5 CPU-s (numba's first call imports
its numpy registries, and scipy with them); the kernel reads ~6.4 M records/s,
the numpy scanner ~1.9 M/s, so the load pays back after ~1.4 M records, ~70 MB
of a per-neuron log (``tools/bench_engine.py --figures stats``). Once loaded,
it reads every log."""
PIECE = 1 << 18
"""Bytes read at a time (memory: a few pieces, whatever the log's length)."""
BLOCK = 1 << 13
"""Most records per block handed to the caller (columns of 8 × BLOCK × 8 bytes)."""
_kernel: Any = None


def kernel(size: int | None = None) -> Callable[..., tuple[int, int, int]] | None:
    """The compiled :func:`scan_records`, or ``None`` (no numba, or turned off).

    Compiled on first use and cached on disk (``cache=True``), so only the
    first use on a machine pays for the compilation (~2 s).

    Parameters
    ----------
    size:
        the bytes to read: under :data:`MIN_BYTES`, ``None`` unless the
        kernel is loaded already (not worth loading for them).

    Returns
    -------
    The kernel, or ``None``.
    """
    global _kernel
    if not COMPILED or os.environ.get("ASYNCNET_NO_NUMBA"):
        return None
    if _kernel is None and size is not None and size < MIN_BYTES:
        return None
    if _kernel is None:  # False: no numba here
        _kernel = compiled(scan_records, nogil=True, boundscheck=False) or False
    return _kernel or None


class Payloads:
    """A block's payloads, decoded one at a time when asked for (as the lazy reader gives them)."""

    def __init__(self, data: bytes, bounds: np.ndarray):
        self.data, self.bounds = data, bounds

    def __len__(self) -> int:
        return self.bounds.shape[1]

    def __getitem__(self, i: int) -> Any:
        u = unpacker(slice)
        u.feed(self.data[self.bounds[0, i]:self.bounds[1, i]])
        return next(u)


class Block(NamedTuple):
    """A run of records as columns (int64 arrays) and their payloads."""

    t_arrive: np.ndarray
    kind: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    t_sent: np.ndarray
    seq: Any
    """int64 array, or a tuple of ints (from the msgpack path)."""
    payload: Any
    """:class:`Payloads` or a tuple: ``slice(code, bytes)`` for an array payload."""


_TOO_BIG: Any = object()
"""Stands for a block with a time past int64 (valid msgpack, no int64 column)."""


def columns(items: list[list]) -> Block:
    """Records (lists, as the msgpack path gives them) as a :class:`Block`.

    Parameters
    ----------
    items:
        checked records.

    Returns
    -------
    The block, or ``_TOO_BIG`` if a time does not fit in int64 (the kind
    and indices are range-checked; ``seq`` stays Python ints).
    """
    c = list(zip(*items, strict=True)) or [()] * 7
    try:
        return Block(*(np.array(x, dtype=object).astype(np.int64) if x
                       else np.zeros(0, np.int64) for x in c[:5]), c[5], c[6])
    except OverflowError:
        return _TOO_BIG


def _is_seal(obj: Any) -> bool:
    return isinstance(obj, dict) and ("checkpoint" in obj or obj.get("footer") is True)


def _item_at(data: bytes, pos: int) -> tuple[Any, int] | None:
    """The msgpack item at ``data[pos:]`` and where it ends; ``None`` if cut short.

    Raises whatever msgpack raises for a corrupt item.
    """
    u = unpacker(slice)
    u.feed(memoryview(data)[pos:])
    try:
        obj = next(u)
    except StopIteration:
        return None
    return obj, pos + u.tell()  # tell() after a whole item: its end


def read_columns(log: Any) -> Iterator[Block]:
    """The records of ``log``, checked as ``EventLog.raw`` checks them, as column blocks.

    Payloads are left encoded (as with ``read_blocks(log, lazy=True)``).
    The log's counters, checkpoints, footer and flags are set as it is
    read, exactly as the msgpack path sets them.

    Parameters
    ----------
    log:
        the opened log.

    Returns
    -------
    An iterator of :class:`Block`; raises :class:`LogError` where the
    msgpack path would.
    """
    kern = kernel(log.size) or (scan_vector if VECTOR else None)
    blocks = _compiled(log, kern) if kern is not None else (
        Block(*cols) if cols is not None else columns(items)
        for items, cols in read_blocks(log, lazy=True))
    for b in blocks:
        if b is _TOO_BIG:
            for _ in blocks:  # a malformed record after it says more (where, what)
                pass
            raise log._fail("a record's time does not fit in a 64-bit integer")
        yield b


def _compiled(log: Any, kern: Callable[..., tuple[int, int, int]]) -> Iterator[Block]:
    """:func:`read_columns` with the kernel (see the module's docstring)."""
    sc = _Scan(log, lazy=True)
    prev = np.zeros(6, dtype=np.int64)
    data = b""
    off = 0  # file offset of data[0]; every byte before off + pos is hashed
    pos = 0
    with open(log.path, "rb") as f:
        while True:
            # a long item cut by the piece's end: read more at once (no quadratic re-reads)
            chunk = f.read(max(PIECE, len(data) - pos))
            off += pos
            data = data[pos:] + chunk
            pos = 0
            while pos < len(data):
                if sc.seen and log.footer is None and _prev_to(sc, prev):
                    buf = np.frombuffer(data, dtype=np.uint8)
                    cols = np.empty((6, BLOCK), dtype=np.int64)
                    pay = np.empty((2, BLOCK), dtype=np.int64)
                    by_kind = np.zeros(3, dtype=np.int64)
                    n, new, why = kern(buf, pos, sc.n_agents, prev, cols, pay, by_kind)
                    if n:
                        sc.h.update(memoryview(data)[pos:new])
                        sc.prev = tuple(int(x) for x in prev[:5])
                        sc.n += n
                        sc.seen += n
                        for k in range(3):
                            sc.by_kind[k] += int(by_kind[k])
                        log.count = sc.n
                        pos = new
                        yield Block(*cols[:, :n], Payloads(data, pay[:, :n]))
                    if why == FULL:
                        continue
                    if why == END:
                        break
                # an item the kernel does not take: the header, a checkpoint, the
                # footer (checked here), or anything else (the slow path)
                try:
                    got = _item_at(data, pos)
                except Exception:  # corrupt: the slow path says where, as msgpack does
                    got = (None, pos)
                if got is None:
                    break  # cut short: read on
                obj, end = got
                if sc.seen == 0 and obj is not None:  # the header (checked on opening)
                    sc.seen = 1
                    sc.h.update(memoryview(data)[pos:end])
                    pos = end
                elif log.footer is None and _is_seal(obj):
                    sc.seal(obj, data[pos:end], off + pos)
                    pos = end
                else:
                    pos = yield from _slow(sc, data, off, pos)
                    break
            if not chunk:
                break
    if pos < len(data):  # the tail: msgpack's verdict on it (cut short, or corrupt)
        pos = yield from _slow(sc, data, off, pos)
    log.tail_bytes = len(data) - pos
    log._finish(sc.seen > 0, sc.n)


def _prev_to(sc: _Scan, prev: np.ndarray) -> bool:
    """Load the last key into ``prev``; False if it does not fit in int64 (msgpack's case)."""
    if sc.prev is None:
        prev[5] = 0
        return True
    try:
        prev[:5] = sc.prev
    except OverflowError:
        return False
    prev[5] = 1
    return True


def _slow(sc: _Scan, data: bytes, off: int, pos: int) -> Iterator[Block]:
    """The rest of ``data`` item by item (``_Scan.slow``); returns where it stopped."""
    out: list[list] = []
    try:
        end = sc.slow(data[pos:], off + pos, out)
    except Exception:
        if out:
            yield columns(out)
        raise
    if out:
        yield columns(out)
    return end - off
