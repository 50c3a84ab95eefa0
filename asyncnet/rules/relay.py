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

from ..messages import DELTA, FORWARD


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


def receive(held: dict, batch: list, skip_control: bool = True) -> tuple[bool, bool]:
    """Apply FORWARD (set) and DELTA (add) messages to ``held[src]``.

    Returns ``(saw_forward, saw_delta)``. FORWARDs come first in the canonical
    order, so a DELTA in the same batch adds to the freshly set value.
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


def ports_of(net, name: str) -> tuple[str, ...]:
    """A population's non-empty ports (``out``: edges it is pre of; ``in``: post of)."""
    ports = []
    if net.post(name):
        ports.append("out")
    if net.pre(name):
        ports.append("in")
    return tuple(ports)
