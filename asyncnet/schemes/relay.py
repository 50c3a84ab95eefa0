"""Bookkeeping shared by the energy-based rules (``ep``, ``coupled``).

Both rules relax an energy by local messages over *symmetric* couplings and
learn in the clockless (continual) way. Their messages follow one convention:

- ``FORWARD`` carries the sender's current value, absolute (free relaxation);
- ``DELTA`` carries the *change* of that value since the sender last
  communicated it (the nudge, spreading from the outputs).

A receiver holds the latest value per neighbour: a FORWARD sets it, a DELTA
adds to it. The sender updates its own copy by the very same addition, so
sender and receiver hold identical bits. A value is re-sent only when it
moved by more than a tolerance (0 = any change): a settled network goes quiet.
"""

from __future__ import annotations

import numpy as np

from ..api import Ports
from ..messages import CONTROL, DELTA, FORWARD


class Outbox:
    """What one agent last told the neighbours on some ports (one value)."""

    __slots__ = ("sent", "tol")

    def __init__(self, tol: float = 0.0):
        self.sent: np.ndarray | None = None
        self.tol = tol

    def emit(self, ports: tuple[str, ...], value: np.ndarray, nudged: bool) -> list:
        """Emits telling ``ports`` about ``value``: absolute (free) or increment (nudged)."""
        if not ports:
            return []
        if self.sent is not None:
            d = value - self.sent
            if not np.any(np.abs(d) > self.tol):
                return []
            if nudged:
                self.sent = self.sent + d
                return [(p, DELTA, d) for p in ports]
        self.sent = value
        return [(p, FORWARD, value) for p in ports]


def receive(held: dict, batch: list) -> tuple[bool, bool]:
    """Apply FORWARD (set) and DELTA (add) messages to ``held[src]``.

    Returns ``(saw_forward, saw_delta)``. One sender sends at most one message
    per instant, so the order between different senders does not matter.
    """
    fwd = dl = False
    for m in batch:
        if m.kind == FORWARD:
            held[m.src] = m.payload
            fwd = True
        elif m.kind == DELTA:
            held[m.src] = held[m.src] + m.payload
            dl = True
    return fwd, dl


class Links:
    """The kind of the latest message from each neighbour, and its transitions.

    This is how the nudge is told apart from free relaxation without any
    phase signal: a link *enters* the nudge when its messages turn from
    FORWARD to DELTA, and is *released* when they turn back. Rounding chatter
    or a neighbour still relaxing (FORWARDs) cannot block a nudge arriving
    on another link, and a late DELTA from a link that already was nudged
    cannot re-start one.
    """

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: dict[str, int] = {}

    def scan(self, batch: list) -> tuple[bool, bool]:
        """Record a batch; return ``(entered, released)``."""
        entered = released = False
        last = self.last
        for m in batch:
            if m.kind == DELTA:
                if last.get(m.src, FORWARD) != DELTA:
                    entered = True
                last[m.src] = DELTA
            elif m.kind == FORWARD:
                if last.get(m.src, FORWARD) == DELTA:
                    released = True
                last[m.src] = FORWARD
        return entered, released

    def kind(self, src: str) -> int:
        """Latest kind received from ``src`` (FORWARD if none yet)."""
        return self.last.get(src, FORWARD)


class Learner:
    """How a synapse turns the nudge into learning (shared by ep and coupled).

    ``local(held)`` is the synapse's local quantity (a product ρ_i ρ_j, a
    power ½Δp²). A *leg* starts when a link enters the nudge and ends when a
    link is released (:class:`Links`). During a leg, the change that DELTAs
    cause in ``local`` (applied before the batch's FORWARDs, which are free
    values) accumulates as ``gain · Δlocal`` in ``grad``. ``apply``:
    ``"continual"`` — the parameter moves at every change (C-EP);
    ``"deferred"`` — the leg's sum is applied when the leg ends. Both are
    clockless. ``react`` returns the parameter change to apply now (or None).
    """

    def __init__(self, shape: tuple, gain: float, rate: float, apply: str):
        self.gain, self.rate, self.apply = gain, rate, apply
        self.grad = np.zeros(shape)
        self.pending = np.zeros(shape)
        self.in_leg = False
        self.links = Links()

    def react(self, held: dict, batch: list, local) -> np.ndarray | None:
        """Process one batch into ``held``; return the parameter step (or None)."""
        entered, released = self.links.scan(batch)
        if entered and not self.in_leg:
            self.grad = np.zeros_like(self.grad)
            self.in_leg = True
        deltas = [m for m in batch if m.kind == DELTA]
        fwds = [m for m in batch if m.kind == FORWARD]
        step = None
        if deltas:
            before = local(held) if self.in_leg else None
            receive(held, deltas)
            if self.in_leg:
                d = self.gain * (local(held) - before)
                self.grad = self.grad + d
                if self.rate and self.apply == "continual":
                    step = -self.rate * d
                elif self.rate:
                    self.pending = self.pending - self.rate * d
        if fwds:
            receive(held, fwds)
        if released and self.in_leg:
            self.in_leg = False
            if self.apply == "deferred" and np.any(self.pending):
                step = self.pending if step is None else step + self.pending
                self.pending = np.zeros_like(self.pending)
        return step


def outer_mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batch mean of the outer products a bᵀ (a single vector counts as a batch of 1)."""
    a2 = np.atleast_2d(a)
    b2 = np.atleast_2d(b)
    B = max(a2.shape[0], b2.shape[0])
    a2 = np.broadcast_to(a2, (B, a2.shape[1]))
    b2 = np.broadcast_to(b2, (B, b2.shape[1]))
    return a2.T @ b2 / B


def batch_mean(v: np.ndarray) -> np.ndarray:
    """Mean over a leading batch axis (a single vector is returned as is)."""
    return v.mean(axis=0) if v.ndim > 1 else v


def port_names(ports: Ports) -> tuple[str, ...]:
    """A population's non-empty ports (``out``: edges it is pre of; ``in``: post of)."""
    names = []
    if ports.outputs:
        names.append("out")
    if ports.inputs:
        names.append("in")
    return tuple(names)


def couplings(ports: Ports) -> list[str]:
    """The synapse agents of a population, both directions, in name order."""
    return sorted(ports.inputs + ports.outputs)


def control_of(batch: list) -> np.ndarray | None:
    """The last control payload of a batch (data or teacher), if any."""
    ctrl = None
    for m in batch:
        if m.kind == CONTROL:
            ctrl = np.asarray(m.payload, dtype=float)
    return ctrl


def teacher(ctrl: np.ndarray, n: int) -> tuple[float, np.ndarray]:
    """Split a teacher's control ``[m, y...]`` into the nudge multiplier and the
    target (``(batch, n)`` when several samples travel at once)."""
    y = ctrl[1:]
    return float(ctrl[0]), (y.reshape(-1, n) if y.size > n else y)


def timer_interval(role: str, period: float, jitter: float,
                   rng: np.random.Generator) -> float | None:
    """Inputs have no timer; other neurons fire every ``period`` (± ``jitter``)."""
    if role == "input":
        return None
    return period * (1 + jitter * rng.uniform(-1, 1)) if jitter else period
