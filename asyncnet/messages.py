"""The message record, its kinds, simulated time and the payload codec.

Simulated time is an integer count of *quanta* (``QUANTA`` per unit of time):
integer arithmetic makes arrival instants exact, so two messages that should
arrive together do, on one process or on many.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Any, NamedTuple

import msgpack
import numpy as np

QUANTA = 1_000_000
"""Quanta per unit of simulated time."""

class Kind(IntEnum):
    """The kind of a message; its value is what the event log stores."""

    FORWARD = 0
    """Activity travelling along a projection."""
    DELTA = 1
    """Credit, sensitivity or nudge travelling against a projection."""
    CONTROL = 2
    """Data, teacher and phase signals that enter from outside the network."""


FORWARD, DELTA, CONTROL = Kind.FORWARD, Kind.DELTA, Kind.CONTROL
KIND_NAMES = tuple(k.name.lower() for k in Kind)


class LocalityError(RuntimeError):
    """An agent tried to address an agent that is not its graph neighbour."""


class Message(NamedTuple):
    """One timestamped message between two neighbouring agents."""

    kind: int
    src: str
    dst: str
    t_sent: int
    t_arrive: int
    seq: int
    payload: Any


def canonical_key(m: Message) -> tuple:
    """The order in which simultaneous messages are handed to an agent."""
    return (m.t_arrive, m.kind, m.src, m.seq)


def to_quanta(t: float) -> int:
    """Convert a time in units to integer quanta (rounded to nearest)."""
    return int(round(float(t) * QUANTA))


def to_time(q: int) -> float:
    """Convert integer quanta to a time in units."""
    return q / QUANTA


# -- payload codec ---------------------------------------------------------
# Arrays travel as a msgpack extension: raw little-endian float64 bytes plus
# their shape. Bit-exact, no pickle, and the decoder checks every length.
_EXT_ARRAY = 1
_HDR = struct.Struct("<B")
_F8 = np.dtype("<f8")
_DIMS = [struct.Struct(f"<{k}I") for k in range(9)]  # an array's shape, by its ndim
_HEADS: dict[tuple[int, ...], bytes] = {}  # an array extension's header, by shape
_MAX_HEADS = 4096
_new_tuple = tuple.__new__  # an ExtType without its constructor's checks (which hold here)


def encode_payload(obj: Any) -> Any:
    """msgpack ``default`` hook: numpy arrays and scalars to exact forms."""
    if type(obj) is np.ndarray and obj.dtype is _F8 and obj.ndim and obj.flags.c_contiguous:
        # the common case, short-circuited: a contiguous float64 array (a run's
        # final states are 1 x 1 weights: 1.0 -> 0.4 µs an array without the
        # generic path's conversion, format string and ExtType's checks)
        shape = obj.shape
        head = _HEADS.get(shape)
        if head is None:
            head = _HDR.pack(len(shape)) + struct.pack(f"<{len(shape)}I", *shape)
            if len(_HEADS) < _MAX_HEADS:
                _HEADS[shape] = head
        return _new_tuple(msgpack.ExtType, (_EXT_ARRAY, head + obj.tobytes()))
    if isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj, dtype="<f8")
        shape = struct.pack(f"<{a.ndim}I", *a.shape)
        return msgpack.ExtType(_EXT_ARRAY, _HDR.pack(a.ndim) + shape + a.tobytes())
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    raise TypeError(f"cannot encode payload of type {type(obj).__name__}")


def decode_ext(code: int, data: bytes) -> Any:
    """msgpack ``ext_hook``: rebuild arrays, refusing malformed data."""
    if code != _EXT_ARRAY or len(data) < 1:
        raise ValueError(f"unknown or empty extension type {code}")
    ndim = data[0]
    if ndim == 1 and len(data) >= 5:  # the common case, a vector: one length to check
        n = int.from_bytes(data[1:5], "little")
        if len(data) != 5 + 8 * n:
            raise ValueError("array length does not match its shape")
        return np.frombuffer(data, dtype=_F8, offset=5).copy()
    if ndim > 8:
        raise ValueError(f"array with {ndim} dimensions refused")
    end = 1 + 4 * ndim
    if len(data) < end:
        raise ValueError("truncated array header")
    shape = _DIMS[ndim].unpack_from(data, 1)
    n = 1
    for s in shape:
        n *= s
    if len(data) - end != 8 * n:
        raise ValueError("array length does not match its shape")
    return np.frombuffer(data, dtype=_F8, offset=end).reshape(shape).copy()
