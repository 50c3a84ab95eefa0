"""Analyses of a distributed run: probes see every agent, monitors are merged.

The coordinator attaches the scenario's analyses (``simulation.attach_analyses``)
to a ``ProbeEngine``: a stand-in engine with every agent of the network, whose
models are fetched from the workers when a probe reads them. A probe at time
``t`` runs after every event before ``t`` and before any at ``t`` — exactly
as in-process — because ``t`` is made a window boundary and the workers wait
there while the probe reads.

Per-wake monitors cannot be moved like that (they run inside the workers'
engines), so each such analysis has a worker side (what an instant or a wake
contributes) and a merge rule here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..analyses import Settling, settling_monitor
from ..messages import to_quanta
from ..simulation import _attach_exactness


class StateView:
    """An agent's model as a probe sees it: its ``state()`` dict, also as attributes."""

    def __init__(self, state: dict):
        self._state = state

    def state(self) -> dict:
        """The state the agent's model exposed when the probe ran."""
        return self._state

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["_state"][key]
        except KeyError:
            raise AttributeError(f"a probe read {key!r}, which the agent's state() does "
                                 f"not expose (distributed probes see only state())") from None


class _Agent:
    __slots__ = ("name", "_fetch")

    def __init__(self, name: str, fetch: Callable[[str], StateView]):
        self.name = name
        self._fetch = fetch

    @property
    def model(self) -> StateView:
        return self._fetch(self.name)


class ProbeEngine:
    """What ``attach_analyses`` needs of an engine, for the coordinator.

    ``fetch(names) -> {name: state}`` asks the workers for agent states;
    ``count()`` is the number of messages delivered so far.
    """

    def __init__(self, eng0, fetch: Callable[[list[str]], dict], count: Callable[[], int]):
        self.rule, self.net, self.links, self.names = eng0.rule, eng0.net, eng0.links, eng0.names
        self.monitors: list = []
        self.sinks: list = []
        self.probes: list[tuple[int, int, float, Callable]] = []
        self._read: list[str] = []
        self._fetch, self._count = fetch, count
        self._cache: dict[str, StateView] = {}
        self._wanted: dict[int, list[str]] = {}  # per probe function: agents it read last
        self.agents = {n: _Agent(n, self._one) for n in eng0.names}

    def at(self, t: float, fn: Callable) -> None:
        """Register a probe, like ``Engine.at``."""
        self.probes.append((to_quanta(t), len(self.probes), t, fn))

    def messages(self) -> int:
        """Messages delivered so far (before the current probe's instant)."""
        return self._count()

    def _one(self, name: str) -> StateView:
        view = self._cache.get(name)
        if view is None:
            self._read.append(name)
            view = self._cache[name] = StateView(self._fetch([name])[name])
        return view

    def run_probe(self, fn: Callable, t: float) -> None:
        """Run one probe now (the workers wait at its instant)."""
        key = id(fn.__code__)
        want = [n for n in self._wanted.get(key, []) if n not in self._cache]
        if want:  # what this probe read last time, fetched in one round
            for n, st in self._fetch(want).items():
                self._cache[n] = StateView(st)
        self._read = []
        fn(self, t)
        self._wanted[key] = sorted(set(self._wanted.get(key, [])) | set(self._read))

    def new_instant(self) -> None:
        """Forget fetched states: the agents have moved on."""
        self._cache = {}


# -- per-wake monitors: the worker side and the merge ----------------------
def attach_worker_monitors(kind: str, eng, net, stream, sc) -> Callable[[], dict]:
    """On a worker: attach what the analysis ``kind`` observes per wake;
    return the function giving this partition's share at the end."""
    if hasattr(eng.rule, "attach"):  # a scheme's own analyses: probes only, nothing here
        return dict
    if kind == "exactness":
        exact = _attach_exactness(eng, net, stream)
        return lambda: {"exact_errs": [[k[0], k[1], v] for k, v in exact.errs.items()]}
    if kind == "settling":
        rows: list[list] = []
        grads = Settling(net, stream, sc.analysis, eng.rule).grads
        flush = settling_monitor(eng, grads, lambda t, errs, fires, _m: rows.append(
            [t, errs, fires]))

        def share() -> dict:
            flush()
            return {"settling": rows}

        return share
    return dict


def merge_monitors(kind: str, result: Callable, shares: list[dict],
                   through: Callable[[int], int]) -> None:
    """On the coordinator: fold the workers' shares into the analysis' accumulator.

    ``through(t)`` is the number of messages delivered up to and including ``t``.
    """
    if kind == "exactness":
        for r in shares:
            for lay, frame, err in r.get("exact_errs", []):
                k = (lay, frame)
                result.errs[k] = max(result.errs.get(k, 0.0), err)
    elif kind == "settling":
        merged: dict[int, list] = {}
        for r in shares:
            for t, errs, fires in r.get("settling", []):
                cur = merged.setdefault(t, [{}, 0])
                cur[0].update(errs)
                cur[1] += fires
        s = result.settling
        for t in sorted(merged):
            s.close(t, merged[t][0], merged[t][1], through(t))


MERGED = ("exactness", "settling")
"""Analyses with per-wake monitors that distributed runs support."""
