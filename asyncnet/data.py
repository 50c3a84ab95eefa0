"""Input and target streams: what the data sources send, as functions of time.

A stream gives, for a population and an arrival time ``t``, the value that
population is shown then. Frames are indexed by ``floor(t / hold)``: a
pattern is held for ``hold`` units of time, then the next one comes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .network import agent_rng


class DataError(ValueError):
    """The data description does not fit the network."""


XOR_INPUTS = np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
XOR_TARGETS = np.array([[-1.0], [1.0], [1.0], [-1.0]])


@dataclass
class Stream:
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

    def frame(self, t: float) -> int:
        """Which frame is shown at time ``t``."""
        return int(math.floor(t / self.hold + 1e-12))

    def pattern(self, t: float) -> int:
        """Which pattern is shown at time ``t``."""
        return int(self.schedule[self.frame(t) % len(self.schedule)])

    def value(self, node: str, t: float) -> np.ndarray | None:
        """The control value population ``node`` is shown at time ``t``."""
        if self.kind == "sinusoid":
            return self._sinusoid(node, t)
        if self.kind == "latch":
            return self._latch(node, t)
        p = self.pattern(t)
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


def make_stream(kind: str, *, n_in: int, n_out: int, input_node: str, output_node: str,
                seed: int, duration: float, hold: float = 1.0, patterns: int = 4,
                order: str = "shuffle", input: list | None = None,
                target: list | None = None, period: float = 20.0, lag: float = 0.0,
                target_scale: float = 0.9) -> Stream:
    """Build a stream of one of the kinds: constant, piecewise, xor, sinusoid, latch.

    ``latch``: a pulse of ±1 (sign drawn from the seed) for ``hold`` units every
    ``period`` units; the target is ``target_scale`` times the latest pulse's sign.
    """
    if hold <= 0:
        raise DataError(f"hold must be positive, got {hold}")
    rng = agent_rng(seed, "data")
    n_frames = int(math.ceil(duration / hold)) + 2
    if kind == "constant":
        u = rng.standard_normal((1, n_in)) if input is None else np.array([input], float)
        y = rng.uniform(-0.8, 0.8, (1, n_out)) if target is None else np.array([target], float)
        _check(u, n_in, "input", input_node)
        _check(y, n_out, "target", output_node)
        return Stream(kind, u, y, hold, np.zeros(1, dtype=int), input_node, output_node)
    if kind == "piecewise":
        if patterns < 1:
            raise DataError("patterns must be at least 1")
        u = rng.standard_normal((patterns, n_in))
        y = rng.uniform(-0.8, 0.8, (patterns, n_out))
        sched = _order(order, patterns, n_frames, rng)
        return Stream(kind, u, y, hold, sched, input_node, output_node)
    if kind == "xor":
        _check(XOR_INPUTS, n_in, "input", input_node)
        _check(XOR_TARGETS, n_out, "target", output_node)
        sched = _order(order, 4, n_frames, rng)
        return Stream(kind, XOR_INPUTS.copy(), XOR_TARGETS * target_scale, hold, sched,
                      input_node, output_node)
    if kind == "sinusoid":
        if period <= 0:
            raise DataError(f"period must be positive, got {period}")
        return Stream(kind, np.zeros((1, n_in)), np.zeros((1, n_out)), hold,
                      np.zeros(1, dtype=int), input_node, output_node, period, lag)
    if kind == "latch":
        if period <= 0 or not hold < period:
            raise DataError(f"latch needs 0 < hold < period, got hold={hold}, period={period}")
        signs = rng.choice([-1.0, 1.0], int(math.ceil(duration / period)) + 2)
        return Stream(kind, signs[:, None] * np.ones((1, n_in)),
                      target_scale * signs[:, None] * np.ones((1, n_out)), hold,
                      np.arange(len(signs)), input_node, output_node, period)
    raise DataError(f"unknown data kind {kind!r} "
                    f"(known: constant, piecewise, xor, sinusoid, latch)")


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
