"""Equilibrium propagation as local messages (SCHEMES.md §4), clockless.

The energy is the one of :mod:`asyncnet.schemes.ep.hopfield`. **Representation
of symmetric couplings:** every edge ``pre -> post`` of the scenario graph is
one *undirected* coupling, one synapse agent holding one matrix ``W`` (shape
post × pre). It relays both ways: ``W r_pre`` to its post neuron and
``Wᵀ r_post`` to its pre neuron (not to a clamped input, which needs nothing).
The direction of the edge only names the matrix's orientation; the energy term
is ``−r_postᵀ W r_pre``, i.e. ``−½ Σ_{i≠j} W_ij r_i r_j`` of the symmetric matrix.

**Neurons** hold the latest field each synapse sent and, on their own local
timer (period ``period``, optional ``jitter``), take one gradient step on
their own energy: ``s ← s − ε ∂F/∂s`` with ``∂F/∂s = s − ρ'(s)(Σ fields + b)
(+ m β (s − y) at an output)``, clipped to [0, 1] for ``hardsigmoid``.
Inputs are clamped to the data (``r = x``).
With unit delays and ``period = 1`` this is exactly the synchronous textbook
iteration :func:`asyncnet.schemes.ep.hopfield.relax_step`.

**The nudge, clockless.** The teacher of an output population sends
``[m, y...]`` (a flat array: the nudge multiplier ``m`` then the targets,
batch rows flattened); the output then relaxes ``F = E + mβC``. Only the
teacher knows time; inside the network there is no phase signal:

- free relaxation travels as ``FORWARD`` messages (absolute values);
- an output with ``m > 0`` sends its changes as ``DELTA`` messages; a neuron
  one of whose links turns from FORWARD to DELTA sends its own changes as
  DELTAs too, so the nudge spreads at the speed of the links; a link that
  turns back to FORWARD (the released outputs, spreading the same way) puts
  it back to free (``relay.Links``). A synapse tells each side about the
  other side's value with the other side's kind;
- a synapse learns from the DELTAs that reach it, by the change of its own
  product: ``ΔW = η g Δ(r_post r_preᵀ)``, ``g = 1/β`` (one-sided) or
  ``1/(2β)`` (symmetric). Over a nudged leg the changes telescope to EP's
  update ``η g [ρ^β ρ^βᵀ − ρ⁰ ρ⁰ᵀ]`` (the continual form, C-EP; with
  ``apply = "deferred"`` the leg's sum is applied when the leg ends at the
  synapse). Biases learn the same way at their neuron: ``Δb = η g Δr``.

One-sided EP: the teacher sends ``m = 0`` (free), then ``m = +1``.
Symmetric EP: ``m = 0``, then ``m = −1`` (outputs free-mode: the network
moves to ``s^{−β}`` without learning), then ``m = +1`` (the learning leg
from ``s^{−β}`` to ``s^{+β}``, gain ``1/(2β)``). With batch payloads
(leading axis ``B``) products and bias changes are batch means.

Each synapse keeps ``grad``: the EP estimate of ``∂L/∂W`` accumulated over
its current (or last) nudged leg, with the sign of ``dL/dW``.
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
    batch_mean,
    control_of,
    couplings,
    outer_mean,
    port_names,
    receive,
    teacher,
    timer_interval,
)
from .face import EPFace, hopfield_of  # noqa: F401  (hopfield_of: the face, re-exported)
from .hopfield import rho, rho_prime

EP_ACTIVATIONS = ("sigmoid", "tanh", "linear", "hardsigmoid")


@dataclass
class EP(EnergyScheme):
    """Rule parameters.

    ``beta``: nudge strength; ``symmetric``: ±β nudging (gain 1/(2β)) instead
    of one-sided (1/β); ``eta``: learning rate (0 = only accumulate the
    gradient estimate); ``eps``: relaxation step; ``period``/``jitter``: a
    neuron's local timer; ``tol``: a value is re-sent only when it moved by
    more than ``tol`` (above rounding noise, which would otherwise keep a
    settled network chattering and hide the nudge); ``init_scale``: initial
    states ~ N(0, init_scale²); ``apply``: ``"continual"`` (C-EP: parameters
    move with every nudged change) or ``"deferred"`` (the leg's sum is applied
    when the next FORWARD arrives — still clockless; see ``relay.Learner``).
    """

    beta: float = 0.5
    symmetric: bool = False
    eta: float = 0.0
    eps: float = 0.5
    period: float = 1.0
    jitter: float = 0.0
    tol: float = 1e-13
    init_scale: float = 0.0
    apply: Literal["continual", "deferred"] = "continual"
    name: ClassVar[str] = "ep"
    fixed_state_keys: ClassVar[bool] = True  # a recorder checks its variables up front
    requires_dag: ClassVar[bool] = False
    face: ClassVar = EPFace  # the numpy face the analyses use
    analyses: ClassVar[dict] = ENERGY_ANALYSES

    def __post_init__(self) -> None:
        if not self.beta > 0:
            raise ValueError(f"beta must be positive, got {self.beta}")
        if self.eta < 0:
            raise ValueError(f"eta must be >= 0, got {self.eta}")
        if not 0 < self.eps <= 1:
            raise ValueError(f"eps must be in (0, 1], got {self.eps}")
        if not self.period > 0 or not 0 <= self.jitter < 1:
            raise ValueError(f"need period > 0 and 0 <= jitter < 1, got {self.period}, "
                             f"{self.jitter}")
        if self.apply not in ("continual", "deferred"):
            raise ValueError(f"apply must be 'continual' or 'deferred', got {self.apply!r}")
        if self.tol < 0 or self.init_scale < 0:
            raise ValueError("tol and init_scale must be >= 0")
        self.gain = 1.0 / (2 * self.beta) if self.symmetric else 1.0 / self.beta

    def neuron(self, pop: Population, ports: Ports, rng: np.random.Generator) -> EPNeuron:
        """The physics of one population."""
        if pop.role != "input" and pop.activation not in EP_ACTIVATIONS:
            raise ValueError(f"rule ep: population {pop.name!r} has activation "
                             f"{pop.activation!r}; ep supports {', '.join(EP_ACTIVATIONS)}")
        return EPNeuron(self, pop, ports, rng)

    def synapse(self, proj: Projection, ports: Ports, rng: np.random.Generator) -> EPSynapse:
        """The physics of one coupling."""
        return EPSynapse(self, proj, ports)


class EPNeuron:
    """A population's state ``s``, activity ``r = ρ(s)``, bias and nudge."""

    def __init__(self, rule: EP, pop: Population, ports: Ports, rng: np.random.Generator):
        self.rule = rule
        self.role = pop.role
        self.act = pop.activation
        self.n = pop.size
        self.b = pop.bias.copy()
        self.ports = port_names(ports)
        self.syn = couplings(ports)
        self.field = {s: np.zeros(self.n) for s in self.syn}
        self.s = rng.standard_normal(self.n) * rule.init_scale if rule.init_scale \
            else np.zeros(self.n)
        self.r = self.s if self.role == "input" else rho(self.s, self.act)
        self.box = Outbox(rule.tol)
        self.links = Links()
        self.nudged = False
        self.m = 0.0
        self.y: np.ndarray | None = None
        self.grad_b = np.zeros(self.n)

    def start(self, t: float) -> list:
        """Announce the initial activity."""
        return self.box.emit(self.ports, self.r, False)

    def react(self, t: float, batch: list) -> list:
        """Hold what arrived; inputs take their data, outputs their teacher."""
        entered, released = self.links.scan(batch)
        receive(self.field, batch)
        ctrl = control_of(batch)
        if self.role == "input":
            if ctrl is not None:
                self.s = self.r = ctrl
                return self.box.emit(self.ports, self.r, False)
            return []
        if self.role == "output" and ctrl is not None:
            self.m, self.y = teacher(ctrl, self.n)
        if self.role == "output":
            self._set_mode(self.m > 0)
        elif released:
            self._set_mode(False)
        elif entered:
            self._set_mode(True)
        return []

    def _set_mode(self, nudged: bool) -> None:
        if nudged and not self.nudged:
            self.grad_b = np.zeros(self.n)  # a new nudged leg starts
        if not nudged and self.nudged and self.rule.apply == "deferred" and self.rule.eta:
            self.b = self.b - self.rule.eta * self.grad_b  # the leg ended here
        self.nudged = nudged

    def on_timer(self, t: float) -> list:
        """One gradient step on the neuron's own energy; tell the synapses."""
        rule = self.rule
        h = self.b
        for s in self.syn:
            h = h + self.field[s]
        g = self.s - rho_prime(self.s, self.act) * h
        if self.m and self.y is not None:
            g = g + (self.m * rule.beta) * (self.s - self.y)
        self.s = self.s - rule.eps * g
        if self.act == "hardsigmoid":  # the state lives in [0, 1] (as in relax_step)
            self.s = np.clip(self.s, 0.0, 1.0)
        self.r = rho(self.s, self.act)
        old = self.box.sent
        out = self.box.emit(self.ports, self.r, self.nudged)
        if self.nudged and out and old is not None:
            d = batch_mean(self.box.sent - old)
            self.grad_b = self.grad_b - rule.gain * d
            if rule.eta and rule.apply == "continual":
                self.b = self.b + rule.eta * rule.gain * d
        return out

    def next_interval(self, rng: np.random.Generator) -> float | None:
        """Inputs have no timer; others fire every ``period`` (± jitter)."""
        return timer_interval(self.role, self.rule.period, self.rule.jitter, rng)

    def state(self) -> dict:
        """State, activity, bias, bias-gradient estimate, nudge."""
        st = {"state": self.s, "activity": self.r, "bias": self.b, "grad_bias": self.grad_b}
        if self.role == "input":
            st["input"] = self.s
        if self.y is not None:
            st["target"] = self.y
        return st


class EPSynapse:
    """One symmetric coupling ``W`` between two populations, relaying both ways."""

    def __init__(self, rule: EP, proj: Projection, ports: Ports):
        self.rule = rule
        self.W = proj.weight.copy()
        self.pre, self.post = proj.pre, proj.post
        self.to_pre_ports = () if ports.roles[proj.pre] == "input" else ("in",)
        self.held = {proj.pre: np.zeros(self.W.shape[1]), proj.post: np.zeros(self.W.shape[0])}
        self.box_post = Outbox()
        self.box_pre = Outbox()
        self.learn = Learner(self.W.shape, rule.gain, rule.eta, rule.apply)

    start = None  # synapses wait for their neurons: no wake-up at the first instant

    def react(self, t: float, batch: list) -> list:
        """Hold the two activities, learn from nudged changes, relay both fields."""
        held = self.held
        step = self.learn.react(held, batch, self._product)
        if step is not None:
            self.W = self.W + step
        # each side hears the other side's value with the other side's kind;
        # a change the nudge made to W itself (continual, mid-leg) is nudge too
        kind = self.learn.links.kind
        moved = step is not None and self.learn.in_leg
        out = self.box_post.emit(("out",), held[self.pre] @ self.W.T,
                                 moved or kind(self.pre) == 1)
        out += self.box_pre.emit(self.to_pre_ports, held[self.post] @ self.W,
                                 moved or kind(self.post) == 1)
        return out

    def _product(self, held: dict) -> np.ndarray:
        # −∂E/∂W = r_post r_preᵀ (batch mean); grad accumulates −gain·Δ of it
        return -outer_mean(held[self.post], held[self.pre])

    @property
    def grad(self) -> np.ndarray:
        """EP's estimate of ∂L/∂W over the current (or last) nudged leg."""
        return self.learn.grad

    def state(self) -> dict:
        """Weight and the EP gradient estimate of the current/last nudged leg."""
        return {"weight": self.W, "grad": self.grad}
