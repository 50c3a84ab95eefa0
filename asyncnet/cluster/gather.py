"""Analyses of a distributed run: probes see every agent, monitors are merged.

The coordinator attaches the scenario's analyses (``simulation.attach_analyses``)
to a ``ProbeEngine``: a stand-in engine with every agent of the network, whose
models are fetched from the workers when a probe reads them. A probe at time
``t`` runs after every event before ``t`` and before any at ``t`` — exactly
as in-process — because ``t`` is made a window boundary and the workers wait
there while the probe reads.

Per-wake monitors cannot be moved like that (they run inside the workers'
engines): an analysis with monitors declares its worker side (``share``) and
how the parts merge (``merge``), see :mod:`asyncnet.analysis`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..messages import to_quanta


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
        self._pos = {n: i for i, n in enumerate(eng0.names)}
        self._burst = 1

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
            # a probe that reads agent after agent (e.g. every agent at the end)
            # would cost a round trip each: each miss in a row also fetches the
            # next agents by name, twice as many as the last time
            names, i = [name], self._pos[name] + 1
            while len(names) < self._burst and i < len(self.names):
                if self.names[i] not in self._cache:
                    names.append(self.names[i])
                i += 1
            self._burst *= 2
            for n, st in self._fetch(names).items():
                self._cache[n] = StateView(st)
            view = self._cache[name]
        return view

    def run_probe(self, fn: Callable, t: float) -> None:
        """Run one probe now (the workers wait at its instant)."""
        key = id(fn.__code__)
        want = [n for n in self._wanted.get(key, []) if n not in self._cache]
        if want:  # what this probe read last time, fetched in one round
            for n, st in self._fetch(want).items():
                self._cache[n] = StateView(st)
        self._read = []
        self._burst = 1
        fn(self, t)
        self._wanted[key] = sorted(set(self._wanted.get(key, [])) | set(self._read))

    def new_instant(self) -> None:
        """Forget fetched states: the agents have moved on."""
        self._cache = {}
