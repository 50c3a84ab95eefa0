"""``--json`` output that is always valid JSON (RFC 8259).

Python's ``json`` writes ``NaN``, ``Infinity`` and ``-Infinity`` for
non-finite floats, which no strict JSON parser accepts. Here every
non-finite number (a Python float, a numpy scalar or an array element)
becomes ``null``; numpy arrays become (nested) lists and numpy scalars
plain numbers. A summary that holds a ``null`` where a number is expected
means the value was NaN or infinite (or, as before, not available).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy values converted and non-finite numbers as ``None``.

    Parameters
    ----------
    obj:
        a summary: dicts, lists, tuples, numbers, strings, numpy values.

    Returns
    -------
    The same structure made of JSON types only (tuples become lists).
    """
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k) if not isinstance(k, str) else k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    return str(obj)


def dumps(obj: Any) -> str:
    """One line of strict JSON for ``obj`` (see :func:`jsonable`).

    Parameters
    ----------
    obj:
        the object to print.

    Returns
    -------
    The JSON text; it never contains ``NaN`` or ``Infinity``.
    """
    return json.dumps(jsonable(obj), allow_nan=False)


__all__ = ["jsonable", "dumps"]
