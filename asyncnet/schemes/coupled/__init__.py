"""Coupled learning on resistor (flow) networks as local messages (SCHEMES.md §4).

The physics is :mod:`asyncnet.schemes.coupled.resistor`. A population of size ``n`` is
``n`` resistor nodes (voltages ``p``); an edge ``pre -> post`` is one synapse
agent holding a bundle of resistors: the conductance matrix ``K`` (post × pre),
``K_ij > 0`` a resistor between node ``i`` of post and node ``j`` of pre, ``0``
no resistor (never learns). The edge direction only orients ``K``.

- **Inputs** (role ``input``) are voltage sources: clamped to their data, or
  at 0 if no data reaches them (a ground).
- **Free relaxation.** A node, on its own local timer, moves to the
  conductance-weighted mean of its neighbours: ``p ← (1−ω) p + ω Σ K p' / Σ K``.
  Its synapses send it ``[Σ_j K_ij p'_j, Σ_j K_ij]`` (one array, the two halves
  along the last axis). With unit delays and ``ω = 1`` this is exactly the
  synchronous Jacobi sweep :func:`asyncnet.schemes.coupled.resistor.jacobi_step`.
- **Clamped (nudged) state, clockless.** The teacher sends ``[m, y...]``
  (multiplier then targets); on ``m > 0`` an output clamps itself at
  ``p_F + η (y − p_F)``, ``p_F`` its own free value when the nudge came, and
  sends the change as a ``DELTA``. DELTAs spread the nudge (and FORWARDs the
  release) as in ``ep`` (``relay.Links``).
- **Learning.** A synapse learns from the DELTAs that reach it, by the change
  of its own local power ``½ Δp²`` per resistor (batch mean):
  ``Δk = −α g Δ(½Δp²)``, ``g = 1/η``. Over the nudged leg this telescopes to
  CL's ``k̇ = (α/η)·½[(Δp_F)² − (Δp_C)²]``. Then ``k ← max(k, floor)``.
  ``grad`` accumulates ``g Δ(½Δp²)``, the estimate of ``∂L/∂k``.

Message convention (FORWARD absolute, DELTA increments): see :mod:`.relay`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from ...api import Ports
from ...network import Population, Projection
from ..energy import ENERGY_ANALYSES, EnergyScheme
from ..relay import (
    Learner,
    Links,
    Outbox,
    control_of,
    couplings,
    port_names,
    receive,
    teacher,
    timer_interval,
)
from .face import CoupledFace, resistor_of  # noqa: F401  (resistor_of: re-exported)


@dataclass
class Coupled(EnergyScheme):
    """Rule parameters.

    ``eta``: nudge amplitude (outputs clamped at ``p_F + η(y − p_F)``);
    ``alpha``: learning rate (0 = accumulate the estimate only); ``floor``:
    smallest conductance; ``omega``: relaxation factor; ``period``/``jitter``:
    a node's local timer; ``tol``: re-send threshold (above rounding noise); ``k_low``/``k_high``:
    initial conductances ~ U(k_low, k_high) on every resistor of a bundle
    whose edge gives no ``weight``; ``apply``: ``"continual"`` or
    ``"deferred"`` (as in ``ep``; see ``relay.Learner``).
    """

    eta: float = 0.1
    alpha: float = 0.0
    floor: float = 1e-3
    omega: float = 1.0
    period: float = 1.0
    jitter: float = 0.0
    tol: float = 1e-13
    k_low: float = 0.5
    k_high: float = 1.5
    apply: Literal["continual", "deferred"] = "continual"
    name: ClassVar[str] = "coupled"
    fixed_state_keys: ClassVar[bool] = True  # a recorder checks its variables up front
    requires_dag: ClassVar[bool] = False
    face: ClassVar = CoupledFace  # the numpy face the analyses use
    analyses: ClassVar[dict] = ENERGY_ANALYSES

    def __post_init__(self) -> None:
        if not self.eta > 0:
            raise ValueError(f"eta (the nudge) must be positive, got {self.eta}")
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")
        if not self.floor > 0:
            raise ValueError(f"floor must be positive, got {self.floor}")
        if not 0 < self.omega <= 1:
            raise ValueError(f"omega must be in (0, 1], got {self.omega}")
        if not self.period > 0 or not 0 <= self.jitter < 1:
            raise ValueError("need period > 0 and 0 <= jitter < 1")
        if not 0 < self.k_low <= self.k_high:
            raise ValueError(f"need 0 < k_low <= k_high, got {self.k_low}, {self.k_high}")
        if self.apply not in ("continual", "deferred"):
            raise ValueError(f"apply must be 'continual' or 'deferred', got {self.apply!r}")
        self.gain = 1.0 / self.eta

    def neuron(self, pop: Population, ports: Ports, rng: np.random.Generator) -> Node:
        """A population of resistor nodes."""
        return Node(self, pop, ports)

    def synapse(self, proj: Projection, ports: Ports, rng: np.random.Generator) -> Resistors:
        """A bundle of resistors."""
        return Resistors(self, proj, ports, rng)


class Node:
    """Voltages of ``n`` nodes; clamped (inputs, nudged outputs) or relaxing."""

    def __init__(self, rule: Coupled, pop: Population, ports: Ports):
        self.rule = rule
        self.role = pop.role
        self.n = pop.size
        self.ports = port_names(ports)
        self.syn = couplings(ports)
        self.held = {s: np.zeros(2 * self.n) for s in self.syn}
        self.p = np.zeros(self.n)
        self.box = Outbox(rule.tol)
        self.links = Links()
        self.nudged = False
        self.m = 0.0
        self.y: np.ndarray | None = None
        self.p_free: np.ndarray | None = None
        self.clamp: np.ndarray | None = None

    def start(self, t: float) -> list:
        """Announce the initial voltages."""
        return self.box.emit(self.ports, self.p, False)

    def react(self, t: float, batch: list) -> list:
        """Hold what arrived; inputs take their data, outputs their teacher."""
        entered, released = self.links.scan(batch)
        receive(self.held, batch)
        ctrl = control_of(batch)
        if self.role == "input":
            if ctrl is not None:
                self.p = ctrl
                return self.box.emit(self.ports, self.p, False)
            return []
        if self.role == "output" and ctrl is not None:
            m_new, self.y = teacher(ctrl, self.n)
            if m_new != self.m:
                if self.m == 0.0:
                    self.p_free = self.p  # the free state, remembered locally
                self.m = m_new
                self.clamp = None if m_new == 0 else \
                    self.p_free + m_new * self.rule.eta * (self.y - self.p_free)
        if self.role == "output":
            self.nudged = self.m > 0
        elif released:
            self.nudged = False
        elif entered:
            self.nudged = True
        return []

    def on_timer(self, t: float) -> list:
        """Move to the weighted mean of the neighbours (or hold the clamp)."""
        if self.clamp is not None:
            self.p = self.clamp
        else:
            tot = None
            for s in self.syn:
                tot = self.held[s] if tot is None else tot + self.held[s]
            num, den = tot[..., :self.n], tot[..., self.n:]
            if not np.all(den > 0):  # no neighbour heard from yet (an early timer)
                return []
            w = self.rule.omega
            self.p = num / den if w == 1.0 else (1 - w) * self.p + w * num / den
        return self.box.emit(self.ports, self.p, self.nudged)

    def next_interval(self, rng: np.random.Generator) -> float | None:
        """Inputs have no timer; others fire every ``period`` (± jitter)."""
        return timer_interval(self.role, self.rule.period, self.rule.jitter, rng)

    def state(self) -> dict:
        """Voltages (as ``state``), target."""
        st = {"state": self.p}
        if self.role == "input":
            st["input"] = self.p
        if self.y is not None:
            st["target"] = self.y
        return st


class Resistors:
    """A bundle of resistors between two populations; learns from nudged changes."""

    def __init__(self, rule: Coupled, proj: Projection, ports: Ports,
                 rng: np.random.Generator):
        self.rule = rule
        self.pre, self.post = proj.pre, proj.post
        shape = proj.weight.shape
        if "weight" in proj.attrs:
            K = np.asarray(proj.weight, float)
            if np.any(K < 0):
                raise ValueError(f"edge {proj.name}: conductances must be >= 0")
        else:
            K = rng.uniform(rule.k_low, rule.k_high, shape)
        self.mask = K > 0
        self.K = np.where(self.mask, np.maximum(K, rule.floor), 0.0)
        self.to_pre_ports = () if ports.roles[proj.pre] == "input" else ("in",)
        self.held = {proj.pre: np.zeros(shape[1]), proj.post: np.zeros(shape[0])}
        self.box_post = Outbox()
        self.box_pre = Outbox()
        self.learn = Learner(shape, rule.gain, rule.alpha, rule.apply)

    start = None  # bundles wait for their nodes: no wake-up at the first instant

    def _power(self, held: dict) -> np.ndarray:
        """½ Δp² per resistor (batch mean): ∂P/∂k."""
        a = np.atleast_2d(held[self.post])
        b = np.atleast_2d(held[self.pre])
        d = a[:, :, None] - b[:, None, :]
        return np.where(self.mask, 0.5 * np.mean(d * d, axis=0), 0.0)

    @property
    def grad(self) -> np.ndarray:
        """CL's estimate of ∂L/∂k over the current (or last) nudged leg."""
        return self.learn.grad

    def react(self, t: float, batch: list) -> list:
        """Hold both voltages, learn from nudged changes, relay to both ends."""
        held = self.held
        step = self.learn.react(held, batch, self._power)
        kind = self.learn.links.kind
        moved = step is not None and self.learn.in_leg  # nudge-made change of K
        if step is not None:
            self.K = np.where(self.mask, np.maximum(self.K + step, self.rule.floor), 0.0)
        K = self.K
        to_post = np.concatenate(np.broadcast_arrays(held[self.pre] @ K.T, K.sum(axis=1)),
                                 axis=-1)
        out = self.box_post.emit(("out",), to_post, moved or kind(self.pre) == 1)
        if self.to_pre_ports:
            to_pre = np.concatenate(np.broadcast_arrays(held[self.post] @ K, K.sum(axis=0)),
                                    axis=-1)
            out += self.box_pre.emit(self.to_pre_ports, to_pre, moved or kind(self.post) == 1)
        return out

    def state(self) -> dict:
        """Conductances (as ``weight``) and the CL estimate of ∂L/∂k."""
        return {"weight": self.K, "grad": self.grad}
