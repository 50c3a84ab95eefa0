"""A scenario file's tables: their schema, their checks, and the TOML text of a
scenario built in Python.

:class:`asyncnet.scenario.Scenario` validates a scenario made in Python by
writing it out (:func:`to_toml`) and reading it back as a file is read
(:func:`asyncnet.scenario.load`, which checks each table against
:data:`SCHEMA`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


class ScenarioError(ValueError):
    """A scenario file is malformed or describes something impossible."""


NUM = (int, float)
SCHEMA: dict[str, dict[str, Any]] = {
    "scenario": {"name": str, "description": str, "seed": int, "duration": NUM},
    "network": {"layers": list, "activation": str, "out_activation": str, "delay": NUM,
                "scale": NUM, "init": str, "speed": NUM, "nodes": list, "edges": list},
    "rule": None,  # free-form, checked against the rule's own parameters
    "data": {"kind": str, "hold": NUM, "patterns": int, "order": str, "input": list,
             "target": list, "period": NUM, "lag": NUM, "target_scale": NUM,
             "input_node": (str, list), "output_node": (str, list),
             # batch: ep, coupled (asyncnet/nudge.py); diffusion, leastaction,
             # continuous with piecewise and xor (asyncnet/data.py)
             "batch": int, "settle": NUM, "leg": NUM, "release": NUM, "samples": int,
             "test_fraction": NUM},
    "loss": {"kind": str},
    "analysis": {"kind": str, "holds": list, "warmup": NUM, "tolerance": NUM, "betas": list},
    "output": {"log": str, "save_state": str, "progress": bool, "write_log": bool,
               "state_dir": str,  # state_dir: checkpoints of a gradep run
               "checkpoint_every": NUM, "checkpoint_dir": str},
    "cluster": {"workers": int, "partition": str},
}
LIST_ITEMS: dict[str, Any] = {
    "holds": NUM, "betas": NUM, "input": NUM, "target": NUM, "weight": NUM, "bias": NUM,
    "layers": int, "input_node": str, "output_node": str,
}
"""What the items of a list-valued key must be (nested lists of these for matrices)."""
FLAT = frozenset({"holds", "betas"})
"""Lists of numbers that are lists of values, never matrices."""
MAX_DURATION = 2.0 ** 62 / 1_000_000
"""The longest run: simulated time is an int64 count of quanta."""

NODE_KEYS = {"name": str, "size": int, "activation": str, "role": str, "bias": list}
EDGE_KEYS = {"pre": str, "post": str, "delay": NUM, "length": NUM, "speed": NUM,
             "scale": NUM, "init": str, "weight": list}


def _check_table(tbl: Any, schema: dict, where: str, path: str) -> None:
    if not isinstance(tbl, dict):
        raise ScenarioError(f"{path}: {where} must be a table")
    for k, v in tbl.items():
        if k not in schema:
            raise ScenarioError(f"{path}: {where} unknown key {k!r} "
                                f"(known: {', '.join(schema)})")
        want = schema[k]
        ok = isinstance(v, want) and not (isinstance(v, bool) and want in (int, NUM))
        if want is bool:
            ok = isinstance(v, bool)
        if ok and isinstance(v, list) and k in LIST_ITEMS:
            _check_items(v, LIST_ITEMS[k], f"{where} key {k!r}", path, k not in FLAT)
        if ok and want is NUM and not math.isfinite(v):
            raise ScenarioError(f"{path}: {where} key {k!r} must be a finite number, got {v!r}")
        if ok and want in (int, NUM) and isinstance(v, int) and not -2**63 <= v < 2**63:
            raise ScenarioError(f"{path}: {where} key {k!r} is out of range: {v}")
        if not ok:
            tname = (_TYPE_NAMES.get(want, want.__name__) if isinstance(want, type)
                     else "a number" if want is NUM
                     else " or ".join(_TYPE_NAMES.get(w, w.__name__) for w in want))
            raise ScenarioError(f"{path}: {where} key {k!r} must be {tname}, "
                                f"got {type(v).__name__} {v!r}")


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
               list: "a list", dict: "a table"}
"""A key's type as the scenario file's reader says it (not Python's "a int")."""


def _check_items(v: list, want: Any, where: str, path: str, nested: bool = True,
                 depth: int = 0) -> tuple[int, ...]:
    """Every item of a list is a ``want`` (numbers finite), and the list's shape.

    Only a list of numbers may nest (a matrix: ``input``, ``weight``), and
    only as an array nests: every row a list of the same shape, never a
    number beside a list (numpy would refuse it later, with a traceback).
    """
    if depth > 3:
        raise ScenarioError(f"{path}: {where} is nested too deeply")
    rows = [i for i, x in enumerate(v) if isinstance(x, list)]
    if rows and want is NUM and nested:
        if len(rows) != len(v):
            i = next(i for i, x in enumerate(v) if not isinstance(x, list))
            raise ScenarioError(f"{path}: {where} mixes numbers and lists: item {i + 1} is "
                                f"{v[i]!r}, item {rows[0] + 1} a list")
        shapes = [_check_items(x, want, where, path, nested, depth + 1) for x in v]
        for i, sh in enumerate(shapes):
            if sh != shapes[0]:
                raise ScenarioError(f"{path}: {where} is not rectangular: item {i + 1} has "
                                    f"shape {list(sh)}, item 1 {list(shapes[0])}")
        return (len(v), *shapes[0])
    for i, x in enumerate(v):
        good = isinstance(x, want) and not (isinstance(x, bool) and want in (int, NUM))
        if good and want is NUM and not math.isfinite(x):
            good = False
        if not good:
            tname = "a finite number" if want is NUM else want.__name__
            raise ScenarioError(f"{path}: {where} item {i + 1} must be {tname}, got {x!r}")
    return (len(v),)


class Unwritable(ValueError):
    """A value no scenario file can hold; the message says where it sits."""


def check_args(**given: Any) -> None:
    """The Python-built scenario's arguments of the wrong kind, named (a list as
    ``params`` was a TypeError from ``dict()``, ``rule=None`` a TOML writer's error)."""
    kinds = {"rule": (str, "a rule name (asyncnet.known() lists them)"),
             "name": (str, "a string"), "description": (str, "a string"),
             "seed": ((int, np.integer), "an integer")}
    if isinstance(given.get("params"), dict) and "name" in given["params"]:
        raise TypeError(f"params: 'name' picks the scheme: give it as rule= (it replaced "
                        f"rule {given.get('rule')!r} in the scenario's text)")
    for key, value in given.items():
        table = "rule" if key == "params" else key
        want, said = kinds.get(key, (dict, f"a dict (the [{table}] table)"))
        if key in ("params", "data", "analysis", "output", "cluster") and value is None:
            continue
        if not isinstance(value, want) or isinstance(value, bool):
            raise TypeError(f"{key} must be {said}, got {type(value).__name__} {value!r}"[:300])


def _unwritable(doc: Any, where: str = "") -> str:
    """Where in a scenario's tables a value TOML cannot hold sits (``[rule] eta``)."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            got = _unwritable(v, f"[{k}]" if not where else f"{where} {k}")
            if got:
                return got
        return ""
    if isinstance(doc, list):
        for i, v in enumerate(doc):
            got = _unwritable(v, f"{where}[{i}]")
            if got:
                return got
        return ""
    ok = isinstance(doc, (str, int, float, bool)) or doc.__class__.__module__ == "datetime"
    return "" if ok else f"{where} = {doc!r} ({type(doc).__name__})"


def _plain(v: Any) -> Any:
    """A TOML-writable value: numpy arrays and scalars as lists and numbers."""
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def to_toml(sc: Any) -> str:
    """Write a scenario built in Python as a scenario file's text.

    Parameters
    ----------
    sc:
        The scenario.

    Returns
    -------
    TOML text that :func:`asyncnet.scenario.load` reads back to the same scenario.

    Raises
    ------
    Unwritable
        naming where a value no TOML file can hold sits.
    """
    import tomli_w
    head = _plain({"name": sc.name, "seed": sc.seed, "duration": sc.duration})
    if sc.description:
        head["description"] = sc.description
    nodes = [{"name": str(n), **_plain(dict(a))} for n, a in sc.graph.nodes(data=True)]
    # a per-neuron graph keeps a 1 x 1 weight as a number: the file has rows
    edges = [{"pre": str(u), "post": str(v), **_plain(
        {**a, "weight": [[a["weight"]]]} if type(a.get("weight")) is float else dict(a))}
        for u, v, a in sc.graph.edges(data=True)]
    network: dict[str, Any] = {"nodes": nodes, "edges": edges}
    if "speed" in sc.graph.graph:
        network["speed"] = sc.graph.graph["speed"]
    doc: dict[str, Any] = {"scenario": head, "network": network,
                           "rule": {"name": sc.rule_name, **_plain(sc.rule_params)}}
    for section in ("data", "analysis", "output", "cluster"):
        table = getattr(sc, section)
        if table:
            doc[section] = _plain(table)
    try:
        return tomli_w.dumps(doc)
    except TypeError as e:
        raise Unwritable(_unwritable(doc) or str(e)) from None
