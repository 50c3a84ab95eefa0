"""An instant's records packed with numpy: the bytes msgpack makes, a column at a time.

The event log holds one msgpack array per delivered message,
``[t_arrive, kind, src, dst, t_sent, seq, payload]`` (see
:mod:`asyncnet.eventlog`). Packing them one record at a time costs
~1.1 µs a record in Python (a tuple, an index look-up, the payload's code,
msgpack's call); a per-neuron net delivers ~1,000 records an instant, all
alike: six non-negative integers and a payload of one shape. Here the
fields become int64 columns, each integer gets msgpack's smallest encoding
(positive fixint, uint8/16/32/64) as a row of nine bytes and a width, the
payloads become one block of bytes, and the rows are compacted into the
record stream in one call (``np.compress``).

:func:`pack_batches` packs only what it can make exactly as msgpack does:
every payload a float64 array of one shape, or every payload a Python
float; every integer in ``[0, 2⁶³)``; every kind 0, 1 or 2. For anything
else it returns ``None`` and the caller packs record by record — so the
bytes never depend on which path ran (tested against msgpack on real
instants and on generated ones).
"""

from __future__ import annotations

import struct
from itertools import chain
from operator import attrgetter, countOf
from typing import Any

import numpy as np

from .messages import Kind

MIN_RECORDS = 128
"""Fewer records than this: the per-record path is as fast (numpy's fixed costs)."""

_NDARRAY = np.ndarray
_F8 = np.dtype("<f8")
_dtype = attrgetter("dtype")
_shape = attrgetter("shape")
_ndim = attrgetter("ndim")
_tobytes = np.ndarray.tobytes
_LIMITS = np.array([128, 256, 1 << 16, 1 << 32], dtype=np.int64)
"""msgpack's integer classes: fixint below 128, then uint8, uint16, uint32, uint64."""
_WIDTH = np.array([1, 2, 3, 5, 9], dtype=np.int64)
_TYPE = np.array([0, 0xCC, 0xCD, 0xCE, 0xCF], dtype=np.uint8)
_KEEP = np.array([[True] + [j >= 9 - (w - 1) for j in range(1, 9)] for w in (1, 2, 3, 5, 9)])
"""By class: which of an integer's nine bytes are kept (its type byte, the value's last w - 1)."""
_EXT_ARRAY = 1  # asyncnet.messages' extension code for arrays
INT_TYPES = frozenset({int, Kind, np.int64, np.int32, np.uint64, np.uint32})
"""Field types msgpack packs as integers (numpy ones through ``encode_payload``); not bool."""


def _ext_head(size: int) -> bytes:
    """msgpack's header of an extension of ``size`` bytes, type code included."""
    fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}.get(size)
    if fixed is not None:
        return bytes((fixed, _EXT_ARRAY))
    if size < 1 << 8:
        return bytes((0xC7, size, _EXT_ARRAY))
    if size < 1 << 16:
        return b"\xc8" + size.to_bytes(2, "big") + bytes((_EXT_ARRAY,))
    return b"\xc9" + size.to_bytes(4, "big") + bytes((_EXT_ARRAY,))


def array_shape(payloads: tuple | list) -> tuple | None:
    """The one shape of ``payloads`` if every one is a float64 array (``<f8``) of
    that shape, with at least one dimension; else ``None`` (none at all too).

    Counted, not collected in sets: ``countOf`` compares by identity first
    (a type, a dtype, a small int), where a set hashes each (a dtype's hash
    is a call).
    """
    n = len(payloads)
    if not n or countOf(map(type, payloads), _NDARRAY) != n \
            or countOf(map(_dtype, payloads), _F8) != n:
        return None
    first = payloads[0]
    if first.ndim == 1 and countOf(map(_ndim, payloads), 1) == n:
        # vectors: the length is the shape, no tuple made a payload
        return first.shape if countOf(map(len, payloads), len(first)) == n else None
    if first.ndim == 0:  # encode_payload makes a 0-d array a vector of one
        return None
    return first.shape if countOf(map(_shape, payloads), first.shape) == n else None


def payload_parts(payloads: tuple | list) -> tuple[np.ndarray, np.ndarray] | None:
    """Every payload's packed bytes as one header all share and a row each, or ``None``.

    Returns
    -------
    ``(head, rows)``: uint8, and uint8 ``(len(payloads), b)``; a payload
    packs as ``head`` then its row. ``None`` unless every payload is a
    float64 array of one shape, or every payload a Python float.
    """
    n = len(payloads)
    if n and type(payloads[0]) is _NDARRAY:
        shape = array_shape(payloads)
        if shape is None:
            return None
        size = 8 * int(np.prod(shape, dtype=np.int64))
        # asyncnet.messages.encode_payload: [ndim, shape as <u4 ..., the values as <f8]
        info = struct.pack(f"<B{len(shape)}I", len(shape), *shape)
        head = np.frombuffer(_ext_head(len(info) + size) + info, dtype=np.uint8)
        try:  # the arrays' own buffers, joined in one C loop (no bytes object each)
            data = np.frombuffer(b"".join(payloads), dtype=np.uint8)
        except (BufferError, TypeError, ValueError):  # not C-contiguous
            data = np.frombuffer(b"".join(map(_tobytes, payloads)), dtype=np.uint8)
        return head, data.reshape(len(payloads), size)
    if n and countOf(map(type, payloads), float) == n:
        rows = np.array(payloads, dtype=">f8").view(np.uint8).reshape(-1, 8)
        return np.array([0xCB], dtype=np.uint8), rows  # float 64, big-endian
    return None


def payload_block(payloads: tuple | list) -> np.ndarray | None:
    """Every payload's packed bytes as the rows of one uint8 block, or ``None``
    (:func:`payload_parts`, the header in every row)."""
    got = payload_parts(payloads)
    return None if got is None else block_of(*got)


def block_of(head: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """:func:`payload_parts`' header and rows as one block, the header in every row."""
    block = np.empty((len(rows), len(head) + rows.shape[1]), dtype=np.uint8)
    block[:, :len(head)] = head
    block[:, len(head):] = rows
    return block


def pack_batches(batches: list[list[Any]], index: dict[str, int]
                 ) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray] | None:
    """The records of ``batches``, in the order given, as msgpack would pack them.

    Parameters
    ----------
    batches:
        lists of messages ``(kind, src, dst, t_sent, t_arrive, seq, payload)``;
        one instant's, in the order the records go in the log.
    index:
        agent name -> its index in the log's agent table.

    Returns
    -------
    ``(data, ends, kinds, dst)``: the packed records back to back, where
    each record ends in ``data`` (int64), each record's kind (uint8) and
    receiver's index (int64) — or ``None`` if a record is not one this packs
    exactly (see the module).
    """
    msgs = list(chain.from_iterable(batches))
    m = len(msgs)
    kind, src, dst, t_sent, t_arr, seq, payload = zip(*msgs, strict=True)
    block = payload_block(payload)
    if block is None or not INT_TYPES.issuperset(map(type, chain(kind, t_arr, t_sent, seq))):
        return None  # a float, a bool (msgpack: true/false), a string ... is not an int here
    try:
        kinds = np.frombuffer(bytes(kind), dtype=np.uint8)
        cols = np.empty((m, 6), dtype=np.int64)
        cols[:, 0] = t_arr
        cols[:, 1] = kinds
        cols[:, 2] = np.fromiter(map(index.__getitem__, src), dtype=np.int64, count=m)
        cols[:, 3] = np.fromiter(map(index.__getitem__, dst), dtype=np.int64, count=m)
        cols[:, 4] = t_sent
        cols[:, 5] = seq
    except (ValueError, TypeError, OverflowError):  # a kind past 255, an int past int64
        return None
    if kinds.max() > 2 or cols.min() < 0:
        return None
    return pack_rows(cols, block, None), cols_ends(cols, block), kinds, cols[:, 3]


def _classes(cols: np.ndarray) -> np.ndarray:
    return np.searchsorted(_LIMITS, cols, side="right")


def cols_ends(cols: np.ndarray, block: np.ndarray) -> np.ndarray:
    """Where each record :func:`pack_rows` makes ends (int64)."""
    return np.cumsum(_WIDTH[_classes(cols)].sum(axis=1) + 1 + block.shape[1])


def pack_rows(cols: np.ndarray, block: np.ndarray, rows_of: np.ndarray | None) -> bytes:
    """Records ``[t_arrive, kind, src, dst, t_sent, seq, payload]`` as msgpack packs them.

    Parameters
    ----------
    cols:
        int64 ``(m, 6)``: the six integers of each record, each in ``[0, 2⁶³)``.
    block:
        uint8 ``(g, b)``: packed payloads (:func:`payload_block`).
    rows_of:
        each record's row of ``block`` (int64 ``(m,)``), or ``None``: row i.

    Returns
    -------
    The records back to back.
    """
    m = len(cols)
    cls = _classes(cols)
    # a record: 0x97 (fixarray of 7), six integers in nine bytes each (type byte,
    # then the big-endian value: only the last width - 1 bytes kept), the payload
    rows = np.empty((m, 55 + block.shape[1]), dtype=np.uint8)
    keep = np.empty(rows.shape, dtype=bool)
    keep[:, 0] = True
    keep[:, 1:55] = np.take(_KEEP, cls, axis=0).reshape(m, 54)
    keep[:, 55:] = True
    rows[:, 0] = 0x97
    ints = rows[:, 1:55].reshape(m, 6, 9)
    ints[:, :, 1:] = cols.astype(">u8").view(np.uint8).reshape(m, 6, 8)
    ints[:, :, 0] = np.where(cls == 0, cols & 0x7F, _TYPE[cls])
    rows[:, 55:] = block if rows_of is None else block[rows_of]
    return np.compress(keep.ravel(), rows.ravel()).tobytes()
