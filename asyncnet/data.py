"""Input and target streams: what the data sources send, as functions of time.

A stream gives, for a population and an arrival time ``t``, the value that
population is shown then. Frames are indexed by ``floor(t / hold)``: a
pattern is held for ``hold`` units of time, then the next one comes.

Batches (``batch = B``, kinds ``piecewise`` and ``xor``): a frame shows
``B`` patterns at once, the rows of a ``(B, n)`` value — frame ``f`` shows
the schedule's entries ``f·B … f·B + B − 1``. The schedule is drawn exactly
as for ``B = 1``, only ``B`` times longer, so with ``B = 1`` nothing changes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from .network import agent_rng, machine_memory


class DataError(ValueError):
    """The data description does not fit the network."""


XOR_INPUTS = np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
XOR_TARGETS = np.array([[-1.0], [1.0], [1.0], [-1.0]])


class OnePopulationFeed:
    """What every stream offers analyses: its input and output as populations.

    A stream feeding one input and one output population (``input_node``,
    ``output_node``); :class:`LayerFeed` gives the same interface for a
    layer written as several populations.
    """

    input_node: str
    output_node: str

    def input_map(self, u: np.ndarray) -> dict[str, np.ndarray]:
        """An input vector as ``{population: its part}``."""
        return {self.input_node: u}

    def target_map(self, y: np.ndarray) -> dict[str, np.ndarray]:
        """A target vector as ``{population: its part}``."""
        return {self.output_node: y}

    def read_output(self, engine, key: str = "state") -> np.ndarray | None:
        """The output layer's ``key`` as one vector (``None`` if not on this engine)."""
        agent = engine.agents.get(self.output_node)
        return None if agent is None else np.array(agent.model.state()[key])


@dataclass
class Stream(OnePopulationFeed):
    """Patterns ``(inputs[i], targets[i])`` shown in the order ``schedule``.

    ``frame(t)`` is the index into ``schedule`` shown at time ``t``; a
    sinusoid stream overrides ``value`` to vary continuously instead.
    """

    kind: str
    inputs: np.ndarray  # (n_patterns, n_in)
    targets: np.ndarray  # (n_patterns, n_out)
    hold: float = 1.0
    schedule: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=int))
    input_node: str = ""
    output_node: str = ""
    period: float = 0.0  # sinusoid only
    lag: float = 0.0  # sinusoid only
    batch: int = 1  # patterns shown at once (rows of a (batch, n) value); 1 = vectors

    def frame(self, t: float) -> int:
        """Which frame is shown at time ``t``."""
        return int(math.floor(t / self.hold + 1e-12))

    def pattern(self, t: float) -> int:
        """Which pattern is shown at time ``t`` (unbatched streams)."""
        return int(self.schedule[self.frame(t) % len(self.schedule)])

    def rows(self, t: float) -> np.ndarray:
        """The ``batch`` patterns shown at time ``t`` (schedule entries ``f·B …``)."""
        f = self.frame(t) % (len(self.schedule) // self.batch)
        return self.schedule[f * self.batch:(f + 1) * self.batch]

    def value(self, node: str, t: float) -> np.ndarray | None:
        """The control value population ``node`` is shown at time ``t``."""
        if self.kind == "sinusoid":
            return self._sinusoid(node, t)
        if self.kind == "latch":
            return self._latch(node, t)
        p = self.pattern(t) if self.batch == 1 else self.rows(t)
        if node == self.input_node:
            return self.inputs[p]
        if node == self.output_node:
            return self.targets[p]
        return None

    def _sinusoid(self, node: str, t: float) -> np.ndarray | None:
        if node == self.input_node:
            n = self.inputs.shape[1]
            return np.sin(2 * np.pi * t / self.period + 2 * np.pi * np.arange(n) / n)
        if node == self.output_node:
            n = self.targets.shape[1]
            ph = 2 * np.pi * (t - self.lag) / self.period
            return 0.8 * np.sin(ph + 2 * np.pi * np.arange(n) / max(n, 2) + np.pi / 4)
        return None

    def _latch(self, node: str, t: float) -> np.ndarray | None:
        # pulse k starts at k * period and lasts ``hold``; the target is the
        # sign of the latest pulse, held until the next one: a memory task
        k = min(int(math.floor(t / self.period + 1e-12)), len(self.inputs) - 1)
        if node == self.input_node:
            on = t - k * self.period < self.hold - 1e-12
            return self.inputs[k] if on else np.zeros_like(self.inputs[k])
        if node == self.output_node:
            return self.targets[k]
        return None

    def sources(self) -> dict:
        """``{population: t -> value}`` for the engine's data sources."""
        return {n: (lambda t, n=n: self.value(n, t))
                for n in (self.input_node, self.output_node)}

    def frame_value(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """The (input, target) pair shown at time ``t``."""
        return self.value(self.input_node, t), self.value(self.output_node, t)


class LayerFeed:
    """A stream whose input (or output) layer is written as several populations.

    The stream itself is made for the whole layer (``n`` values); each
    population gets its slice, in the order given. So a layer of ``n``
    neurons gets the same numbers whether it is one population of size
    ``n`` or ``n`` populations of size 1 (a per-neuron network).
    """

    def __init__(self, stream, inputs: list[tuple[str, int]], outputs: list[tuple[str, int]]):
        self.stream = stream
        self.parts: dict[str, tuple[str, slice]] = {}
        for whole, layer in ((stream.input_node, inputs), (stream.output_node, outputs)):
            pos = 0
            for name, size in layer:
                self.parts[name] = (whole, slice(pos, pos + size))
                pos += size
        self.input_nodes = [n for n, _ in inputs]
        self.output_nodes = [n for n, _ in outputs]

    def __getattr__(self, key: str):
        return getattr(self.stream, key)

    def value(self, node: str, t: float) -> np.ndarray | None:
        """Population ``node``'s part of the layer's value at ``t``."""
        if node not in self.parts:
            return self.stream.value(node, t)
        whole, sl = self.parts[node]
        v = self.stream.value(whole, t)
        return None if v is None else np.asarray(v)[..., sl]

    def sources(self) -> dict:
        """One data source per population of the input and output layers."""
        return {n: (lambda t, n=n: self.value(n, t)) for n in self.parts}

    def frame_value(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """The whole layers' (input, target) pair at ``t``."""
        return self.stream.frame_value(t)

    def _split(self, v: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        return {n: np.asarray(v)[..., self.parts[n][1]] for n in names}

    def input_map(self, u: np.ndarray) -> dict[str, np.ndarray]:
        """An input vector as ``{population: its part}``."""
        return self._split(u, self.input_nodes)

    def target_map(self, y: np.ndarray) -> dict[str, np.ndarray]:
        """A target vector as ``{population: its part}``."""
        return self._split(y, self.output_nodes)

    def read_output(self, engine, key: str = "state") -> np.ndarray | None:
        """The output populations' ``key``, concatenated in layer order."""
        if any(n not in engine.agents for n in self.output_nodes):
            return None
        return np.concatenate([np.atleast_1d(np.array(engine.agents[n].model.state()[key]))
                               for n in self.output_nodes], axis=-1)


def natural_order(names: list[str]) -> list[str]:
    """Names sorted with their numbers as numbers (``l0_2`` before ``l0_10``)."""
    return sorted(names, key=lambda s: [int(p) if p.isdigit() else p
                                        for p in re.split(r"(\d+)", s)])


MAX_FRAMES = 10_000_000
"""The most frames a data schedule may have (it is built before the run)."""
MAX_BATCH = 65_536
"""The most patterns one frame may show at once (``[data] batch``)."""

KIND_KEYS: dict[str, set[str]] = {
    "constant": {"input", "target", "hold"},
    "piecewise": {"hold", "patterns", "order", "batch"},
    "xor": {"hold", "order", "target_scale", "batch"},
    "sinusoid": {"period", "lag", "hold"},
    "latch": {"hold", "period", "target_scale"},
}
"""The ``[data]`` keys each generic kind uses (others are refused, not ignored)."""


def check_kind_keys(kind: str, keys: set[str]) -> None:
    """Refuse ``[data]`` keys that a generic stream kind would ignore.

    Parameters
    ----------
    kind:
        The data kind.
    keys:
        The ``[data]`` keys given (besides ``kind`` and the node names).

    Raises
    ------
    DataError
        The kind is unknown, or a key does not apply to it.
    """
    if kind not in KIND_KEYS:
        raise DataError(f"unknown data kind {kind!r} (known: {', '.join(KIND_KEYS)})")
    extra = sorted(keys - KIND_KEYS[kind])
    if extra:
        raise DataError(f"key {extra[0]!r} does not apply to data kind {kind!r} "
                        f"(its keys: {', '.join(sorted(KIND_KEYS[kind]))})")


def make_stream(kind: str, *, n_in: int, n_out: int, input_node: str, output_node: str,
                seed: int, duration: float, hold: float = 1.0, patterns: int = 4,
                order: str = "shuffle", input: list | None = None,
                target: list | None = None, period: float = 20.0, lag: float = 0.0,
                target_scale: float = 0.9, batch: int = 1) -> Stream:
    """Build a stream of one of the kinds: constant, piecewise, xor, sinusoid, latch.

    ``latch``: a pulse of ±1 (sign drawn from the seed) for ``hold`` units every
    ``period`` units; the target is ``target_scale`` times the latest pulse's sign.
    ``batch``: patterns shown at once (``piecewise`` and ``xor``; see the module).
    """
    if hold <= 0:
        raise DataError(f"hold must be positive, got {hold}")
    if not 1 <= batch <= MAX_BATCH:
        raise DataError(f"batch must be between 1 and {MAX_BATCH:,}, got {batch}")
    if batch > 1 and kind not in ("piecewise", "xor"):
        raise DataError(f"batch applies to data kinds piecewise and xor, not {kind!r}")
    if duration / hold * batch > MAX_FRAMES:
        per = f" of {batch} patterns" if batch > 1 else ""
        raise DataError(f"the data schedule would have {duration / hold:.3g} frames{per} "
                        f"(duration / hold); at most {MAX_FRAMES:,} patterns are supported")
    rng = agent_rng(seed, "data")
    n_frames = (int(math.ceil(duration / hold)) + 2) * batch
    if kind == "constant":
        u = rng.standard_normal((1, n_in)) if input is None else np.array([input], float)
        y = rng.uniform(-0.8, 0.8, (1, n_out)) if target is None else np.array([target], float)
        _check(u, n_in, "input", input_node)
        _check(y, n_out, "target", output_node)
        return Stream(kind, u, y, hold, np.zeros(1, dtype=int), input_node, output_node)
    if kind == "piecewise":
        if patterns < 1:
            raise DataError("patterns must be at least 1")
        _fits(patterns, n_in + n_out, "piecewise: patterns")
        u = rng.standard_normal((patterns, n_in))
        y = rng.uniform(-0.8, 0.8, (patterns, n_out))
        sched = _order(order, patterns, n_frames, rng)
        return Stream(kind, u, y, hold, sched, input_node, output_node, batch=batch)
    if kind == "xor":
        _check(XOR_INPUTS, n_in, "input", input_node)
        _check(XOR_TARGETS, n_out, "target", output_node)
        sched = _order(order, 4, n_frames, rng)
        return Stream(kind, XOR_INPUTS.copy(), XOR_TARGETS * target_scale, hold, sched,
                      input_node, output_node, batch=batch)
    if kind == "sinusoid":
        if period <= 0:
            raise DataError(f"period must be positive, got {period}")
        return Stream(kind, np.zeros((1, n_in)), np.zeros((1, n_out)), hold,
                      np.zeros(1, dtype=int), input_node, output_node, period, lag)
    if kind == "latch":
        if period <= 0 or not hold < period:
            raise DataError(f"latch needs 0 < hold < period, got hold={hold}, period={period}")
        pulses = int(math.ceil(duration / period)) + 2
        _fits(pulses, n_in + n_out, "latch: pulses (duration / period)")
        signs = rng.choice([-1.0, 1.0], pulses)
        return Stream(kind, signs[:, None] * np.ones((1, n_in)),
                      target_scale * signs[:, None] * np.ones((1, n_out)), hold,
                      np.arange(len(signs)), input_node, output_node, period)
    raise DataError(f"unknown data kind {kind!r} "
                    f"(known: constant, piecewise, xor, sinusoid, latch)")


def _fits(rows: int, width: int, what: str) -> None:
    """Refuse a table of patterns (rows × the inputs and targets, float64) larger
    than half this machine's memory, before numpy tries to allocate it."""
    need, have = 8 * rows * width, machine_memory()
    if have and 2 * need > have:
        raise DataError(f"{what}: {rows:,} rows of {width:,} input and target values, "
                        f"{need / 2**30:.3g} GiB; this machine has {have / 2**30:.3g} GiB")


def _order(order: str, n: int, n_frames: int, rng: np.random.Generator) -> np.ndarray:
    if order == "cycle":
        return np.arange(n_frames) % n
    if order == "shuffle":  # every pattern once per epoch, each epoch reshuffled
        epochs = n_frames // n + 1
        return np.concatenate([rng.permutation(n) for _ in range(epochs)])[:n_frames]
    if order == "random":
        return rng.integers(0, n, n_frames)
    raise DataError(f"unknown order {order!r} (known: cycle, shuffle, random)")


def _check(a: np.ndarray, n: int, what: str, node: str) -> None:
    if a.shape[1] != n:
        raise DataError(f"{what} patterns have {a.shape[1]} values but population "
                        f"{node!r} has size {n}")
