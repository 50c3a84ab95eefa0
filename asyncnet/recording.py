"""What a run records and gives back: :class:`Recorder` and :class:`Result`.

A :class:`Recorder` samples agents' state variables at fixed simulated
times (probes, so the samples are the same on every backend); a
:class:`Result` holds a run's summary, its recordings and its final state.
:func:`asyncnet.run` makes both (:mod:`asyncnet.runner`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .agents import Source
from .analysis import Context
from .engine import Engine
from .ids import source_id
from .messages import QUANTA, to_quanta
from .network import machine_memory
from .scenario import ScenarioError


@dataclass
class Recorder:
    """Sample some agents' state variables every ``period`` of simulated time.

    A sample at time ``t`` is the state after every event before ``t`` and
    before any at ``t`` (a probe), so it is the same on every backend.

    Parameters
    ----------
    agents:
        ``{agent id: [variable, ...]}``; the variables are keys of the
        agent's ``state()`` (``"state"``, ``"delta"``, ``"weight"``, ...).
    period:
        Time between samples (default 1.0).
    start:
        First sample time (default: ``period``).
    """

    agents: dict[str, list[str]]
    period: float = 1.0
    start: float | None = None
    times: list[float] = field(default_factory=list)
    data: dict[str, dict[str, list]] = field(default_factory=dict)

    def attach(self, ctx: Context) -> None:
        """Register the sampling probes on a run (called by the pipeline).

        Parameters
        ----------
        ctx:
            The run's context (engine, scenario).
        """
        self.agents = recorded_variables(self.agents)
        number = (int, float, np.integer, np.floating)
        if not (isinstance(self.period, number) and not isinstance(self.period, bool)
                and math.isfinite(self.period) and self.period > 0):
            raise ScenarioError(f"recorder: period must be a positive number, "
                                f"got {self.period!r}")
        self.period = float(self.period) if isinstance(self.period, np.floating) else \
            int(self.period) if isinstance(self.period, np.integer) else self.period
        if to_quanta(self.period) < 1:  # 3e8 probes at times the engine cannot hold
            raise ScenarioError(f"recorder: period {self.period:g} is below the time "
                                f"resolution ({1 / QUANTA:g})")
        if self.start is not None and not (
                isinstance(self.start, number) and not isinstance(self.start, bool)
                and math.isfinite(self.start) and self.start >= 0):
            raise ScenarioError(f"recorder: start must be a time at or after 0, "
                                f"got {self.start!r}"[:200])
        # a recorder used again starts empty (a second run's samples went after the first's)
        self.times.clear()
        self.data.clear()
        names = set(ctx.engine.names)
        for agent in self.agents:
            if agent not in names:
                raise ScenarioError(f"recorder: no agent {agent!r} in this run "
                                    f"(agents are populations, 'pre->post' synapses "
                                    f"and 'src:pop' sources)")
        self._refuse_unknown_variables(ctx.engine)
        first = self.period if self.start is None else self.start
        n = int(math.floor((ctx.scenario.duration - first) / self.period - 1e-9)) + 1
        end = to_quanta(ctx.scenario.duration)
        while n > 0 and to_quanta(first + (n - 1) * self.period) >= end:
            n -= 1  # a sample that rounds to the end instant is never taken
        if n < 1:  # samples at first, first + period, ... before the end: none
            what = f"period {self.period:g}" if self.start is None else f"start {first:g}"
            raise ScenarioError(f"recorder: {what} is not shorter than the run "
                                f"({ctx.scenario.duration:g}): no sample would be taken")
        # a lower bound (≈ 1.8 KB a sample measured): period=1e-5 over 4000 units asked for
        # 4e8 probes and filled the memory before the first sample
        need, have = n * (150 + 120 * sum(map(len, self.agents.values()))), machine_memory()
        if have and need > have:
            raise ScenarioError(f"recorder: {n:,} samples (period {self.period:g} over "
                                f"{ctx.scenario.duration:g}) need over {need / 2**30:.3g} GiB, "
                                f"this machine has {have / 2**30:.3g} GiB: a longer period")
        for k in range(n):
            ctx.engine.at(first + k * self.period, self._sample)

    def _refuse_unknown_variables(self, engine: Any) -> None:
        """Refuse before the run a variable the first sample would refuse mid-run,
        where an agent's variables are known now: in this process (a distributed
        run's models live in the workers), for a data source (no state) or an
        agent with none (a source's data adds keys later) whose scheme declares
        ``fixed_state_keys`` (GradEP's neurons gain and lose ``state``)."""
        if not isinstance(engine, Engine):
            return
        fixed = getattr(engine.rule, "fixed_state_keys", False) is True
        for agent, keys in self.agents.items():
            model = engine.agents[agent].model
            if not (isinstance(model, Source)
                    or fixed and source_id(agent) not in engine.agents):
                continue
            have = model.state()
            for key in keys:
                if key not in have:
                    raise ScenarioError(f"recorder: agent {agent!r} has no variable {key!r} "
                                        f"(it has: {', '.join(sorted(have)) or 'none'})")

    def _sample(self, engine, t: float) -> None:
        self.times.append(t)
        for agent, keys in self.agents.items():
            st = engine.agents[agent].model.state()
            slot = self.data.setdefault(agent, {})
            for key in keys:
                if key in st:
                    value = np.array(st[key], dtype=float)
                elif source_id(agent) in engine.agents:
                    # fed by a data source: its data's keys (an output's target, which
                    # arrives at t=1) appear later; a sample before them is NaN
                    value = None
                else:
                    raise ScenarioError(f"recorder: agent {agent!r} has no variable {key!r} "
                                        f"(it has: {', '.join(sorted(st)) or 'none'})")
                slot.setdefault(key, []).append(value)

    def arrays(self) -> dict[str, dict[str, np.ndarray]]:
        """The samples so far.

        Returns
        -------
        ``{agent: {variable: array (samples, ...)}}``. A variable that
        gained a batch axis during the run (a state sampled before the
        first batch arrived: one value every row shares) has its earlier
        samples repeated along it; one whose shape changed otherwise is an
        object array of its samples. A variable that came with the agent's
        data (an output's ``target``) is NaN in the samples before it arrived.
        """
        for a, d in self.data.items():
            for k, v in d.items():
                if v and all(x is None for x in v):  # not its data's key either: a typo
                    raise ScenarioError(f"recorder: agent {a!r} had no variable {k!r} at any "
                                        f"sample (asyncnet inspect LOG --node {a} lists them)")
        return {a: {k: stack_samples(v) for k, v in d.items()} for a, d in self.data.items()}


def stack_samples(samples: list[np.ndarray]) -> np.ndarray:
    """One variable's samples as one array ``(samples, ...)``.

    Parameters
    ----------
    samples:
        the samples, in time order (``None``: the variable did not exist yet).

    Returns
    -------
    Stacked where they share a shape; the last shape where every sample
    broadcasts to it (a batch axis that appeared: before it, every row
    held the same value); else an object array, one sample an entry.
    """
    if any(s is None for s in samples):  # before the variable existed (data not yet in)
        shape = next(s.shape for s in reversed(samples) if s is not None)
        samples = [np.full(shape, np.nan) if s is None else s for s in samples]
    shapes = {s.shape for s in samples}
    if len(shapes) == 1:
        return np.stack(samples)
    last = samples[-1].shape
    try:
        return np.stack([np.broadcast_to(s, last) for s in samples])
    except ValueError:
        out = np.empty(len(samples), dtype=object)
        out[:] = samples
        return out


def recorder_for(record: Any, period: Any) -> Recorder | None:
    """The :class:`Recorder` that ``run(record=..., period=...)`` asks for, or ``None``.

    Parameters
    ----------
    record:
        ``{agent: [variable, ...]}``, a :class:`Recorder` or ``None``.
    period:
        the sampling period of a ``record`` dict (``None``: 1).

    Returns
    -------
    The recorder; ``None`` if nothing is recorded. A :class:`ScenarioError` for a
    ``period`` that would be ignored (it was, silently): with no ``record``, or
    with a :class:`Recorder`, which has its own.
    """
    if record is not None and not isinstance(record, Recorder):
        return Recorder(record, period=1.0 if period is None else period)
    if period is not None:
        raise ScenarioError(
            f"period={period!r} given but nothing to record (give record={{agent: "
            f"[variable, ...]}} too)" if record is None else
            f"period={period!r} given with a Recorder, which has its own period (give "
            f"Recorder(..., period={period!r}))")
    return record


def recorded_variables(record: Any) -> dict[str, list[str]]:
    """``{agent: [variable, ...]}`` checked (one variable may be a bare name).

    Parameters
    ----------
    record:
        what a caller gave as ``record`` (or a :class:`Recorder`'s ``agents``).

    Returns
    -------
    The same as a dict of lists; a :class:`ScenarioError` naming what is wrong
    (a list of agents where a dict was meant, a variable that is no name).
    """
    if not isinstance(record, Mapping):
        raise ScenarioError(f"record must be {{agent: [variable, ...]}} or a Recorder, got "
                            f"{type(record).__name__} {record!r}"[:200])
    out = {}
    for agent, names in record.items():
        # a bare name is one variable: list("state") would be five one-letter ones
        names = [names] if isinstance(names, str) else \
            list(names) if isinstance(names, Iterable) else None
        if not isinstance(agent, str) or names is None \
                or not all(isinstance(v, str) for v in names):
            raise ScenarioError(f"record: {agent!r}: {{agent: [variable, ...]}} takes an "
                                f"agent's name and the names of its variables, got "
                                f"{record[agent]!r}"[:200])
        if not names:  # recorded nothing, and said nothing of it
            raise ScenarioError(f"record: {agent!r}: no variable named (e.g. "
                                f"{{{agent!r}: ['state']}})"[:200])
        out[agent] = list(dict.fromkeys(names))  # a name twice was sampled twice a time
    return out


@dataclass
class Result:
    """What a run gives back.

    Attributes
    ----------
    summary:
        The summary dict (what ``asyncnet run --json`` prints).
    log:
        The event log's path, or ``None``.
    times:
        The recorders' sample times.
    recorded:
        ``{agent: {variable: array (samples, ...)}}``.
    final:
        The final state, ``{"weight/h0->h1": array, ...}`` (the
        ``--save-state`` keys); :meth:`state` reads it per agent.
    """

    summary: dict
    log: str | None
    times: np.ndarray
    recorded: dict[str, dict[str, np.ndarray]]
    final: dict[str, np.ndarray]

    def state(self, agent: str) -> dict[str, np.ndarray]:
        """An agent's final state (the ``--save-state`` keys it exposes).

        Parameters
        ----------
        agent:
            An agent id (``"h1"``, ``"h0->h1"``).

        Returns
        -------
        ``{key: array}``, e.g. ``{"weight": ..., "grad": ...}`` for a synapse.
        """
        if not isinstance(agent, str):  # a graph's node 2 is the agent "2"
            raise TypeError(f"agent must be an agent id, a str ({str(agent)!r}), got "
                            f"{type(agent).__name__} {agent!r}"[:200])
        out = {k.split("/", 1)[0]: v for k, v in self.final.items()
               if k.split("/", 1)[1] == agent}
        if not out:
            have = sorted({k.split("/", 1)[1] for k in self.final})
            raise KeyError(f"no final state for agent {agent!r} (agents with one: "
                           f"{', '.join(have[:8])}{', ...' if len(have) > 8 else ''})")
        return out

    def to_dataframe(self):
        """The recordings as a long ``pandas.DataFrame``.

        Needs the ``export`` extra (pandas).

        Returns
        -------
        One row per sample and scalar entry, columns ``time, agent,
        variable, index, value`` (``index``: the entry's position in the
        flattened variable, e.g. ``i * n_pre + j`` for ``weight[i, j]``).
        """
        from .tables import need, recording_columns
        pd = need("pandas", "Result.to_dataframe")
        return pd.DataFrame(recording_columns(self.times, self.recorded))

    def export(self, path: str, format: str | None = None) -> str:
        """Write the recordings as a table file (the layout of :meth:`to_dataframe`).

        Parameters
        ----------
        path:
            The file to write.
        format:
            ``"parquet"`` or ``"csv"``; default: from the extension
            (``.parquet``/``.pq`` or ``.csv``; none: parquet). An extension
            naming no format (``.txt``), or the other one, is refused.
            Parquet needs pyarrow, both need pandas (the ``export`` extra).

        Returns
        -------
        ``path``.
        """
        from .outputs import write_whole
        from .tables import need, table_format
        if not isinstance(path, (str, os.PathLike)):  # None wrote a file named "None"
            raise TypeError(f"path must be a str or os.PathLike, got "
                            f"{type(path).__name__} {path!r}"[:200])
        fmt = table_format(path, format)
        from .outputs import check_apart  # the run's own log: export(res.log) overwrote it
        check_apart({"recordings": os.fspath(path)}, {"event log": self.log})
        df = self.to_dataframe()
        if fmt == "parquet":
            need("pyarrow", "Result.export to parquet")
        # whole or not at all: an interrupt or a full disk leaves a file there as it was
        write_whole(str(path), lambda f: df.to_csv(f, index=False) if fmt == "csv"
                    else df.to_parquet(f, index=False), "the recordings")
        return path
