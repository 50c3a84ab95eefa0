"""Divergence: a run whose state blew up is a result, not a success.

Attached to every run by the pipeline. At the end of the run (a probe just
before ``duration``, so it works on every backend) every agent's state is
read: an agent that recorded the instant its own state diverged (a state key
``diverged_at`` ≥ 0, as ``stlp`` agents keep) is reported with that
simulated time; otherwise the first agent (by id) with a non-finite value or
a value above ``LIMIT`` in magnitude, "found at the end". The CLI turns a
divergence into exit status 3.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..ids import is_source
from ..messages import QUANTA
from . import Analysis, Context

LIMIT = 1e12
"""A state value above this in magnitude counts as diverged."""


def diverged(states: dict[str, dict]) -> dict | None:
    """The divergence found in ``{agent: state}``, or ``None``.

    Parameters
    ----------
    states:
        Every agent's ``state()``.

    Returns
    -------
    ``{"agent", "key", "t", "how", "limit"}`` (``t`` is ``None`` when only the
    end state shows it), or ``None``.
    """
    first = None
    for name in sorted(states):
        if "diverged_at" not in states[name]:  # (most agents: no call made for them)
            continue
        t = np.asarray(states[name]["diverged_at"], dtype=float).ravel()
        if t.size and t[0] >= 0 and (first is None or t[0] < first[1]):
            first = (name, float(t[0]))
    if first is not None:
        return {"agent": first[0], "key": "diverged_at", "t": first[1], "limit": LIMIT,
                "how": "its state passed the limit or became non-finite"}
    if _all_within(states):  # the usual end: one numpy pass, not two calls a value
        return None
    for name in sorted(states):
        for key, val in states[name].items():
            arr = np.asarray(val)
            if arr.dtype.kind not in "fc" or not arr.size:
                continue
            bad = not bool(np.all(np.isfinite(arr)))
            if bad or float(np.max(np.abs(arr))) > LIMIT:
                return {"agent": name, "key": key, "t": None, "limit": LIMIT,
                        "how": f"{key} {'not finite' if bad else 'above the limit'} at the end"}
    return None


_CHUNK = 1 << 16
"""Values checked at once: an array this large alone, smaller ones joined up to it
(joining every value copied the whole state: 74 B a weight more at the peak)."""


def _all_within(states: dict[str, dict]) -> bool:
    """Whether every float or complex value in ``states`` is finite and within
    :data:`LIMIT` in magnitude.

    Two numpy calls a value cost ~6 µs: 1.8 s for the 29,000 agents of a
    per-neuron net whose states came over the wire. Here Python floats are
    checked as floats and small arrays are joined and checked together; the
    values :func:`diverged` would look at are exactly these (float or complex,
    any shape), so "all within" here means it finds nothing.
    """
    floats: list[float] = []
    small: list[np.ndarray] = []
    joined = 0
    for state in states.values():
        for val in state.values():
            if type(val) is float:
                floats.append(val)
                continue
            arr = val
            if type(arr) is not np.ndarray or arr.dtype.kind != "f":
                arr = np.asarray(val)  # as diverged() takes it (ints, lists, scalars)
                if arr.dtype.kind == "c":
                    arr = np.abs(arr)
                elif arr.dtype.kind != "f":
                    continue
            if not arr.size:
                continue
            if arr.size >= _CHUNK:
                if not _within(arr):
                    return False
                continue
            small.append(arr.ravel())
            joined += arr.size
            if joined >= _CHUNK:
                if not _within(np.concatenate(small, dtype=float, casting="same_kind")):
                    return False
                small, joined = [], 0
    if floats:
        small.append(np.array(floats))
    return not small or _within(np.concatenate(small, dtype=float, casting="same_kind"))


def _within(values: np.ndarray) -> bool:
    """Whether every value is within ±:data:`LIMIT` (a NaN is not: both compare false);
    two reductions, no array made."""
    return bool(values.min() >= -LIMIT and values.max() <= LIMIT)


class Divergence(Analysis):
    """``diverged``: the first agent whose state blew up (absent when none did)."""

    key = "diverged"

    def attach(self, ctx: Context) -> Callable[[], dict | None]:
        """A probe at the last instant of the run reads every agent."""
        got: dict = {}
        names = [n for n in ctx.engine.names if not is_source(n)]
        t_end = max(0.0, ctx.scenario.duration - 1.0 / QUANTA)

        def probe(engine, t: float) -> None:
            got["states"] = {n: engine.agents[n].model.state() for n in names}

        ctx.engine.at(t_end, probe)
        return lambda: diverged(got["states"]) if "states" in got else None

    def report(self, dv: dict | None) -> list[str]:
        """One line when the run diverged."""
        if not dv:
            return []
        where = f"at t={dv['t']:g}" if dv["t"] is not None else "(found at the end)"
        return [f"DIVERGED  {dv['agent']} {where}: {dv['how']} (limit {dv['limit']:g})"]
