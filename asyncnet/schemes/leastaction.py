"""Least-action exact gradients on a doubled phase space (SCHEMES.md §2).

Activities ``x`` and sensitivities ``λ`` are two conjugate fields of one
energy ``E(x, λ) = C(x_out) + Σ_i λ_i (f_i(x) - x_i)``, ``f_i(x) = σ(a_i)``,
``a_i = Σ_k w_ik x_k + b_i``. Both relax forward in time:

    ẋ = ∂E/∂λ = -x + f(x)                    (inputs clamped)
    λ̇ = -λ + Jᵀλ + ∇C(x)                    (the sign flipped so it runs forward)
    ∂C/∂w_ij = σ'(a_i) λ_i x_j                (what meets at synapse j -> i)

with ``J_ji = ∂f_j/∂x_i = σ'(a_j) w_ji``. In ``u = x + λ``, ``v = x - λ`` this is
a saddle flow; activity is ``(u+v)/2`` and credit the *tension* ``(u-v)/2``.

An Euler step of size ``Δt`` is ``x ← x + Δt(f(x) - x)``, ``λ ← λ + Δt(Jᵀλ + ∇C - λ)``.
With ``Δt = 1`` the fields are simply overwritten: on a DAG of depth ``L`` the
activities are exact after ``L`` steps, the output sensitivity after ``L+1``
and the first layer's after ``2L`` — so the gradient is exact at step ``2L``
and (generically) not at ``2L-1``, from *any* initial ``x`` and ``λ``. With
``Δt < 1`` the linearised step is ``(1-Δt)I + Δt N`` with ``N`` nilpotent on a
DAG, so the error decays as ``k^(2L-1) (1-Δt)^k``: predicted rate ``1-Δt`` per
step. Asynchronous neurons (each overwriting its own ``x_i`` and ``λ_i`` when
its own timer fires, from the latest values its neighbours sent) become exact
after a finite number of firings: once every neuron fired after its parents
settled (forward) and after its children settled (backward).

This module holds two faces of the same physics:

- :class:`DenseNet` and the functions below: the dynamics in plain numpy on
  a flattened network (one row per neuron), for tools and checks;
- the rule ``leastaction`` (:class:`LeastAction`) for the engine: a neuron
  agent holds its own ``x``, ``λ`` (and ``u``, ``v``), sends ``x`` forward and
  ``δ = σ'(a) ⊙ λ`` back through its synapses, and updates either on every
  instant something reaches it (``mode = "sync"``, unit delays: the
  synchronous unit step) or on its own jittered local timer
  (``mode = "async"``). A synapse relays ``W x`` and ``Wᵀ δ`` and holds the
  gradient ``δ xᵀ`` from the values that meet at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from ..analysis.catalogue import kinds
from ..api import Ports
from ..messages import CONTROL, DELTA, FORWARD
from ..network import Network, Population, Projection, activation, layout
from . import kernels
from .batching import learn, outer, relay

# ---------------------------------------------------------------------------
# Pure numpy face: a flattened network
# ---------------------------------------------------------------------------


class DenseNet:
    """A network flattened to ``N`` neurons: ``W[i, j]`` is the weight ``j -> i``.

    ``groups`` lists ``(slice, f, f')`` for the activations; ``inputs`` and
    ``outputs`` are index arrays. Input neurons are clamped to the input.
    """

    def __init__(self, W: np.ndarray, b: np.ndarray, inputs, outputs,
                 act: str | list = "tanh", mask: np.ndarray | None = None,
                 names: list[str] | None = None):
        self.W = np.asarray(W, dtype=float).copy()
        self.N = self.W.shape[0]
        self.b = np.asarray(b, dtype=float).reshape(self.N).copy()
        self.inputs = np.asarray(inputs, dtype=int)
        self.outputs = np.asarray(outputs, dtype=int)
        self.mask = (self.W != 0) if mask is None else np.asarray(mask, dtype=bool)
        self.W = self.W * self.mask
        if isinstance(act, str):
            act = [(slice(0, self.N), act)]
        self.groups = [(sl, *activation(a)) for sl, a in act]
        self.is_input = np.zeros(self.N, dtype=bool)
        self.is_input[self.inputs] = True
        self.names = names
        self.slices: dict[str, slice] = {}

    @classmethod
    def from_network(cls, net: Network) -> DenseNet:
        """Flatten a :class:`~asyncnet.network.Network` (populations in sorted order)."""
        names = sorted(net.populations)
        sl, off = layout(net)
        W = np.zeros((off, off))
        mask = np.zeros((off, off), dtype=bool)
        b = np.zeros(off)
        for (u, v), p in net.projections.items():
            W[sl[v], sl[u]] = p.weight
            mask[sl[v], sl[u]] = True
        ins, outs, act = [], [], []
        for n in names:
            p = net.populations[n]
            b[sl[n]] = p.bias
            idx = list(range(sl[n].start, sl[n].stop))
            if p.role == "input":
                ins += idx
            elif p.role == "output":
                outs += idx
            act.append((sl[n], p.activation))
        d = cls(W, b, ins, outs, act, mask, names)
        d.slices = sl
        return d

    def preact(self, x: np.ndarray) -> np.ndarray:
        """``a = W x + b`` (batch-free)."""
        return self.W @ x + self.b

    def f(self, a: np.ndarray) -> np.ndarray:
        """Activation of every neuron."""
        out = np.empty_like(a)
        for sl, f, _ in self.groups:
            out[sl] = f(a[sl])
        return out

    def fprime(self, a: np.ndarray) -> np.ndarray:
        """Derivative of the activation of every neuron."""
        out = np.empty_like(a)
        for sl, _, fp in self.groups:
            out[sl] = fp(a[sl])
        return out


def loss_grad(net: DenseNet, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """∇C for ``C = ½‖x_out - y‖²`` as a length-N vector (zero off the outputs)."""
    g = np.zeros(net.N)
    g[net.outputs] = x[net.outputs] - y
    return g


def drift(net: DenseNet, x, lam, u, y):
    """The two velocities ``(f(x) - x, Jᵀλ + ∇C - λ)``.

    Input neurons are clamped: they hold ``u`` whatever ``x`` says.
    """
    x = np.array(x, dtype=float)
    x[net.inputs] = u
    a = net.preact(x)
    fx = net.f(a)
    fx[net.inputs] = u
    delta = net.fprime(a) * lam
    delta[net.inputs] = 0.0
    back = net.W.T @ delta + loss_grad(net, x, y)
    return fx - x, back - lam


def step(net: DenseNet, x, lam, u, y, dt: float = 1.0):
    """One synchronous Euler step of size ``dt`` (every neuron at once, from the old state)."""
    x = np.array(x, dtype=float)
    x[net.inputs] = u
    dx, dl = drift(net, x, lam, u, y)
    x2 = x + dt * dx
    x2[net.inputs] = u
    return x2, lam + dt * dl


def gradient(net: DenseNet, x, lam) -> np.ndarray:
    """The synapses' gradient ``σ'(a_i) λ_i x_j`` on the network's edges."""
    delta = net.fprime(net.preact(x)) * lam
    return np.outer(delta, x) * net.mask


def tension(x, lam):
    """``(u, v) = (x + λ, x - λ)``; activity is ``(u+v)/2``, credit ``(u-v)/2``."""
    return x + lam, x - lam


def async_fire(net: DenseNet, x, lam, i: int, u, y, dt: float = 1.0):
    """Neuron ``i`` alone steps its ``x_i`` and ``λ_i`` (in place) from its neighbours' values."""
    if net.is_input[i]:
        x[i] = u[np.searchsorted(net.inputs, i)]
        return x, lam
    a = net.preact(x)
    x_new = x[i] + dt * (net.f(a)[i] - x[i])
    delta = net.fprime(a) * lam
    delta[net.inputs] = 0.0
    g = net.W[:, i] @ delta
    k = np.flatnonzero(net.outputs == i)
    if k.size:
        g += x[i] - y[k[0]]
    lam[i] = lam[i] + dt * (g - lam[i])
    x[i] = x_new
    return x, lam


# ---------------------------------------------------------------------------
# Engine face: the rule
# ---------------------------------------------------------------------------


@dataclass
class LeastAction:
    """Rule parameters.

    ``mode``: ``"sync"`` — a neuron updates whenever messages reach it (with
    unit delays every neuron steps at every integer time: the synchronous
    unit step); ``"async"`` — a neuron updates only on its own local timer,
    with period ``period`` (times ``1 ± period_spread``, drawn once from its
    own stream) and uniform relative jitter ``jitter`` per firing.
    ``dt``: the Euler step (``1`` overwrites the fields). ``eta``: learning
    rate of the synapses (0 = frozen, the exactness checks).
    ``init_state``: ``"random"`` (arbitrary initial ``x`` and ``λ``) or ``"zero"``.
    """

    mode: Literal["sync", "async"] = "sync"
    dt: float = 1.0
    eta: float = 0.0
    period: float = 1.0
    period_spread: float = 0.5
    jitter: float = 0.3
    init_state: Literal["random", "zero"] = "random"
    name: ClassVar[str] = "leastaction"
    fixed_state_keys: ClassVar[bool] = True  # a recorder checks its variables up front
    requires_dag: ClassVar[bool] = False
    batched: ClassVar[bool] = True  # takes [data] batch (asyncnet/schemes/batching.py)
    analyses: ClassVar[dict] = kinds("accuracy", "none", "exactness", "settling", "alignment")
    default_analysis: ClassVar[str] = "accuracy"

    def __post_init__(self) -> None:
        if self.mode not in ("sync", "async"):
            raise ValueError(f"mode must be 'sync' or 'async', got {self.mode!r}")
        if self.init_state not in ("random", "zero"):
            raise ValueError(f"init_state must be 'random' or 'zero', got {self.init_state!r}")
        if not 0 < self.dt < 2:
            raise ValueError(f"dt must be in (0, 2) for a stable relaxation, got {self.dt}")
        if self.eta < 0:
            raise ValueError(f"eta must be >= 0, got {self.eta}")
        if not self.period > 0 or not 0 <= self.period_spread < 1 or not 0 <= self.jitter < 1:
            raise ValueError("need period > 0, 0 <= period_spread < 1, 0 <= jitter < 1")

    def predicted_rate(self, net: Network, J: np.ndarray | None = None) -> float | None:
        """Decay rate of the error per unit time from the linearised step, where known.

        Synchronous steps on a DAG with one delay ``d``: the step's Jacobian is
        ``(1-Δt)I + Δt N`` with ``N`` nilpotent, so every mode decays by
        ``|1-Δt|`` per step: rate ``-ln|1-Δt| / d``. (``Δt = 1`` is exact in
        finitely many steps: no rate.) Otherwise ``None``.
        """
        import networkx as nx
        delays = {p.delay_q for p in net.projections.values()}
        if (self.mode != "sync" or self.dt == 1.0 or len(delays) != 1
                or not nx.is_directed_acyclic_graph(net.graph)):
            return None
        return float(-np.log(abs(1.0 - self.dt)) / next(iter(net.projections.values())).delay)

    def neuron(self, pop: Population, ports: Ports, rng: np.random.Generator) -> LANeuron:
        """The physics of one population."""
        return LANeuron(self, pop, ports, rng)

    def synapse(self, proj: Projection, ports: Ports, rng: np.random.Generator) -> LASynapse:
        """The physics of one projection."""
        return LASynapse(self, proj)


def _sum(d: dict, names: list[str], n: int) -> np.ndarray:
    """Sum contributions in sorted-name order (reproducible bits)."""
    total = np.zeros(n)
    for k in names:
        total = total + d[k]
    return total


class LANeuron:
    """Holds ``x``, ``λ`` (and the tension pair ``u``, ``v``) of one population."""

    def __init__(self, rule: LeastAction, pop: Population, ports: Ports,
                 rng: np.random.Generator):
        self.rule = rule
        self.f, self.fprime = activation(pop.activation)
        self.role = pop.role
        self.b = pop.bias.copy()
        n = self.n = pop.size
        rand = rule.init_state == "random"
        self.x = rng.standard_normal(n) if rand else np.zeros(n)
        self.lam = rng.standard_normal(n) if rand else np.zeros(n)
        if self.role == "input":
            self.lam = np.zeros(n)
        self.in_syn = list(ports.inputs)
        self.out_syn = list(ports.outputs)
        self.fwd = {s: np.zeros(n) for s in self.in_syn}
        self.back = {s: np.zeros(n) for s in self.out_syn}
        self.u_in: np.ndarray | None = None
        self.target: np.ndarray | None = None
        self.fires = 0
        self._dt = rule.dt  # the continuous rule sets it per firing
        if rule.mode == "async":
            self.my_period = rule.period * (1 + rule.period_spread * rng.uniform(-1, 1))
        self.a = self._preact()

    def _preact(self) -> np.ndarray:
        return _sum(self.fwd, self.in_syn, self.n) + self.b

    def _delta(self) -> np.ndarray:
        return self.fprime(self.a) * self.lam

    def _update(self) -> None:
        """One Euler step of this neuron's own ``x`` and ``λ`` from what it holds."""
        dt = self._dt
        if self.role == "input":
            if self.u_in is not None:
                self.x = self.u_in
        else:
            self.a = self._preact()
            self.x = self.x + dt * (self.f(self.a) - self.x)
        g = _sum(self.back, self.out_syn, self.n)
        if self.role == "output" and self.target is not None:
            g = g + (self.x - self.target)
        if self.role != "input":
            # The loss term uses the neuron's own *updated* x (all it knows
            # now); the sensitivities from its synapses are the latest that
            # arrived. An input population is clamped when its first control
            # value arrives (t = 1), one step later than :func:`step` clamps
            # it, and the output's loss term is one step fresher: the two
            # shifts cancel and the gradient is exact at step 2L here too.
            self.lam = self.lam + dt * (g - self.lam)
        self.fires += 1

    def _emit(self) -> list:
        out = []
        if self.out_syn:
            out.append(("out", FORWARD, self.x))
        if self.in_syn:
            out.append(("in", DELTA, self._delta()))
        return out

    def start(self, t: float) -> list:
        """Announce the (arbitrary) initial state."""
        return self._emit()

    def react(self, t: float, batch: list) -> list:
        """Store what arrived; in ``sync`` mode step and send, in ``async`` mode wait."""
        for m in batch:
            if m.kind == FORWARD:
                self.fwd[m.src] = m.payload
            elif m.kind == DELTA:
                self.back[m.src] = m.payload
            elif m.kind == CONTROL:
                v = np.asarray(m.payload, dtype=float)
                if self.role == "input":
                    self.u_in = v
                else:
                    self.target = v
        if self.rule.mode == "async":
            return []
        self._update()
        return self._emit()

    def next_interval(self, rng: np.random.Generator) -> float | None:
        """Local timer (``async`` mode): own period times ``1 ± jitter``."""
        if self.rule.mode != "async":
            return None
        return self.my_period * (1 + self.rule.jitter * rng.uniform(-1, 1))

    def on_timer(self, t: float) -> list:
        """Fire: one step of this neuron's own fields, then tell the neighbours."""
        self._update()
        return self._emit()

    def state(self) -> dict:
        """Activity, sensitivity, the tension pair, pre-activation, firing count and bias."""
        u, v = tension(self.x, self.lam)
        s = {"state": self.x, "lam": self.lam, "delta": self._delta(), "u": u, "v": v,
             "activity": (u + v) / 2, "credit": (u - v) / 2, "preact": self.a,
             "fires": np.array([float(self.fires)]), "bias": self.b.copy()}
        if self.target is not None:
            s["target"] = self.target
        return s


class LASynapse:
    """Relays ``W x`` forward and ``Wᵀ δ`` back; its gradient is ``δ xᵀ``.

    ``W`` changes in place (through a scratch buffer); ``grad`` is computed
    when asked, from the values that met last (the batch mean for batches).
    """

    __slots__ = ("W", "eta", "x_pre", "d_post", "_buf")
    SCRATCH = ("_buf",)  # not state: checkpoints leave it out (ckstate)

    def __init__(self, rule: LeastAction, proj: Projection):
        self.W = proj.weight.copy()
        kernels.prepare(self.W.size)  # a big projection: compiled learning steps
        self.eta = rule.eta
        self.x_pre = np.zeros(self.W.shape[1])
        self.d_post = np.zeros(self.W.shape[0])
        # scratch for in-place learning (continuous: its gamma), only where it learns
        learns = rule.eta or getattr(rule, "gamma", 0.0)
        self._buf = np.zeros_like(self.W) if learns else None

    @property
    def grad(self) -> np.ndarray:
        """The latest gradient ``δ xᵀ`` (batch mean), a new array."""
        return outer(self.d_post, self.x_pre)

    start = None  # synapses wait for their neurons: no wake-up at the first instant

    def react(self, t: float, batch: list) -> list:
        """Relay what arrived; the gradient is what meets here."""
        got_f = got_d = False
        for m in batch:
            if m.kind == FORWARD:
                self.x_pre = m.payload
                got_f = True
            else:
                self.d_post = m.payload
                got_d = True
        # Relay with the weight held when the values arrived, then learn from
        # them (as diffusion's synapse does): the update caused at t acts on
        # what arrives after t, as in the discrete model's W(t+1) = W(t) + ΔW(t).
        out = []
        if got_f:
            out.append(("out", FORWARD, relay(self.W, self.x_pre)))
        if got_d:
            out.append(("in", DELTA, relay(self.W.T, self.d_post)))
        if self.eta:
            learn(self.W, self._buf, self.eta, self.d_post, self.x_pre)
        return out

    def state(self) -> dict:
        """Weight (a copy) and the latest gradient ``δ xᵀ`` (sign of dC/dW)."""
        return {"weight": self.W.copy(), "grad": self.grad}
