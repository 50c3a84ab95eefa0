"""GradEP through the engine: populations and symmetric synapses as agents.

**Agents.** Populations ``x`` (visible), ``h1``, ``h2``; synapse agents
``x->h1`` (W0) and ``h1->h2`` (W1), each relaying both ways (``pre Wᵀ`` to
its post population, ``post W`` to its pre population — the visible one too,
since x moves). Biases live with their population (b_x with x, c0 with h1,
c1 with h2). Each agent draws its initial parameters from its own stream.

**Schedule.** With unit projection delays and period-1 local timers, a
population steps at every integer time from the fields that left the
synapses half a unit earlier, i.e. from its neighbours' previous state:
exactly the synchronous iteration of the numpy face (:mod:`.face`).

**The teacher alone knows time.** At the start of each phase its sources
send every population a phase code (the only signal from outside; x also
receives the batch ``x_t, u`` with code 0): ``0`` a new window (reset
x = x_t, h = 0), ``+1`` the +β phase, ``−1`` the −β phase, ``2`` the end.
A population answers a code at once, without stepping that instant: it
remembers its free state at +1 and restores it at −1 (both nudged phases
start from the free state), re-sends its value, and passes the code on to
its synapses (kind CONTROL, one link). So every population begins a phase
from fields of the same restored state, as in the face.

**Learning, local.** A synapse measures its product ``Σ_batch a_post a_preᵀ``
from the two values it holds when the code reaches it: at ``−1`` (the end of
the +β phase) and at ``0``/``2`` (the end of the −β phase); a population does
the same with its own activity for its bias. Then the symmetric estimator
``(P⁻ − P⁺)/(2βB)``, an optional clip of the agent's *own* gradient norm
(``clip_mode = "local"``; the source's global clip needs every agent's
gradient and is not local), and the agent's own Adam step. ``reduce`` merges
batch sums with the agent's twin when the batch is split over processes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import ClassVar, Literal

import numpy as np

from ...api import Ports
from ...messages import CONTROL, FORWARD
from ...network import Population, Projection
from ..relay import couplings, port_names
from . import physics as P


def _identity(key: str, a: np.ndarray) -> np.ndarray:
    return a


@dataclass
class GradEP(P.Config):
    """The rule: the physics of :class:`physics.Config` plus the run's length and setup.

    ``steps``: training steps; ``checkpoint_every``: steps between
    checkpoints; ``workers``: processes the batch is split over; ``threads``:
    BLAS threads per process. In the engine ``clip_mode`` must be ``local``
    or ``none`` (``global``, the source's, is accepted for the numpy face
    only), so ``local`` is the default here.
    """

    clip_mode: str = "local"
    steps: int = 2001
    checkpoint_every: int = 50
    workers: int = 1
    threads: int = 1
    backend: Literal["engine", "face"] = "engine"
    name: ClassVar[str] = "gradep"
    requires_dag: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("steps", "checkpoint_every", "workers", "threads"):
            if getattr(self, key) < 1:
                raise P.GradEPError(f"{key} must be at least 1, got {getattr(self, key)}")
        if self.backend not in ("engine", "face"):
            raise P.GradEPError(f"backend must be engine or face, got {self.backend!r}")
        if self.backend == "engine" and self.clip_mode == "global":
            raise P.GradEPError("clip_mode 'global' needs every agent's gradient at once: "
                                "with backend 'engine' use clip_mode 'local' or 'none' "
                                "(the numpy face, backend 'face', has 'global')")
        self.reduce: Callable[[str, np.ndarray], np.ndarray] = _identity
        self.batch_total = 0  # the full batch size (set by the runner)

    def config(self) -> P.Config:
        """The physics part alone."""
        return P.Config(**{f.name: getattr(self, f.name) for f in fields(P.Config)})

    def neuron(self, pop: Population, ports: Ports, rng: np.random.Generator) -> Neuron:
        """The physics of one population."""
        return Neuron(self, pop, ports, rng)

    def synapse(self, proj: Projection, ports: Ports, rng: np.random.Generator) -> Synapse:
        """The physics of one synapse bundle."""
        return Synapse(self, proj, rng)


class _Learner:
    """One agent's estimator, local clip and Adam for its one tensor."""

    def __init__(self, rule: GradEP, theta: np.ndarray, key: str):
        self.rule, self.key = rule, key
        self.opt = P.Adam(theta.shape, theta.dtype, rule)
        self.plus: np.ndarray | None = None

    def measure(self, code: float, local: Callable[[], np.ndarray],
                theta: np.ndarray) -> np.ndarray:
        """React to a phase code; return the (possibly updated) parameter."""
        if code == -1.0:  # the +β phase ended
            self.plus = local()
        elif code in (0.0, 2.0) and self.plus is not None:  # the −β phase ended
            r = self.rule
            red = r.reduce
            g = P.estimate(red(self.key + "+", self.plus), red(self.key + "-", local()),
                           r.beta, r.batch_total)
            if r.clip_mode == "local":
                g = g * P.clip_factor(float(np.sum(g.astype(np.float64) ** 2)), r.clip)
            self.plus = None
            return self.opt.step(theta, g.astype(theta.dtype))
        return theta


class Neuron:
    """A population: its state, activity, bias and the phase it is in."""

    def __init__(self, rule: GradEP, pop: Population, ports: Ports, rng: np.random.Generator):
        self.rule = rule
        self.name = pop.name
        self.n = pop.size
        self.visible = not ports.inputs  # x: no incoming projection
        self.dt = rule.np_dtype
        fan_in = ports.fan_in
        self.b = P.bias_init(self.n, fan_in, rng).astype(self.dt)
        self.ports = port_names(ports)
        self.syn = couplings(ports)
        self.field: dict[str, np.ndarray] = {}
        self.learn = _Learner(rule, self.b, pop.name)
        self.s = self.a = self.d = None
        self.free: tuple | None = None
        self.xt = self.u = None
        self.q, self.r = 1.0, None
        self.hold = True  # no step this instant (a phase just started) or idle
        self.losses: list[float] = []

    start = None  # wait for the teacher: no wake-up at the first instant

    def react(self, t: float, batch: list) -> list:
        """Hold the synapses' fields; answer the teacher's phase code."""
        ctrl = None
        for m in batch:
            if m.kind == FORWARD:
                self.field[m.src] = m.payload
            elif m.kind == CONTROL:
                ctrl = m.payload
        if ctrl is None:
            return []
        return self._phase(ctrl)

    def _phase(self, ctrl: np.ndarray) -> list:
        code = float(ctrl[0])
        rule = self.rule
        self.b = self.learn.measure(code, lambda: P.bias_sum(self.a), self.b)
        if code == 1.0:  # free phase over: remember it (and measure the flow loss)
            self.free = (self.s, self.a, self.d)
            if self.visible:
                v = (rule.alpha * rule.lam) * (self.s - self.xt)
                part = np.atleast_1d(np.sum((v - self.u) ** 2, dtype=np.float64))
                self.losses.append(float(rule.reduce("loss", part)[0])
                                   / (rule.batch_total * self.n))
        elif code == -1.0:
            self.s, self.a, self.d = self.free
        elif code == 0.0:
            if self.visible:
                data = ctrl[1:].reshape(2, -1, self.n)
                self.xt, self.u = data[0], data[1]
                self.s = self.a = self.xt
            else:
                # h = 0 for every sample: one row, broadcast (a(0) = 0, a'(0) = ½
                # exactly, so every number is the face's)
                self.s = np.zeros(self.n, self.dt)
                self.a, self.d = P.act_d(self.s)
        else:  # end of training: learn (above), then stay idle
            self.hold = True
            self.s = None
            return [(p, CONTROL, ctrl[:1]) for p in self.ports]
        if self.visible:
            self.q, self.r = P.visible_pull(rule, self.xt, self.u, code)
        self.hold = True
        return [(p, FORWARD, self.a) for p in self.ports] + \
            [(p, CONTROL, ctrl[:1]) for p in self.ports]

    def on_timer(self, t: float) -> list:
        """One synchronous gradient step on the population's own energy."""
        if self.hold:
            self.hold = self.s is None
            return []
        fields = [self.field[s] for s in self.syn]
        if self.visible:
            self.s = self.a = P.visible_step(self.s, fields, self.b, self.q, self.r,
                                             self.rule.eps)
        else:
            self.s, self.a, self.d = P.hidden_update(self.s, self.d, fields, self.b,
                                                     self.rule.eps, self.rule.kernel)
        return [(p, FORWARD, self.a) for p in self.ports]

    def next_interval(self, rng: np.random.Generator) -> float:
        """A local timer of period 1."""
        return 1.0

    def state(self) -> dict:
        """Bias, Adam state, current state and the flow losses measured (x)."""
        st = {"bias": self.b, **{f"adam/{k}": v for k, v in self.learn.opt.state().items()}}
        if self.s is not None:
            st["state"] = self.s
        if self.visible:
            st["losses"] = np.array(self.losses)
        return st

    def load(self, st: dict) -> None:
        """Restore the bias and its Adam state (from a checkpoint)."""
        self.b = np.array(st["bias"], dtype=self.dt)
        self.learn.opt.load({k: st[f"adam/{k}"] for k in ("m", "v", "t")})


class Synapse:
    """A bundle W (post × pre) relaying both ways and learning from its own product."""

    def __init__(self, rule: GradEP, proj: Projection, rng: np.random.Generator):
        self.rule = rule
        post, pre = proj.shape
        self.W = P.xavier((post, pre), rng).astype(rule.np_dtype)
        self.pre, self.post = proj.pre, proj.post
        self.held: dict[str, np.ndarray] = {}
        self.learn = _Learner(rule, self.W, proj.name)

    start = None  # synapses wait for their populations: no wake-up at the first instant

    def react(self, t: float, batch: list) -> list:
        """Learn at a phase code (from the values held before it), then relay both ways."""
        code = None
        for m in batch:
            if m.kind == CONTROL:
                code = float(m.payload[0])
        if code is not None:
            h = self.held
            self.W = self.learn.measure(code, lambda: P.weight_sum(h[self.pre], h[self.post]),
                                        self.W)
        new = False
        for m in batch:
            if m.kind == FORWARD:
                self.held[m.src] = m.payload
                new = True
        if not new:
            return []
        to_post, to_pre = P.relay(self.W, self.held[self.pre], self.held[self.post])
        return [("out", FORWARD, to_post), ("in", FORWARD, to_pre)]

    def state(self) -> dict:
        """Weight and Adam state."""
        return {"weight": self.W, **{f"adam/{k}": v for k, v in self.learn.opt.state().items()}}

    def load(self, st: dict) -> None:
        """Restore the weight and its Adam state (from a checkpoint)."""
        self.W = np.array(st["weight"], dtype=self.rule.np_dtype)
        self.learn.opt.load({k: st[f"adam/{k}"] for k in ("m", "v", "t")})


@dataclass
class Teacher:
    """The phase schedule and the batches, as the sources' functions of time.

    Window ``w`` (training step ``start + w``) lasts ``(1 + free) + 2 (1 + nudge)``;
    its codes arrive at ``T_w = 1 + w·len``, ``T_w + 1 + free`` and
    ``T_w + 2 + free + nudge``; code 2 arrives at ``T_steps``.
    ``batch(step)`` gives ``(x_t, u)`` of this process's shard.
    """

    rule: GradEP
    steps: int
    batch: Callable[[int], tuple[np.ndarray, np.ndarray]]
    visible: str
    hidden: tuple[str, ...]
    start: int = 0

    @property
    def window(self) -> int:
        """Length of one training step (window), in time units."""
        return (1 + self.rule.free_steps) + 2 * (1 + self.rule.nudge_steps)

    @property
    def period(self) -> float:
        """How often the sources speak: every phase boundary is a multiple."""
        return float(math.gcd(1 + self.rule.free_steps, 1 + self.rule.nudge_steps))

    def arrival(self, w: int) -> float:
        """When window ``w``'s first code reaches the populations."""
        return 1.0 + w * self.window

    def code(self, t: float) -> tuple[int, float] | None:
        """(window, code) of a phase starting at ``t``, or None."""
        w, o = divmod(round(t) - 1, self.window)
        if abs(t - round(t)) > 1e-9 or round(t) < 1:
            return None
        if w >= self.steps:
            return (w, 2.0) if (w, o) == (self.steps, 0) else None
        c = self.rule
        return {0: (w, 0.0), 1 + c.free_steps: (w, 1.0),
                2 + c.free_steps + c.nudge_steps: (w, -1.0)}.get(o)

    def value(self, node: str, t: float) -> np.ndarray | None:
        """What ``node`` receives at ``t``: a code (and x: the batch at code 0)."""
        wc = self.code(t)
        if wc is None:
            return None
        w, code = wc
        head = np.array([code], dtype=self.rule.np_dtype)
        if node == self.visible and code == 0.0:
            xt, u = self.batch(self.start + w)
            return np.concatenate([head, xt.ravel(), u.ravel()])
        return head

    def sources(self) -> dict:
        """``{population: t -> value}`` for the engine's sources."""
        return {n: (lambda t, n=n: self.value(n, t)) for n in (self.visible, *self.hidden)}
