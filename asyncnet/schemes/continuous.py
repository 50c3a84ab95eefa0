"""Continuous-time backprop diffusion on any digraph (SCHEMES.md §1, eqs. 18–20).

Leaky neurons with diffusion speed ``c``:

    c⁻¹ ẋ_i = -x_i + σ(a_i),              a_i = Σ_k w_ik x_k + b_i
    c⁻¹ λ̇_i = -λ_i + Σ_j w_ji σ'(a_j) λ_j + ∂V/∂x_i
    ẇ_ij   = -(1/γ) σ'(a_i) λ_i x_j

**Which sign, and why.** The paper's multiplier equation (20) reads
``c⁻¹ δ̇ = (I - Jᵀ) δ + ∇V`` (``J_ji = σ'(a_j) w_ji``): its linear part has the
eigenvalues of ``c(I - Jᵀ)``, which have *positive* real parts exactly when
the forward dynamics ``c(-I + J)`` are stable — so integrated forward in time
it blows up (it is an adjoint equation, meant to run backward from a
terminal condition). We integrate the time-reversed form above, whose linear
part ``c(-I + Jᵀ)`` has the same spectrum as the forward linearisation: it
relaxes whenever the forward dynamics do, on any digraph. Its fixed point is
``λ = (I - Jᵀ)⁻¹ ∇V`` — backprop on a DAG and the recurrent-backprop
(Almeida–Pineda) gradient of the fixed point on a graph with cycles. (``λ``
is the paper's ``δ`` up to its overall sign; the update ``ẇ`` above descends.)

Faces:

- numpy: :func:`rhs` (the vector field), :func:`relax` (exact exponential
  integration with inputs held over each step — the same update a neuron
  agent makes), :func:`fixed_point_gradient` (steady state by relaxation);
- the rule ``continuous`` for the engine: each neuron integrates its own
  ``x`` and ``λ`` on its own local timer (period ``h``, optional jitter),
  holding the latest values its synapses delivered, and sends ``x`` forward
  and ``δ = σ'(a) λ`` back. Over an interval ``τ`` the exact solution with held
  inputs is ``x ← f + (x - f) e^{-cτ}``: the least-action Euler step with
  ``Δt = 1 - e^{-cτ}`` — the two rules share their agents. Synapses integrate
  ``ẇ`` exactly for their piecewise-constant gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from ..analysis.catalogue import kinds
from ..api import Ports
from ..network import Network, Population, Projection
from .batching import learn
from .leastaction import DenseNet, LANeuron, LASynapse, drift, gradient, step

__all__ = ["DenseNet", "rhs", "relax", "fixed_point_gradient", "Continuous"]


def rhs(net: DenseNet, x, lam, u, y, c: float):
    """``(ẋ, λ̇)`` of eqs. 18–20 with the forward-stable sign (inputs clamped)."""
    dx, dl = drift(net, x, lam, u, y)
    return c * dx, c * dl


def relax(net: DenseNet, x, lam, u, y, c: float, T: float, h: float = 0.05):
    """Integrate for time ``T`` in steps ``h`` (exact for inputs held over a step).

    Weights are frozen (learning runs through the engine rule). Returns the
    final ``(x, lam)``.
    """
    dt = 1.0 - np.exp(-c * h)
    for _ in range(int(round(T / h))):
        x, lam = step(net, x, lam, u, y, dt)
    return x, lam


def fixed_point_gradient(net: DenseNet, u, y, *, x0=None, tol: float = 1e-13,
                         max_steps: int = 200_000, dt: float = 0.5):
    """Relax ``(x, λ)`` to their steady state; return ``(x, lam, grad, steps)``.

    Raises ``RuntimeError`` if the dynamics do not settle.
    """
    x = np.zeros(net.N) if x0 is None else np.array(x0, dtype=float)
    lam = np.zeros(net.N)
    for k in range(max_steps):
        x2, lam2 = step(net, x, lam, u, y, dt)
        d = max(np.max(np.abs(x2 - x)), np.max(np.abs(lam2 - lam)))
        x, lam = x2, lam2
        if d < tol:
            return x, lam, gradient(net, x, lam), k + 1
    raise RuntimeError("the forward/sensitivity dynamics did not settle")


# ---------------------------------------------------------------------------
# Engine face
# ---------------------------------------------------------------------------


@dataclass
class Continuous:
    """Rule parameters.

    ``c``: diffusion speed of every neuron; ``h``: a neuron's local timer
    period (each neuron integrates its own ODE exactly over the time since it
    last fired, holding its inputs); ``jitter``: relative per-firing jitter of
    that period (from the neuron's own stream; 0 = regular); ``gamma``: the
    weights' time constant (``ẇ = -grad/γ``; 0 = frozen); ``init_state``:
    ``"zero"`` or ``"random"``.
    """

    c: float = 1.0
    h: float = 0.1
    jitter: float = 0.0
    gamma: float = 0.0
    init_state: Literal["random", "zero"] = "zero"
    name: ClassVar[str] = "continuous"
    fixed_state_keys: ClassVar[bool] = True  # a recorder checks its variables up front
    requires_dag: ClassVar[bool] = False
    batched: ClassVar[bool] = True  # takes [data] batch (asyncnet/schemes/batching.py)
    analyses: ClassVar[dict] = kinds("accuracy", "none", "exactness", "settling", "tracking")
    default_analysis: ClassVar[str] = "accuracy"

    def __post_init__(self) -> None:
        if not self.c > 0 or not self.h > 0:
            raise ValueError(f"need c > 0 and h > 0, got c={self.c}, h={self.h}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")
        if self.gamma < 0:
            raise ValueError(f"gamma must be >= 0 (0 = frozen weights), got {self.gamma}")
        if self.init_state not in ("random", "zero"):
            raise ValueError(f"init_state must be 'random' or 'zero', got {self.init_state!r}")
        # what the shared least-action agents read
        self.mode = "async"
        self.dt = 1.0
        self.period = self.h
        self.period_spread = 0.0
        self.eta = 0.0

    def predicted_rate(self, net: Network, J: np.ndarray | None = None) -> float | None:
        """Error decay rate per unit time predicted by the linearisation.

        On a DAG every mode is ``-c`` whatever the delays: rate ``c``. With
        cycles and the Jacobian ``J`` at the fixed point, the delay-free rate
        is ``c (1 - max Re eig J)``; link delays slow it (not modelled here).
        """
        import networkx as nx
        if nx.is_directed_acyclic_graph(net.graph):
            return float(self.c)
        if J is None or not J.size:
            return None
        return float(self.c * (1.0 - np.max(np.linalg.eigvals(J).real)))

    def neuron(self, pop: Population, ports: Ports, rng: np.random.Generator) -> CTNeuron:
        """The physics of one population."""
        return CTNeuron(self, pop, ports, rng)

    def synapse(self, proj: Projection, ports: Ports, rng: np.random.Generator) -> CTSynapse:
        """The physics of one projection."""
        return CTSynapse(self, proj)


class CTNeuron(LANeuron):
    """A leaky neuron: exact exponential relaxation over its own intervals."""

    def __init__(self, rule: Continuous, pop: Population, ports: Ports,
                 rng: np.random.Generator):
        super().__init__(rule, pop, ports, rng)
        self.t_last = 0.0

    def on_timer(self, t: float) -> list:
        """Relax ``x`` and ``λ`` over the time since the last firing, then send."""
        self._dt = 1.0 - np.exp(-self.rule.c * (t - self.t_last))
        self.t_last = t
        return super().on_timer(t)

    def next_interval(self, rng: np.random.Generator) -> float:
        """Own period ``h``, times ``1 ± jitter``."""
        r = self.rule
        return r.h * (1 + r.jitter * rng.uniform(-1, 1)) if r.jitter else r.h


class CTSynapse(LASynapse):
    """Relays ``W x`` and ``Wᵀ δ``; integrates ``ẇ = -δ xᵀ / γ`` between arrivals."""

    __slots__ = ("inv_gamma", "t_last")

    def __init__(self, rule: Continuous, proj: Projection):
        super().__init__(rule, proj)
        self.inv_gamma = 1.0 / rule.gamma if rule.gamma else 0.0
        self.t_last = 0.0

    def react(self, t: float, batch: list) -> list:
        """Learn for the time the old gradient held, then relay."""
        if self.inv_gamma:
            # in place, the same bits as W - (Δt/γ) δ xᵀ with the values that held
            learn(self.W, self._buf, (t - self.t_last) * self.inv_gamma,
                  self.d_post, self.x_pre)
        self.t_last = t
        return super().react(t, batch)
