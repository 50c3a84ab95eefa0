"""Packing captured state: msgpack with extension types, decoded without running code.

:mod:`asyncnet.ckstate` walks an object graph down to its data; this module
turns that data into bytes and back. Extension types carry arrays (dtype,
shape, raw bytes), tuples, big integers, deques and sets; decoding never
executes code, checks every length and refuses object dtypes.
"""

from __future__ import annotations

import struct
from collections import deque
from typing import Any

import msgpack
import numpy as np

_ARRAY, _REF, _TUPLE, _BIG, _DEQUE, _SET, _SCALAR, _FSET = range(10, 18)
_U32 = struct.Struct("<I")
_HEADS: dict[tuple, bytes] = {}


class StateError(ValueError):
    """A state cannot be captured or restored (an unknown type, a changed model)."""


class NotData(Exception):
    pass


class _Big(int):
    """An integer beyond 64 bits (a PCG64 state), packed as decimal text."""


def conv(v: Any) -> Any:
    """``v`` as packable data, or ``NotData`` if it holds anything else.

    Parameters
    ----------
    v:
        any value.

    Returns
    -------
    The same value with containers rebuilt (exact types) and big integers marked.
    """
    t = type(v)
    if v is None or t in (bool, float, str, bytes):
        return v
    if t is int:
        return v if -(1 << 63) <= v < (1 << 64) else _Big(v)
    if t is np.ndarray:
        if v.dtype.kind not in "biufc":
            raise NotData
        return v
    if isinstance(v, np.generic) and v.dtype.kind in "biufc":
        return v
    if isinstance(v, int):  # IntEnum and friends: their value
        return conv(int(v))
    if isinstance(v, float):
        return float(v)
    if isinstance(v, list):
        return [conv(x) for x in v]
    if isinstance(v, tuple):
        return tuple(conv(x) for x in v)
    if isinstance(v, dict):
        return {conv(k): conv(x) for k, x in v.items()}
    if isinstance(v, deque):
        return deque((conv(x) for x in v), v.maxlen)
    if isinstance(v, (set, frozenset)):
        return (frozenset if isinstance(v, frozenset) else set)(conv(x) for x in v)
    raise NotData


# -- packing ------------------------------------------------------------------
class Packer:
    """msgpack with the extension types above; arrays shared within one pack stay shared."""

    def __init__(self) -> None:
        self.memo: dict[int, int] = {}
        self.keep: list = []  # keeps the memo's ids valid while packing
        self._p = msgpack.Packer(default=self._default, use_bin_type=True, strict_types=True)

    def pack(self, obj: Any) -> bytes:
        """Pack ``obj`` (already made of data, see :func:`conv`).

        Parameters
        ----------
        obj:
            the data.

        Returns
        -------
        The bytes.
        """
        return self._p.pack(obj)

    def _sub(self, obj: Any) -> bytes:
        return msgpack.Packer(default=self._default, use_bin_type=True,
                              strict_types=True).pack(obj)

    def _default(self, o: Any) -> Any:
        if isinstance(o, np.ndarray):
            i = self.memo.get(id(o))
            if i is not None:
                return msgpack.ExtType(_REF, _U32.pack(i))
            self.memo[id(o)] = len(self.memo)
            self.keep.append(o)
            # a header per (dtype, shape), cached: networks hold many arrays of few kinds
            key = (o.dtype.str, o.shape)
            head = _HEADS.get(key)
            if head is None:
                dt = o.dtype.str.encode()
                head = _HEADS[key] = (bytes([len(dt)]) + dt + bytes([o.ndim])
                                      + struct.pack(f"<{o.ndim}Q", *o.shape))
            return msgpack.ExtType(_ARRAY, head + o.tobytes())
        if isinstance(o, np.generic):
            return msgpack.ExtType(_SCALAR, self._sub([o.dtype.str, o.tobytes()]))
        if isinstance(o, _Big):
            return msgpack.ExtType(_BIG, str(int(o)).encode())
        if isinstance(o, tuple):
            return msgpack.ExtType(_TUPLE, self._sub(list(o)))
        if isinstance(o, deque):
            return msgpack.ExtType(_DEQUE, self._sub([o.maxlen, list(o)]))
        if isinstance(o, frozenset):
            return msgpack.ExtType(_FSET, self._sub(list(o)))
        if isinstance(o, set):
            return msgpack.ExtType(_SET, self._sub(list(o)))
        if isinstance(o, int):
            return int(o)
        if isinstance(o, dict):
            return dict(o)
        if isinstance(o, list):
            return list(o)
        raise TypeError(f"cannot pack {type(o).__name__}")


class Unpacker:
    """The inverse of :class:`Packer`, bounded by the input's size."""

    def __init__(self) -> None:
        self.memo: list[np.ndarray] = []

    def unpack(self, data: bytes) -> Any:
        """Decode one packed object; ``StateError`` if it is malformed.

        Parameters
        ----------
        data:
            what :meth:`Packer.pack` gave.

        Returns
        -------
        The data.
        """
        try:
            return self._un(data)
        except StateError:
            raise
        except (ValueError, TypeError, IndexError, msgpack.ExtraData,
                msgpack.FormatError, msgpack.StackError) as e:
            raise StateError(f"malformed state ({e})") from None

    def _un(self, data: bytes) -> Any:
        n = len(data)
        return msgpack.unpackb(data, raw=False, ext_hook=self._ext, strict_map_key=False,
                               use_list=True, max_bin_len=n, max_str_len=n,
                               max_array_len=n, max_map_len=n, max_ext_len=n)

    def _ext(self, code: int, data: bytes) -> Any:
        if code == _ARRAY:
            n = data[0]
            dt = data[1:1 + n].decode("ascii")
            if n > 16 or len(data) < n + 2:
                raise StateError("malformed array header")
            nd = data[1 + n]
            end = n + 2 + 8 * nd
            if nd > 32 or len(data) < end:
                raise StateError("malformed array header")
            shape = struct.unpack(f"<{nd}Q", data[n + 2:end])
            try:
                dtype = np.dtype(dt)
            except TypeError:
                raise StateError(f"refused array of dtype {dt!r}") from None
            if dtype.kind not in "biufc":
                raise StateError(f"refused array of dtype {dt!r}")
            count = 1
            for s in shape:
                count *= s
            if count * dtype.itemsize != len(data) - end:
                raise StateError("array length does not match its shape")
            a = np.frombuffer(data, dtype=dtype, offset=end, count=count).reshape(shape).copy()
            self.memo.append(a)
            return a
        if code == _REF:
            if len(data) != 4:
                raise StateError("malformed array reference")
            i = _U32.unpack(data)[0]
            if not 0 <= i < len(self.memo):
                raise StateError("array reference out of range")
            return self.memo[i]
        if code == _SCALAR:
            dt, buf = self._un(data)
            dtype = np.dtype(dt)
            if dtype.kind not in "biufc" or len(buf) != dtype.itemsize:
                raise StateError(f"refused scalar of dtype {dt!r}")
            return np.frombuffer(buf, dtype=dtype)[0]
        if code == _BIG:
            text = data.decode("ascii")
            if len(text) > 100:
                raise StateError("integer too long")
            return int(text)
        if code == _TUPLE:
            return tuple(self._un(data))
        if code == _DEQUE:
            maxlen, items = self._un(data)
            return deque(items, maxlen)
        if code in (_SET, _FSET):
            return (set if code == _SET else frozenset)(self._un(data))
        raise StateError(f"unknown extension type {code}")


__all__ = ["StateError", "NotData", "conv", "Packer", "Unpacker"]
