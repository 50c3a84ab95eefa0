"""STLP / Hamiltonian learning: online, local in space and time (SCHEMES.md §3).

A recurrent network on any digraph (cycles allowed), leaky neurons, one step
of size ``Δt`` per unit of simulated time:

    a_t     = W_t x_t + b_t                       (input populations: x_t = u_t)
    x_{t+1} = x_t + Δt (−x_t + σ(a_t))
    H_t     = γ ℓ_t(x_t, w) + p · (−x_t + σ(a_t)),  ℓ = q/2 ‖x_out − y‖² + r_w/2 ‖w‖²

Costates run *forward*, sign flipped (``flip = −1``), with dissipation θ:

    p_{t+1}  = (1 − θ) p_t − flip Δt ∂H_t/∂x_t,
    ∂H/∂x_i  = γ q (x_i − y_i)[i output] − p_i + Σ_{k child of i} w_ki σ'(a_k) p_k
    ∂H/∂w_ij = γ r_w w_ij + p_i σ'(a_i) x_j        (recurrent: j not an input)
    ∂H/∂v_ij = p_i σ'(a_i) u_j                      ∂H/∂b_i = p_i σ'(a_i)

(the decay ``r_w`` is on the recurrent weights only: input weights ``v``,
from an input population, and biases have none), and every parameter ``w``
(weights, input weights, biases) with its costate
``p_w`` in one of two orders: ``w_first`` (the code's default, ``local = True``):
``w ← w − Δt β p_w`` with the *old* ``p_w``, then ``p_w ← (1 − θ) p_w − flip Δt
∂H_t/∂w``; ``p_first``: ``p_w`` first, then ``w`` with the new one.

**Messages (all one link).** A neuron sends ``x`` to its out-synapses
(``forward``) and ``δ = σ'(a) p`` to its in-synapses (``delta``). A synapse
``j → i`` holds ``w_ij`` and ``p_w``; it sends ``w_ij x_j`` to ``i`` and
``w_ijᵀ δ_i`` back to ``j`` (not to input populations, which have no
costate), and learns from ``δ_i x_jᵀ``: the two values that meet at it. With
unit delays (legs of ½) the neuron's costate runs one step behind its
activity (the backward term of step t needs the children's ``a_t``, two legs
away); the arithmetic is the synchronous recursion above exactly (a test
runs both).

Faces: :class:`Dense` (plain numpy, the same recursion on a flattened
network: tools and checks) and the physics of the rule ``stlp``
(:class:`STLP`; registered with its streams and analyses by
:mod:`asyncnet.schemes.stlp_tasks`) for the engine, ``mode = "sync"`` (a
neuron steps whenever its messages arrive) or ``"async"`` (only on its own
jittered timer, with the latest values held).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from ...api import Ports
from ...messages import CONTROL, DELTA, FORWARD
from ...network import Network, Population, Projection, activation, layout

DIVERGE_LIMIT = 1e12
"""A state whose squared norm passes ``DIVERGE_LIMIT²`` (or is not finite) has diverged."""
ORDERS = ("w_first", "p_first")


@dataclass
class STLP:
    """Rule parameters (validated on construction).

    ``dt``: Euler step per unit of time, in (0, 1]; ``theta``: dissipation
    per step, in [0, 1); ``beta``: weight mobility (``ẇ = −β p_w``; 0 =
    frozen); ``gamma``: weight of the loss in H (> 0); ``q``: output-error
    weight; ``r_w``: weight decay in the loss; ``flip``: −1 (forward-stable
    costates) or +1 (the unflipped sign: the negative control);
    ``order``: ``"w_first"`` or ``"p_first"``; ``learn_bias``: biases learn
    too; ``mode``: ``"sync"`` or ``"async"`` (neurons on their own timers,
    period ``period × (1 ± period_spread)`` drawn once, ``± jitter`` per
    firing); ``init_state``: ``"zero"`` or ``"random"`` initial activities.
    """

    dt: float = 0.1
    theta: float = 0.1
    beta: float = 1.0
    gamma: float = 1.0
    q: float = 1.0
    r_w: float = 0.0
    flip: int = -1
    order: Literal["w_first", "p_first"] = "w_first"
    learn_bias: bool = True
    mode: Literal["sync", "async"] = "sync"
    period: float = 1.0
    period_spread: float = 0.0
    jitter: float = 0.0
    init_state: Literal["zero", "random"] = "zero"
    name: ClassVar[str] = "stlp"
    fixed_state_keys: ClassVar[bool] = True  # a recorder checks its variables up front
    requires_dag: ClassVar[bool] = False

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(msg)

        for k in ("dt", "theta", "beta", "gamma", "q", "r_w", "period", "period_spread",
                  "jitter"):
            v = getattr(self, k)
            need(isinstance(v, (int, float)) and not isinstance(v, bool)
                 and bool(np.isfinite(v)), f"{k} must be a finite number, got {v!r}")
        need(0 < self.dt <= 1, f"dt must be in (0, 1] (one Euler step of the leak), "
                               f"got {self.dt}")
        need(0 <= self.theta < 1, f"theta (dissipation per step) must be in [0, 1), "
                                  f"got {self.theta}")
        need(self.beta >= 0, f"beta must be >= 0 (0 = frozen weights), got {self.beta}")
        need(self.gamma > 0, f"gamma must be > 0, got {self.gamma}")
        need(self.q >= 0 and self.r_w >= 0, f"q and r_w must be >= 0, got q={self.q}, "
                                            f"r_w={self.r_w}")
        need(self.flip in (-1, 1) and not isinstance(self.flip, bool),
             f"flip must be -1 (flipped, the scheme) or +1 (the negative control), "
             f"got {self.flip!r}")
        need(self.order in ORDERS, f"order must be one of {ORDERS}, got {self.order!r}")
        need(isinstance(self.learn_bias, bool), "learn_bias must be true or false")
        need(self.mode in ("sync", "async"), f"mode must be 'sync' or 'async', "
                                             f"got {self.mode!r}")
        need(self.period > 0 and 0 <= self.period_spread < 1 and 0 <= self.jitter < 1,
             "need period > 0, 0 <= period_spread < 1, 0 <= jitter < 1")
        need(self.init_state in ("zero", "random"),
             f"init_state must be 'zero' or 'random', got {self.init_state!r}")

    # -- the engine's view ---------------------------------------------------
    def neuron(self, pop: Population, ports: Ports, rng: np.random.Generator) -> STLPNeuron:
        """The physics of one population.

        Parameters
        ----------
        pop : the population; ports : the synapses it may address;
        rng : the agent's own random stream.

        Returns
        -------
        A :class:`STLPNeuron`.
        """
        return STLPNeuron(self, pop, ports, rng)

    def synapse(self, proj: Projection, ports: Ports,
                rng: np.random.Generator) -> STLPSynapse:
        """The physics of one projection.

        Parameters
        ----------
        proj : the projection; ports : its two neurons and their roles;
        rng : the agent's stream (unused).

        Returns
        -------
        A :class:`STLPSynapse`.
        """
        return STLPSynapse(self, proj, ports.roles[proj.pre] == "input")

    def param_step(self, w: np.ndarray, pw: np.ndarray,
                   g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step of a parameter and its costate.

        Parameters
        ----------
        w, pw : the parameter and its costate ``p_w``.
        g : ``∂H_t/∂w`` at the parameter's current value.

        Returns
        -------
        The new ``(w, p_w)`` in the rule's ``order``.
        """
        k = -self.flip * self.dt
        if self.order == "w_first":
            return w - (self.dt * self.beta) * pw, (1.0 - self.theta) * pw + k * g
        pw = (1.0 - self.theta) * pw + k * g
        return w - (self.dt * self.beta) * pw, pw


def _sum(d: dict, names: list[str], n: int) -> np.ndarray:
    """Sum contributions in sorted-name order (reproducible bits)."""
    total = np.zeros(n)
    for k in names:
        total = total + d[k]
    return total


class STLPNeuron:
    """One population: activity ``x``, costate ``p``, bias ``b`` and its costate."""

    def __init__(self, rule: STLP, pop: Population, ports: Ports, rng: np.random.Generator):
        self.rule = rule
        self.f, self.fprime = activation(pop.activation)
        self.role = pop.role
        n = self.n = pop.size
        self.x = rng.standard_normal(n) if rule.init_state == "random" else np.zeros(n)
        if self.role == "input":
            self.x = np.zeros(n)
        self.p = np.zeros(n)
        self.b = pop.bias.copy()
        self.pb = np.zeros(n)
        self.in_syn = list(ports.inputs)
        self.out_syn = list(ports.outputs)
        self.fwd = {s: np.zeros(n) for s in self.in_syn}
        self.back = {s: np.zeros(n) for s in self.out_syn}
        self.a = self.b.copy()
        self.delta = np.zeros(n)
        self.target: np.ndarray | None = None
        self.errs: deque = deque([np.zeros(n)])  # γ ∂ℓ/∂x of the last two steps
        self.steps = 0
        self.se_sum = 0.0
        self.se_count = 0
        self.diverged_at = -1.0
        if rule.mode == "async":
            self.my_period = rule.period * (1 + rule.period_spread * rng.uniform(-1, 1))

    def _loss_grad(self) -> np.ndarray:
        if self.role != "output" or self.target is None:
            return np.zeros(self.n)
        e = self.x - self.target
        self.se_sum += float(e @ e)
        self.se_count += self.n
        return (self.rule.gamma * self.rule.q) * e

    def _step(self, t: float) -> list:
        r = self.rule
        if self.role == "input":
            return [("out", FORWARD, self.x)] if self.out_syn else []
        if self.steps:  # p_{s-1} from step s-2: the children's σ'(a)p came back by now
            dH = self.errs.popleft() - self.p + _sum(self.back, self.out_syn, self.n)
            self.p = (1.0 - r.theta) * self.p - (r.flip * r.dt) * dH
        self.a = _sum(self.fwd, self.in_syn, self.n) + self.b
        self.x = self.x + r.dt * (self.f(self.a) - self.x)
        self.delta = self.fprime(self.a) * self.p
        if r.learn_bias:
            self.b, self.pb = r.param_step(self.b, self.pb, self.delta)  # no decay (§3)
        self.errs.append(self._loss_grad())
        self.steps += 1
        if self.diverged_at < 0 and not float(self.p @ self.p + self.x @ self.x) \
                < DIVERGE_LIMIT ** 2:
            self.diverged_at = t
        out = []
        if self.out_syn:
            out.append(("out", FORWARD, self.x))
        if self.in_syn:
            out.append(("in", DELTA, self.delta))
        return out

    def start(self, t: float) -> list:
        """Announce the initial activity."""
        return [("out", FORWARD, self.x)] if self.out_syn else []

    def react(self, t: float, batch: list) -> list:
        """Store what arrived; in ``sync`` mode (and for inputs) step and send."""
        for m in batch:
            if m.kind == FORWARD:
                self.fwd[m.src] = m.payload
            elif m.kind == DELTA:
                self.back[m.src] = m.payload
            elif m.kind == CONTROL:
                v = np.asarray(m.payload, dtype=float)
                if self.role == "input":
                    self.x = v
                else:
                    self.target = v
        if self.role == "input":
            return self._step(t) if any(m.kind == CONTROL for m in batch) else []
        return self._step(t) if self.rule.mode == "sync" else []

    def next_interval(self, rng: np.random.Generator) -> float | None:
        """Own timer (``async`` mode, not inputs): own period times ``1 ± jitter``."""
        if self.rule.mode != "async" or self.role == "input":
            return None
        return self.my_period * (1 + self.rule.jitter * rng.uniform(-1, 1))

    def on_timer(self, t: float) -> list:
        """Fire: one step from the latest values held."""
        return self._step(t)

    def state(self) -> dict:
        """Activity, costate, delta, bias (and costate), running squared error."""
        s = {"state": self.x, "p": self.p, "delta": self.delta, "bias": self.b,
             "p_bias": self.pb, "preact": self.a,
             "se_sum": np.array([self.se_sum]), "se_count": np.array([float(self.se_count)]),
             "steps": np.array([float(self.steps)]),
             "diverged_at": np.array([self.diverged_at])}
        if self.role == "input":
            s["input"] = self.x
        elif self.target is not None:
            s["target"] = self.target
        return s


class STLPSynapse:
    """Holds ``w`` and ``p_w``; relays ``w x`` forward and ``wᵀ δ`` back; learns from ``δ xᵀ``."""

    def __init__(self, rule: STLP, proj: Projection, pre_is_input: bool):
        self.rule = rule
        self.W = proj.weight.copy()
        self.PW = np.zeros_like(self.W)
        self.x_pre = np.zeros(self.W.shape[1])
        self.grad = np.zeros_like(self.W)
        self.back = not pre_is_input
        # the decay γ r_w is on recurrent weights only; input weights have none (§3)
        self.decay = 0.0 if pre_is_input else rule.gamma * rule.r_w
        self.diverged_at = -1.0

    start = None  # synapses wait for their neurons: no wake-up at the first instant

    def react(self, t: float, batch: list) -> list:
        """A delta meets the activity held (the previous step's); then relay the new one."""
        r = self.rule
        out = []
        x_new = None
        for m in batch:
            if m.kind == FORWARD:
                x_new = m.payload
            elif m.kind == DELTA:
                d = m.payload
                self.grad = np.outer(d, self.x_pre)
                if self.back:
                    out.append(("in", DELTA, self.W.T @ d))
                self.W, self.PW = r.param_step(self.W, self.PW,
                                               self.decay * self.W + self.grad)
                if self.diverged_at < 0 and not float(np.vdot(self.PW, self.PW)) \
                        < DIVERGE_LIMIT ** 2:
                    self.diverged_at = t
        if x_new is not None:
            self.x_pre = x_new
            out.append(("out", FORWARD, self.W @ x_new))
        return out

    def state(self) -> dict:
        """Weight, its costate and the latest ``δ_post x_preᵀ`` (sign of dV/dW)."""
        return {"weight": self.W, "p_w": self.PW, "grad": self.grad,
                "diverged_at": np.array([self.diverged_at])}


# ---------------------------------------------------------------------------
# Plain numpy face: the same recursion on a flattened network
# ---------------------------------------------------------------------------


class Dense:
    """A network flattened to ``N`` neurons (populations in sorted order).

    ``W[i, j]`` is the weight ``j → i`` (``mask`` marks the edges);
    ``inputs`` / ``outputs`` index the (single) input and output population.
    """

    def __init__(self, net: Network):
        names = sorted(net.populations)
        self.slices, off = layout(net)
        self.N = off
        self.W = np.zeros((off, off))
        self.mask = np.zeros((off, off), dtype=bool)
        self.b = np.zeros(off)
        self.groups = []
        self.act_names: list[str] = []
        for (u, v), p in net.projections.items():
            self.W[self.slices[v], self.slices[u]] = p.weight
            self.mask[self.slices[v], self.slices[u]] = True
        for n in names:
            self.b[self.slices[n]] = net.populations[n].bias
            self.groups.append((self.slices[n], *activation(net.populations[n].activation)))
            self.act_names += [net.populations[n].activation] * net.populations[n].size
        self.inputs = np.r_[tuple(np.arange(off)[self.slices[n]] for n in net.inputs())]
        self.outputs = np.r_[tuple(np.arange(off)[self.slices[n]] for n in net.outputs())]
        self.learn = np.ones(off, dtype=bool)
        self.learn[self.inputs] = False
        self.recurrent = self.mask & self.learn[None, :]  # edges not from an input: decayed

    def act(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(σ(a), σ'(a))`` neuron by neuron."""
        f, fp = np.empty_like(a), np.empty_like(a)
        for sl, g, gp in self.groups:
            f[sl], fp[sl] = g(a[sl]), gp(a[sl])
        return f, fp

    def initial(self, x0: np.ndarray | None = None) -> dict:
        """A state: activities (zero unless given), costates zero, the network's parameters.

        Parameters
        ----------
        x0 : initial activities (length ``N``), or ``None`` for zeros.

        Returns
        -------
        ``{"x", "p", "W", "PW", "b", "pb"}``.
        """
        x = np.zeros(self.N) if x0 is None else np.array(x0, dtype=float)
        return {"x": x, "p": np.zeros(self.N), "W": self.W.copy(), "PW": np.zeros_like(self.W),
                "b": self.b.copy(), "pb": np.zeros(self.N)}

    def run(self, rule: STLP, U: np.ndarray, Y: np.ndarray, st: dict, t0: int = 0,
            steps: int | None = None, learn_bias: bool | None = None,
            record: bool = True) -> tuple[dict, np.ndarray | None]:
        """Run the synchronous recursion from step ``t0`` for ``steps`` steps.

        Parameters
        ----------
        rule : the parameters.
        U, Y : inputs and targets by step (``Y[t]`` NaN = no target at ``t``).
        st : a state from :meth:`initial` (modified copy returned).
        t0, steps : first step index and number of steps (default: to the end of ``U``).
        learn_bias : override ``rule.learn_bias``.
        record : keep the per-step errors (``False``: memory flat in the length).

        Returns
        -------
        ``(state, se)``: the state after the steps and, per step, the squared
        output error ``‖x_{t+1} − y_{t+1}‖²`` (NaN where there is no target).
        """
        r = rule
        lb = r.learn_bias if learn_bias is None else learn_bias
        x, p, W, PW, b, pb = (st[k].copy() for k in ("x", "p", "W", "PW", "b", "pb"))
        ins, outs, learn = self.inputs, self.outputs, self.learn
        T = len(U) - 1 - t0 if steps is None else steps
        se = np.full(T, np.nan) if record else None
        gq, grw, k = r.gamma * r.q, r.gamma * r.r_w, -r.flip * r.dt
        for i in range(T):
            t = t0 + i
            x[ins] = U[t]
            a = W @ x + b
            f, fp = self.act(a)
            delta = fp * p
            delta[ins] = 0.0
            dH = W.T @ delta - p
            y = Y[t]
            if not np.isnan(y).any():
                dH[outs] += gq * (x[outs] - y)
            p_new = np.where(learn, (1.0 - r.theta) * p + k * dH, 0.0)
            G = grw * W * self.recurrent + np.outer(delta, x) * self.mask
            x = x + r.dt * (f - x)
            W, PW = r.param_step(W, PW, G)
            if lb:
                b2, pb2 = r.param_step(b, pb, delta)
                b, pb = np.where(learn, b2, b), np.where(learn, pb2, pb)
            p = p_new
            x[ins] = U[t + 1]
            y1 = Y[t + 1]
            if record and not np.isnan(y1).any():
                e = x[outs] - y1
                se[i] = float(e @ e)
        return {"x": x, "p": p, "W": W, "PW": PW, "b": b, "pb": pb}, se

