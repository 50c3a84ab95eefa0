"""Generic state capture for checkpoints: walk an object graph, pack its data.

A checkpoint must hold the state of every rule model and every analysis
without knowing any of them. The approach: build the run afresh from its
scenario (which recreates every shared object — parameters, callables, the
network, the stream — exactly), then overwrite what changed. So a capture
keeps only the *data* reachable from a root:

- data: ``None``, bools, numbers, strings, bytes, numpy arrays and scalars of
  numeric dtype, and lists, tuples, dicts, deques and sets made of data;
- a random generator: its ``bit_generator`` state (restored in place);
- an object: its attributes (``__dict__`` and ``__slots__``), walked, but
  those its class lists in ``SCRATCH`` (buffers written before read);
- a function (only where ``functions=True``: analyses keep their state in
  closures): its closure cells and its ``__dict__``, walked;
- everything else (callables of numpy, classes, modules, and the objects in
  ``skip`` — the engine, network, stream, rule) is left to the fresh build.

Restoring walks the fresh graph along the same paths: containers are
updated in place (so aliases the fresh build set up — a closure cell shared
by a probe and a ``result`` — stay aliases), everything else is assigned.
Arrays shared within one capture stay shared (a memo), so an agent whose
``x`` is its ``a`` keeps it that way.

Packing is msgpack with extension types for arrays (dtype, shape, raw
bytes), tuples, big integers, deques and sets; decoding never executes
code, checks every length and refuses object dtypes.
"""

from __future__ import annotations

import struct
import types
from collections import deque
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np

_ARRAY, _REF, _TUPLE, _BIG, _DEQUE, _SET, _SCALAR, _FSET = range(10, 18)
_MAX_DEPTH = 40
_U32 = struct.Struct("<I")
_HEADS: dict[tuple, bytes] = {}
_FOREIGN = ("numpy", "simpy", "networkx", "msgpack", "zmq", "builtins", "_io", "threading")


class StateError(ValueError):
    """A state cannot be captured or restored (an unknown type, a changed model)."""


class _NotData(Exception):
    pass


class _Big(int):
    """An integer beyond 64 bits (a PCG64 state), packed as decimal text."""


def conv(v: Any) -> Any:
    """``v`` as packable data, or ``_NotData`` if it holds anything else.

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
            raise _NotData
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
    raise _NotData


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


# -- walking ------------------------------------------------------------------
def _foreign(v: Any) -> bool:
    mod = type(v).__module__ or ""
    return mod.split(".", 1)[0] in _FOREIGN


def _attrs(obj: Any) -> list[tuple[str, Any]]:
    # a class's ``SCRATCH`` names buffers whose contents never outlive a call
    # (written before read): not state, so not captured (which path of a
    # computation ran, numpy's or a compiled one, leaves them differently)
    scratch = {n for cls in type(obj).__mro__ for n in cls.__dict__.get("SCRATCH", ())}
    out = [(k, v) for k, v in getattr(obj, "__dict__", {}).items() if k not in scratch]
    seen = {k for k, _ in out} | scratch
    for cls in type(obj).__mro__:
        for s in getattr(cls, "__slots__", ()):
            if s in seen or s in ("__dict__", "__weakref__") or not hasattr(obj, s):
                continue
            seen.add(s)
            out.append((s, getattr(obj, s)))
    return out


def rng_state(g: np.random.Generator) -> dict:
    """A generator's bit-generator state, as data.

    Parameters
    ----------
    g:
        the generator.

    Returns
    -------
    Its state (a dict with 128-bit integers).
    """
    return conv(g.bit_generator.state)


class Walker:
    """Capture the data reachable from roots (see the module docstring).

    Parameters
    ----------
    skip:
        objects never walked (shared configuration the fresh build recreates).
    functions:
        whether to walk functions' closures (analyses) or skip callables (models).
    """

    def __init__(self, skip: list[Any] = (), functions: bool = False):
        self.skip = {id(o) for o in skip}
        self.functions = functions
        self.visited: set[int] = set()

    def node(self, v: Any, depth: int = 0) -> list | None:
        """The capture of ``v``, or ``None`` if nothing of it is kept.

        Parameters
        ----------
        v:
            any value.
        depth:
            how deep in the walk (bounded).

        Returns
        -------
        A node ``[tag, ...]`` (see :func:`restore`), or ``None``.
        """
        if depth > _MAX_DEPTH:
            raise StateError("state nested too deeply to capture")
        if id(v) in self.skip:
            return None
        try:
            return ["d", conv(v)]
        except _NotData:
            pass
        if isinstance(v, np.random.Generator):
            return ["r", rng_state(v)]
        if isinstance(v, (type, types.ModuleType, types.BuiltinFunctionType, np.ufunc)):
            return None
        if isinstance(v, types.MethodType):
            inner = self.node(v.__self__, depth + 1) if self.functions else None
            return None if inner is None else ["b", inner]
        if isinstance(v, (list, tuple)):
            kids = [self.node(x, depth + 1) for x in v]
            if isinstance(v, tuple):  # a tuple's own items cannot be reassigned
                kids = [None if k is not None and k[0] == "d" else k for k in kids]
            return ["L", kids] if any(k is not None for k in kids) else None
        if isinstance(v, dict):
            kids = []
            for k, x in v.items():
                n = self.node(x, depth + 1)
                if n is not None:
                    try:
                        kids.append([conv(k), n])
                    except _NotData:
                        raise StateError(f"cannot capture a dict keyed by "
                                         f"{type(k).__name__}") from None
            return ["M", kids] if kids else None
        if id(v) in self.visited:
            return None
        if isinstance(v, types.FunctionType):
            if not self.functions:
                return None
            self.visited.add(id(v))
            cells = {}
            for name, cell in zip(v.__code__.co_freevars, v.__closure__ or (), strict=True):
                try:
                    content = cell.cell_contents
                except ValueError:  # not bound yet
                    continue
                n = self.node(content, depth + 1)
                if n is not None:
                    cells[name] = n
            attrs = self.obj_attrs(v.__dict__.items(), depth)
            return ["f", cells, attrs] if cells or attrs else None
        if callable(v) and not hasattr(v, "__dict__") or _foreign(v):
            return None
        # slots anywhere in the class's MRO: a subclass may add none of its own
        if not hasattr(v, "__dict__") and not any(getattr(c, "__slots__", None)
                                                  for c in type(v).__mro__):
            return None
        self.visited.add(id(v))
        attrs = self.obj_attrs(_attrs(v), depth)
        return ["o", attrs] if attrs else None

    def obj_attrs(self, items, depth: int) -> dict:
        """Captured attributes of one object (those with anything to keep).

        Parameters
        ----------
        items:
            ``(name, value)`` pairs.
        depth:
            how deep in the walk.

        Returns
        -------
        ``{name: node}``.
        """
        out = {}
        for k, x in items:
            n = self.node(x, depth + 1)
            if n is not None:
                out[k] = n
        return out


def _assign(get: Callable[[], Any], put: Callable[[Any], None], new: Any) -> None:
    """Set a value, updating a fresh container in place (its aliases follow)."""
    try:
        old = get()
    except (AttributeError, ValueError):
        put(new)
        return
    if type(old) is type(new) and type(new) in (bool, int, float, str, bytes, type(None)) \
            and old == new:
        return  # unchanged (and a frozen object's field stays assignable-free)
    if isinstance(old, dict) and type(new) is dict:
        old.clear()
        old.update(new)
    elif type(old) is list and type(new) is list:
        old[:] = new
    elif isinstance(old, deque) and isinstance(new, deque) and old.maxlen == new.maxlen:
        old.clear()
        old.extend(new)
    elif type(old) is set and type(new) is set:
        old.clear()
        old.update(new)
    else:
        put(new)


def restore(node: list, get: Callable[[], Any], put: Callable[[Any], None],
            where: str = "state") -> None:
    """Apply a captured node to the fresh value reached by ``get``/``put``.

    Parameters
    ----------
    node:
        a node from :meth:`Walker.node`, decoded.
    get, put:
        read and assign the fresh value at this path.
    where:
        the path, for messages.
    """
    tag = node[0]
    if tag == "d":
        _assign(get, put, node[1])
        return
    try:
        cur = get()
    except (AttributeError, ValueError):
        raise StateError(f"{where}: the fresh run has nothing to restore into") from None
    if tag == "r":
        if not isinstance(cur, np.random.Generator):
            raise StateError(f"{where}: expected a random generator")
        set_rng_state(cur, node[1])
    elif tag == "b":
        restore(node[1], lambda: cur.__self__, _readonly(where), where)
    elif tag == "o":
        restore_attrs(cur, node[1], where)
    elif tag == "f":
        if not isinstance(cur, types.FunctionType):
            raise StateError(f"{where}: expected a function")
        cells = dict(zip(cur.__code__.co_freevars, cur.__closure__ or (), strict=True))
        for name, sub in node[1].items():
            cell = cells.get(name)
            if cell is None:
                raise StateError(f"{where}: closure has no variable {name!r}")
            restore(sub, lambda c=cell: c.cell_contents,
                    lambda v, c=cell: setattr(c, "cell_contents", v), f"{where}.<{name}>")
        restore_attrs(cur, node[2], where)
    elif tag == "L":
        if len(cur) != len(node[1]):
            raise StateError(f"{where}: length changed ({len(cur)} != {len(node[1])})")
        for i, sub in enumerate(node[1]):
            if sub is not None:
                restore(sub, lambda i=i: cur[i], lambda v, i=i: cur.__setitem__(i, v),
                        f"{where}[{i}]")
    elif tag == "M":
        for k, sub in node[1]:
            restore(sub, lambda k=k: cur[k], lambda v, k=k: cur.__setitem__(k, v),
                    f"{where}[{k!r}]")
    else:
        raise StateError(f"{where}: unknown node {tag!r}")


def restore_attrs(obj: Any, attrs: dict, where: str) -> None:
    """Restore captured attributes into ``obj``.

    Parameters
    ----------
    obj:
        the fresh object.
    attrs:
        ``{name: node}`` from :meth:`Walker.obj_attrs`.
    where:
        the path, for messages.
    """
    if not isinstance(attrs, dict):
        raise StateError(f"{where}: malformed attributes")
    for k, sub in attrs.items():
        restore(sub, lambda k=k: _getattr(obj, k), lambda v, k=k: setattr(obj, k, v),
                f"{where}.{k}")


def _getattr(obj: Any, k: str) -> Any:
    if isinstance(obj, types.FunctionType):
        return obj.__dict__[k] if k in obj.__dict__ else getattr(obj, k)
    return getattr(obj, k)


def _readonly(where: str) -> Callable[[Any], None]:
    def put(_v: Any) -> None:
        raise StateError(f"{where}: cannot replace a bound method's object")
    return put


def set_rng_state(g: np.random.Generator, state: Any) -> None:
    """Set a generator's bit-generator state (``StateError`` if it does not fit).

    Parameters
    ----------
    g:
        the generator (changed in place).
    state:
        what :func:`rng_state` gave.
    """
    try:
        g.bit_generator.state = state
    except (TypeError, ValueError, KeyError) as e:
        raise StateError(f"random generator state refused ({e})") from None


__all__ = ["StateError", "Packer", "Unpacker", "Walker", "conv", "restore", "restore_attrs",
           "rng_state", "set_rng_state"]
