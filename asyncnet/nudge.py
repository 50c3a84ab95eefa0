"""Data and teacher for the energy-based rules (``ep``, ``coupled``).

A *window* shows one batch of patterns: the input population receives the
batch ``(B, n_in)`` for the whole window; the teacher of the output
population sends ``[m, y...]`` (the nudge multiplier, then the batch's
targets flattened). Within a window of length ``settle + sides · leg``:

    [0, settle)                       m = 0    free relaxation
    one-sided:  [settle, +leg)        m = +1   the nudged (learning) leg
    symmetric:  [settle, +leg)        m = −1   move to s^−β, no learning
                [settle+leg, +2 leg)  m = +1   the learning leg
    then        [.., +release)        m = 0    outputs released, same input

``release`` gives the release (FORWARD messages spreading from the outputs)
time to end every synapse's leg before the next input arrives: a neuron
still nudged when the new input's FORWARD wave reaches it would pass the new
input's effect on as DELTAs, and its synapses would learn from it. It must
be at least the number of links from the outputs to the farthest neuron
(0 suffices for a layered net whose inputs are next to its first layer).

Only the teacher knows this schedule; inside the network nothing does.
Batches: the training set is reshuffled every epoch (from the scenario seed)
and cut into ``len // batch`` batches. Datasets: ``digits`` (sklearn's 8×8
handwritten digits, pixels /16, one-hot targets, a fixed held-out split
independent of the seed), ``linear`` (``y = A x``, ``A ≥ 0`` with row sums in
[0.5, 0.8], so a resistor divider can represent it), and ``constant``
(one pattern drawn from the seed, or given).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .data import DataError, OnePopulationFeed
from .messages import QUANTA
from .network import agent_rng
from .outputs import extra_hint

DATASETS = ("constant", "digits", "linear")
DATASET_KEYS = {"constant": {"input", "target"}, "digits": {"samples", "test_fraction"},
                "linear": {"patterns"}}
"""The ``[data]`` keys each dataset uses (others are refused, not ignored)."""


@dataclass
class Dataset:
    """Training and held-out patterns."""

    inputs: np.ndarray
    targets: np.ndarray
    test_inputs: np.ndarray
    test_targets: np.ndarray
    labels: np.ndarray | None = None  # class labels of the training set (digits)
    test_labels: np.ndarray | None = None


def load_dataset(kind: str, *, n_in: int, n_out: int, seed: int, patterns: int = 32,
                 samples: int = 0, test_fraction: float = 0.25, input: list | None = None,
                 target: list | None = None) -> Dataset:
    """Build one of :data:`DATASETS`, checked against the population sizes."""
    rng = agent_rng(seed, "data")
    if kind == "constant":
        u = rng.standard_normal((1, n_in)) if input is None else np.array([input], float)
        y = rng.uniform(0.1, 0.9, (1, n_out)) if target is None else np.array([target], float)
        _check(u, n_in, "input")
        _check(y, n_out, "target")
        return Dataset(u, y, u, y)
    if kind == "digits":
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise DataError(f"kind 'digits' needs scikit-learn ({extra_hint('digits')})"
                            ) from None
        d = load_digits()
        X = d.data / 16.0
        Y = np.eye(10)[d.target]
        _check(X, n_in, "input")
        _check(Y, n_out, "target")
        if not 0 < test_fraction < 1:
            raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
        perm = np.random.default_rng(0).permutation(len(X))  # fixed split, any seed
        n_test = int(round(test_fraction * len(X)))
        te, tr = perm[:n_test], perm[n_test:]
        if samples:
            tr = tr[:samples]
        return Dataset(X[tr], Y[tr], X[te], Y[te], d.target[tr], d.target[te])
    if kind == "linear":
        if patterns < 1:
            raise DataError("patterns must be at least 1")
        A = rng.uniform(0.0, 1.0, (n_out, n_in))
        A *= rng.uniform(0.5, 0.8, (n_out, 1)) / A.sum(axis=1, keepdims=True)
        X = rng.uniform(-1.0, 1.0, (2 * patterns, n_in))
        Y = X @ A.T
        return Dataset(X[:patterns], Y[:patterns], X[patterns:], Y[patterns:])
    raise DataError(f"unknown data kind {kind!r} for an energy-based rule "
                    f"(known: {', '.join(DATASETS)})")


def _check(a: np.ndarray, n: int, what: str) -> None:
    if a.shape[1] != n:
        raise DataError(f"{what} patterns have {a.shape[1]} values but the population "
                        f"has size {n}")


@dataclass
class NudgeStream(OnePopulationFeed):
    """Batches and the teacher's nudge schedule, as functions of time."""

    kind: str
    data: Dataset
    input_node: str
    output_node: str
    batch: int
    settle: float
    leg: float
    sides: int
    seed: int
    duration: float
    release: float = 0.0
    order: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.data.inputs)
        if not 1 <= self.batch <= n:
            raise DataError(f"batch must be between 1 and the {n} training patterns, "
                            f"got {self.batch}")
        if not self.settle > 0 or not self.leg > 0 or self.release < 0:
            raise DataError("settle and leg must be positive, release >= 0")
        # the engine's clock counts quanta: a part shorter than one would end where
        # it begins (a run's probes of the free phase then never ran: a KeyError)
        for key in ("settle", "leg", "release"):
            value = getattr(self, key)
            if value and value * QUANTA < 1:
                raise DataError(f"{key} must be at least one time quantum ({1 / QUANTA:g}), "
                                f"got {value:g}")
        per_epoch = n // self.batch
        epochs = int(math.ceil(self.windows() / per_epoch)) + 1
        rng = agent_rng(self.seed, "batches")
        self.order = np.concatenate([rng.permutation(n)[:per_epoch * self.batch]
                                     for _ in range(epochs)]).reshape(-1, self.batch)

    @property
    def hold(self) -> float:
        """Length of one window."""
        return self.settle + self.sides * self.leg + self.release

    @property
    def source_period(self) -> float:
        """How often the sources speak: every boundary of the schedule is a multiple."""
        parts = (self.settle, self.leg, self.release)
        if all(float(x).is_integer() for x in parts):
            return float(math.gcd(*(int(x) for x in parts)))
        return 1.0

    def windows(self) -> int:
        """Windows that start before the end of the run."""
        return int(math.ceil(self.duration / self.hold))

    def window(self, t: float) -> int:
        """Which window is shown at time ``t``."""
        return int(math.floor(t / self.hold + 1e-12))

    def rows(self, w: int) -> np.ndarray:
        """Training-pattern indices of window ``w``."""
        return self.order[w % len(self.order)]

    def multiplier(self, t: float) -> float:
        """The nudge multiplier m the teacher sends for time ``t``."""
        o = t - self.window(t) * self.hold
        if o < self.settle - 1e-12:
            return 0.0
        if self.sides == 2 and o < self.settle + self.leg - 1e-12:
            return -1.0
        if o < self.settle + self.sides * self.leg - 1e-12:
            return 1.0
        return 0.0

    def value(self, node: str, t: float) -> np.ndarray | None:
        """What population ``node`` is shown at time ``t``."""
        rows = self.rows(self.window(t))
        if node == self.input_node:
            return self.data.inputs[rows]
        if node == self.output_node:
            return np.concatenate([[self.multiplier(t)], self.data.targets[rows].ravel()])
        return None

    def sources(self) -> dict:
        """``{population: t -> value}`` for the engine's data sources."""
        return {n: (lambda t, n=n: self.value(n, t))
                for n in (self.input_node, self.output_node)}
