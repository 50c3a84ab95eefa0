"""The analysis interface: what an analysis computes on a run, and how it merges.

An analysis is attached to a run before it starts and produces one entry of
the summary. It sees the run only through a :class:`Context`: the engine
(in-process, or the coordinator's stand-in whose probes fetch states from
the workers), the network, the data stream, the scenario's ``[analysis]``
table, the scheme object, and ``rebuild`` for analyses that need extra,
unlogged runs of their own.

- ``attach(ctx) -> result()``: register probes (``ctx.engine.at``) and/or
  per-wake monitors (``ctx.engine.monitors``); ``result()`` gives the
  summary entry at the end.
- Monitors run inside the workers of a distributed run, so an analysis with
  monitors also declares ``share(ctx) -> part()`` (what one partition
  observed) and ``merge(result, shares, through)`` (fold the parts into the
  accumulator of the coordinator's ``result``). Probes need nothing: the
  coordinator runs them against states fetched at the probe's instant.
- ``report(value) -> lines``: how the entry prints.

The backends know no analysis by name; schemes list the analyses they
support (``Scheme.analyses``: kind -> analysis classes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class AnalysisError(ValueError):
    """An analysis does not fit the scenario (wrong stream, wrong network)."""


@dataclass
class Context:
    """What an analysis may use of a run.

    Parameters
    ----------
    engine:
        The engine (or the cluster coordinator's probe engine).
    net:
        The network.
    stream:
        The data stream.
    scenario:
        The scenario (its ``analysis`` table holds the analysis' options).
    rule:
        The scheme object.
    rebuild:
        ``rebuild(rule_params=None, hold=None) -> (engine, net, stream)``: a
        fresh in-process engine for extra unlogged runs (sweeps, checks).
    progress:
        Progress callback for long extra runs, or ``None``.
    """

    engine: Any
    net: Any
    stream: Any
    scenario: Any
    rule: Any
    rebuild: Callable[..., tuple]
    progress: Callable[[float], None] | None = None

    @property
    def params(self) -> dict:
        """The scenario's ``[analysis]`` table."""
        return self.scenario.analysis


class Analysis:
    """Base class: one summary entry computed from a run.

    Subclasses set ``key`` (the summary key) and implement ``attach``.
    """

    key: str = ""
    monitors: bool = False
    """Whether ``attach`` adds per-wake monitors (then ``share``/``merge`` are needed)."""
    options: tuple[str, ...] = ()
    """The ``[analysis]`` keys (besides ``kind``) this analysis reads."""
    counts_per_instant: bool = False
    """Whether ``merge`` needs ``through(t)``, the messages delivered up to ``t``."""

    def attach(self, ctx: Context) -> Callable[[], Any]:
        """Register probes/monitors; return ``result()``."""
        raise NotImplementedError

    def share(self, ctx: Context) -> Callable[[], dict]:
        """On a cluster worker: attach the monitors; return this partition's part."""
        raise NotImplementedError

    def merge(self, result: Callable[[], Any], shares: list[dict],
              through: Callable[[int], int]) -> None:
        """On the coordinator: fold the workers' parts into ``result``'s accumulator."""
        raise NotImplementedError

    def report(self, value: Any) -> list[str]:
        """Summary lines for the human-readable report."""
        return []
