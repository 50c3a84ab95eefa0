"""A network's nodes and edges: :class:`Population` and :class:`Projection`.

Plain description objects (checked by :meth:`asyncnet.network.Network.from_graph`,
which makes them); a per-neuron net has one projection per synapse agent,
so a projection is kept small.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from .ids import synapse_id
from .messages import QUANTA


class NetworkError(ValueError):
    """The network description is invalid."""


def agent_rng(seed: int, name: str) -> np.random.Generator:
    """The random stream of one agent, seeded from ``(seed, name)`` only."""
    h = hashlib.blake2b(f"{seed}/{name}".encode(), digest_size=16).digest()
    return np.random.default_rng(int.from_bytes(h, "little"))


def check_init(init: str, scale: float) -> None:
    """Refuse a weight init :func:`init_weight` does not draw.

    Parameters
    ----------
    init:
        ``normal`` or ``uniform``.
    scale:
        a finite number >= 0.

    Raises
    ------
    NetworkError
        naming what is wrong.
    """
    if not isinstance(scale, (int, float, np.integer, np.floating)) or isinstance(scale, bool) \
            or not 0 <= scale < float("inf"):
        # a negative scale flips every weight's sign: a typo, not a distribution
        raise NetworkError(f"weight scale must be a finite number >= 0, got {scale!r}"[:200])
    if init not in ("normal", "uniform"):
        raise NetworkError(f"unknown weight init {init!r} (known: normal, uniform)")


def init_weight(shape: tuple[int, int], init: str, scale: float,
                rng: np.random.Generator) -> np.ndarray:
    """Draw one weight matrix: ``normal`` (scale/sqrt(fan_in)) or ``uniform``."""
    check_init(init, scale)
    return _drawn(shape, init, scale, rng)


def _drawn(shape: tuple[int, int], init: str, scale: float,
           rng: np.random.Generator) -> np.ndarray:
    """:func:`init_weight` of an init and scale :func:`check_init` took."""
    if init == "normal":
        return rng.standard_normal(shape) * (scale / np.sqrt(shape[1]))
    lim = scale * np.sqrt(3.0 / shape[1])
    return rng.uniform(-lim, lim, shape)


class WeightDraw:
    """A projection's initial weight before it is drawn: drawn when first read,
    from the edge's own stream (:func:`agent_rng` of ``init:pre->post``), so the
    numbers are the same whenever that is. Building a per-neuron net drew
    28,800 streams (0.26 s) in every process; now the coordinator of a
    distributed run draws none and a worker only its own synapses'."""

    __slots__ = ("shape", "init", "scale", "seed")

    def __init__(self, shape: tuple[int, int], init: str, scale: float, seed: int):
        self.shape, self.init, self.scale, self.seed = shape, init, scale, seed

    def draw(self, pre: str, post: str) -> np.ndarray | float:
        """The weight of edge ``pre -> post``: a ``1 x 1`` one as a float (see
        :class:`Projection`), any other an array.

        Parameters
        ----------
        pre, post:
            the edge's ends (its stream's name).

        Returns
        -------
        The weight.
        """
        # (its init and scale were checked when the network was built)
        w = _drawn(self.shape, self.init, self.scale, agent_rng(self.seed, f"init:{pre}->{post}"))
        return float(w[0, 0]) if self.shape == (1, 1) else w


@dataclass
class Population:
    """A node: ``size`` neurons sharing an activation and a role."""

    name: str
    size: int
    activation: str
    role: str
    bias: np.ndarray
    attrs: dict = field(default_factory=dict)


class Projection:
    """An edge: the weights from ``pre`` to ``post`` and the link delay.

    Slotted, and ``attrs`` is the graph's own edge dict (not a copy): a
    per-neuron net has one projection per synapse agent, so each byte here
    is paid millions of times (issue 13). For the same reason a ``1 x 1``
    weight may be given as a Python float (what a per-neuron graph's edge
    holds): it becomes an array only when ``weight`` is first read, and
    that array is kept, so writing into it changes the weight as for any
    other projection. :attr:`shape` and :meth:`scalar` read such a weight
    without making its array (≈ 180 bytes of memory a synapse agent). A
    weight to be drawn (:class:`WeightDraw`) is drawn when first read.

    Parameters
    ----------
    pre, post:
        The populations it joins.
    weight:
        Shape ``(post.size, pre.size)``; or a float, a ``1 x 1`` weight; or
        a :class:`WeightDraw`.
    delay_q:
        The whole projection's delay, in quanta.
    attrs:
        The graph's edge attributes.
    """

    __slots__ = ("pre", "post", "_weight", "delay_q", "attrs")

    def __init__(self, pre: str, post: str, weight: np.ndarray | float | WeightDraw,
                 delay_q: int,
                 attrs: dict | None = None):
        self.pre = pre
        self.post = post
        self._weight = weight
        self.delay_q = delay_q
        self.attrs = {} if attrs is None else attrs

    def __repr__(self) -> str:
        return (f"Projection({self.pre!r}, {self.post!r}, shape={self.shape}, "
                f"delay_q={self.delay_q})")

    @property
    def weight(self) -> np.ndarray:
        """The weight matrix, shape ``(post.size, pre.size)``."""
        w = self._weight
        if type(w) is WeightDraw:
            w = self._weight = w.draw(self.pre, self.post)
        if type(w) is float:
            w = self._weight = np.array([[w]])
        return w

    @weight.setter
    def weight(self, value: np.ndarray) -> None:
        self._weight = value

    @property
    def shape(self) -> tuple[int, int]:
        """The weight matrix's shape (without making a float's array)."""
        w = self._weight
        return (1, 1) if type(w) is float else w.shape  # (a WeightDraw's too)

    def scalar(self) -> float:
        """A ``1 x 1`` weight as a float (without making its array).

        Returns
        -------
        The weight.

        Raises
        ------
        ValueError
            The projection is not ``1 x 1``.
        """
        w = self._weight
        if type(w) is WeightDraw:
            w = self._weight = w.draw(self.pre, self.post)
        if type(w) is float:
            return w
        if w.shape != (1, 1):
            raise ValueError(f"projection {self.pre}->{self.post} is {w.shape}, not 1 x 1")
        return float(w[0, 0])

    @property
    def name(self) -> str:
        """The synapse agent's name."""
        return synapse_id(self.pre, self.post)

    @property
    def delay(self) -> float:
        """The projection delay in units of time."""
        return self.delay_q / QUANTA

    @property
    def legs(self) -> tuple[int, int]:
        """Delays (quanta) of the two links: pre -> synapse, synapse -> post."""
        first = self.delay_q // 2
        return first, self.delay_q - first
