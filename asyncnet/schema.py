"""Typed parameter schemas, read from a scheme's dataclass.

A scheme's parameters are the init fields of its dataclass; their type
annotations are the schema: ``float`` (an int or a float, finite), ``int``
(not a bool), ``bool`` (only ``true``/``false``), ``str`` or a ``Literal``
of strings, optionally ``| None``. Values are checked here, before the
scheme is built, with one message naming the key; ranges are the scheme's
own ``__post_init__`` checks. :func:`describe` lists a schema for the docs.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, get_args, get_origin


class ParamError(ValueError):
    """A scheme parameter has the wrong type or a non-finite value."""


def fields(cls: type) -> dict[str, tuple[Any, Any]]:
    """``{name: (type, default)}`` of a scheme class's parameters."""
    if not dataclasses.is_dataclass(cls):
        return {}
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        out[f.name] = (hints.get(f.name, Any), default)
    return out


def _accepts(t: Any, v: Any) -> tuple[bool, str]:
    """Whether value ``v`` fits type ``t``; the type's name for messages."""
    origin = get_origin(t)
    if origin in (typing.Union, types.UnionType):
        names, ok = [], False
        for arg in get_args(t):
            good, name = _accepts(arg, v)
            ok = ok or good
            names.append(name)
        return ok, " or ".join(names)
    if origin is Literal:
        choices = get_args(t)
        return v in choices, "one of " + ", ".join(repr(c) for c in choices)
    if t is type(None):
        return v is None, "none"
    if t is bool:
        return isinstance(v, bool), "true or false"
    if t is int:
        return isinstance(v, int) and not isinstance(v, bool), "an integer"
    if t is float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        return ok and math.isfinite(v), "a finite number"
    if t is str:
        return isinstance(v, str), "a string"
    return True, getattr(t, "__name__", str(t))


def check(cls: type, params: dict) -> None:
    """Check ``params`` against the schema of ``cls``.

    Parameters
    ----------
    cls:
        A scheme's parameter dataclass.
    params:
        The scenario's ``[rule]`` table without ``name``.

    Raises
    ------
    ParamError
        An unknown key, or a value of the wrong type or not finite.
    """
    schema = fields(cls)
    for k, v in params.items():
        if k not in schema:
            raise ParamError(f"unknown key {k!r} (known: {', '.join(schema)})")
        ok, want = _accepts(schema[k][0], v)
        if not ok:
            raise ParamError(f"key {k!r} must be {want}, got {type(v).__name__} {v!r}")


def describe(cls: type) -> list[dict[str, str]]:
    """The schema as rows ``{name, type, default}`` (for generated docs).

    Parameters
    ----------
    cls:
        A scheme's parameter dataclass.

    Returns
    -------
    One dict per parameter, types and defaults as strings.
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):  # it gave [] for "ep"
        how = f" (asyncnet.get_scheme({cls!r}) is the class)" if isinstance(cls, str) else ""
        raise TypeError(f"describe takes a scheme's parameter dataclass{how}, got "
                        f"{type(cls).__name__} {cls!r}"[:200])
    rows = []
    for name, (t, default) in fields(cls).items():
        tname = str(t).replace("typing.", "") if not isinstance(t, type) else t.__name__
        rows.append({"name": name, "type": tname, "default": repr(default)})
    return rows
