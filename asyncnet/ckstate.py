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

Packing the captured data into bytes and back is :mod:`asyncnet.ckpack`'s.
"""

from __future__ import annotations

import types
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from .ckpack import NotData, Packer, StateError, Unpacker, conv

_MAX_DEPTH = 40
_FOREIGN = ("numpy", "simpy", "networkx", "msgpack", "zmq", "builtins", "_io", "threading")


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
        except NotData:
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
                    except NotData:
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
