"""Backprop diffusion, discrete delay model (SCHEMES.md §1).

    x[t+1, l+1] = σ(W_l x[t, l] + b)          forward wave
    δ[t, L]     = σ'(a[t, L]) ⊙ (x[t, L] - y)  output error (loss ½‖x - y‖²)
    δ[t+1, l]   = σ'(a[t, l]) ⊙ W_lᵀ δ[t, l+1]  delta wave, with the *current* a
    ΔW_l(t)     = -η δ[t, l+1] x[t, l]ᵀ        the two values that meet

A neuron keeps the latest contribution from each of its synapses, and on
every instant something reaches it recomputes what changed and sends it on.
A synapse relays ``W x`` forward and ``Wᵀ δ`` backward and learns from the
forward and delta values that meet at it. Nothing else is known to anyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from ..analysis.catalogue import kinds
from ..api import Ports
from ..messages import CONTROL, DELTA, FORWARD
from ..network import Population, Projection, activation
from . import kernels
from .batching import learn, outer, relay, rows_mean


@dataclass
class Diffusion:
    """Rule parameters: learning rates and the initial state of neurons.

    ``init_state``: ``"random"`` (standard normal pre-activations and deltas,
    the "arbitrary initial state" of the exactness claim) or ``"zero"``.
    """

    eta: float = 0.0
    eta_bias: float | None = None
    init_state: Literal["random", "zero"] = "random"
    name: ClassVar[str] = "diffusion"
    fixed_state_keys: ClassVar[bool] = True  # a recorder checks its variables up front
    requires_dag: ClassVar[bool] = True
    batched: ClassVar[bool] = True  # takes [data] batch (asyncnet/schemes/batching.py)
    analyses: ClassVar[dict] = kinds("accuracy", "none", "exactness", "alignment")
    default_analysis: ClassVar[str] = "accuracy"

    def __post_init__(self) -> None:
        if self.init_state not in ("random", "zero"):
            raise ValueError(f"init_state must be 'random' or 'zero', got {self.init_state!r}")
        if self.eta < 0:
            raise ValueError(f"eta must be >= 0, got {self.eta}")
        if self.eta_bias is None:
            self.eta_bias = self.eta

    def neuron(self, pop: Population, ports: Ports, rng: np.random.Generator) -> Neuron:
        """The physics of one population."""
        return Neuron(self, pop, ports, rng)

    def synapse(self, proj: Projection, ports: Ports, rng: np.random.Generator) -> Synapse:
        """The physics of one projection."""
        return (OneSynapse if proj.shape == (1, 1) else Synapse)(self, proj)


class Neuron:
    """A population's activity ``x = σ(a)``, its delta and its bias.

    Values that are sent (``x``, ``δ``) are new arrays every time: a
    receiver holds on to them. The bias changes in place.
    """

    SCRATCH = ("_db",)  # not state: checkpoints leave it out (ckstate)
    __slots__ = ("f", "fprime", "tanh", "bias_ok", "role", "eta_b", "b", "a", "delta", "x",
                 "in_syn", "out_syn", "fwd", "back", "target", "_db", "_sum", "one")

    def __init__(self, rule: Diffusion, pop: Population, ports: Ports,
                 rng: np.random.Generator):
        self.f, self.fprime = activation(pop.activation)
        # tanh's f'(a) = 1 - x² from x = tanh(a), which the neuron holds: the
        # kernels' delta (kernels.dtanh_*), the same bits as fprime(a). The
        # kernels take float64 vectors of one length, which this rule's
        # values are (relays of float64 weights, data as float): only a
        # batch's second axis and a mismatched length are looked at
        # (numpy would broadcast or refuse)
        self.tanh = self.f is np.tanh
        self.role = pop.role
        self.eta_b = rule.eta_bias
        self.bias_ok = type(self.eta_b) is float and self.eta_b == self.eta_b  # kernels' case
        self.b = pop.bias.copy()
        n = pop.size
        rand = rule.init_state == "random"
        self.a = rng.standard_normal(n) if rand else np.zeros(n)
        self.delta = rng.standard_normal(n) if rand else np.zeros(n)
        if not ports.outputs and (self.role == "hidden" or
                                  self.role == "output" and ports.source is None):
            # no child and no target: no error ever reaches it, and its delta
            # is the empty sum, not an arbitrary start its synapses would
            # learn from for ever (the other rules' zero gradient there)
            self.delta = np.zeros(n)
        self.x = self.a.copy() if self.role == "input" else self.f(self.a)
        self.in_syn = list(ports.inputs)
        self.out_syn = list(ports.outputs)
        # initial contributions: shared read-only zeros (only ever replaced).
        # A single neuron keeps each contribution as a Python float, not the
        # one-element array that brought it: a per-neuron net holds two per
        # synapse agent, and the array (≈ 170 B resident) dies once delivered
        # where the float costs 32 B (issue 13); sum_one adds either the same
        self.one = n == 1
        first = 0.0 if self.one else zeros(n)
        self.fwd = dict.fromkeys(self.in_syn, first)
        self.back = dict.fromkeys(self.out_syn, first)
        self.target: np.ndarray | None = None
        # scratch for the bias step (zeros, not empty: checkpoint files stay reproducible)
        self._db = np.zeros(n) if self.eta_b else None
        self._sum = sum_one if n == 1 else sum_in_order

    def start(self, t: float) -> list:
        """Announce the (arbitrary) initial state to every synapse."""
        out = []
        if self.out_syn:
            out.append(("out", FORWARD, self.x))
        if self.in_syn:
            out.append(("in", DELTA, self.delta))
        return out

    def react(self, t: float, batch: list) -> list:
        """Update from everything that arrived now; send what changed."""
        got_f = got_d = got_y = False
        fwd, back, one = self.fwd, self.back, self.one
        for m in batch:
            kind = m[0]  # (kind, src, dst, t_sent, t_arrive, seq, payload): a hot loop
            if kind == FORWARD:
                p = m[6]
                fwd[m[1]] = p.item() if one and p.ndim == 1 else p  # a batch stays an array
                got_f = True
            elif kind == DELTA:
                p = m[6]
                back[m[1]] = p.item() if one and p.ndim == 1 else p
                got_d = True
            elif kind == CONTROL:
                if self.role == "input":
                    self.a = np.asarray(m.payload, dtype=float)
                    self.x = self.a
                    got_f = True
                else:
                    self.target = np.asarray(m.payload, dtype=float)
                    got_y = True
        if self.role == "output" and self.out_syn:
            return self._react_fed_output(got_f)
        new_delta = False
        if got_d and self.role != "output":
            # δ[t+1] uses a[t]: the delta wave meets the activity of the
            # previous instant, before this instant's forward update.
            s = self._sum(self.back, self.out_syn)
            k = kernels.loaded
            if self.role == "input":
                self.delta = s
            elif self.tanh and k is not None and s.ndim == 1 and s.shape == self.x.shape:
                self.delta = _empty(s.shape[0])
                k.dtanh_times(self.x, s, self.delta)
            else:
                self.delta = self.fprime(self.a) * s
            new_delta = True
        if got_f and self.role != "input":
            self.a = self._sum(self.fwd, self.in_syn) + self.b
            self.x = self.f(self.a)
        if self.role == "output" and (got_f or got_y) and self.target is not None:
            k = kernels.loaded
            if self.tanh and k is not None and self.x.ndim == 1 \
                    and self.target.shape == self.x.shape:
                self.delta = _empty(self.x.shape[0])
                k.dtanh_error(self.x, self.target, self.delta)
            else:
                self.delta = self.fprime(self.a) * (self.x - self.target)
            new_delta = True
        if new_delta and self.role != "input" and self.eta_b:
            # in place (state() hands out copies); a batch moves it by its mean delta
            k = kernels.loaded
            if k is not None and self.bias_ok and self.delta.ndim == 1 \
                    and self.delta.shape == self.b.shape:
                k.bias_step(self.b, self.delta, self.eta_b)
            else:
                np.multiply(rows_mean(self.delta), self.eta_b, out=self._db)
                np.subtract(self.b, self._db, out=self.b)
        out = []
        if got_f and self.out_syn:
            out.append(("out", FORWARD, self.x))
        if new_delta and self.in_syn:
            out.append(("in", DELTA, self.delta))
        return out

    def _react_fed_output(self, got_f: bool) -> list:
        """:meth:`react`'s updates for an output that feeds other populations
        (deep supervision): its own error and its children's,
        ``δ = σ'(a) ⊙ ((x - y) + Σ Wᵀδ)``, after this instant's forward update
        as an output's error is. No kernel: numpy's arithmetic, whose bits a
        single neuron and a population share."""
        if got_f:
            self.a = self._sum(self.fwd, self.in_syn) + self.b
            self.x = self.f(self.a)
        # every wake-up brought something (a forward, a delta or a target): a new delta
        s = self._sum(self.back, self.out_syn)
        if self.target is not None:
            s = (self.x - self.target) + s
        self.delta = self.fprime(self.a) * s
        if self.eta_b:
            np.multiply(rows_mean(self.delta), self.eta_b, out=self._db)
            np.subtract(self.b, self._db, out=self.b)
        out = [("in", DELTA, self.delta)] if self.in_syn else []
        if got_f:
            out.insert(0, ("out", FORWARD, self.x))
        return out

    def state(self) -> dict:
        """Activity, delta, bias, pre-activation and current target."""
        s = {"state": self.x, "delta": self.delta, "bias": self.b.copy(), "preact": self.a}
        if self.role == "input":
            s["input"] = self.x
        if self.target is not None:
            s["target"] = self.target
        return s


class _Junction:
    """What both synapse kinds share: the values that meet, the rate and the
    relay of a batch (a leading sample axis) on arrays."""

    __slots__ = ("eta", "x_pre", "d_post", "_buf", "t_grad")
    SCRATCH = ("_buf",)  # not state: checkpoints leave it out (ckstate)

    def __init__(self, rule: Diffusion, shape: tuple[int, int]):
        self.eta = rule.eta
        # x_pre and d_post are only ever replaced (by payloads), never written
        # into, and _buf is scratch within one learn(): one of each per shape
        # for all synapses, not three small arrays per synapse agent (issue 13)
        self.x_pre = zeros(shape[1])
        self.d_post = zeros(shape[0])
        self._buf = scratch(shape) if self.eta else None
        self.t_grad = -1.0

    @property
    def grad(self) -> np.ndarray:
        """The latest gradient estimate ``δ xᵀ`` (batch mean), a new array."""
        return outer(self.d_post, self.x_pre)

    start = None  # synapses wait for their neurons: no wake-up at the first instant

    def _take(self, batch: list) -> tuple[bool, bool]:
        got_f = got_d = False
        for m in batch:
            if m[0] == FORWARD:  # m.kind, m.payload by place: a hot loop
                self.x_pre = m[6]
                got_f = True
            else:
                self.d_post = m[6]
                got_d = True
        return got_f, got_d

    def _relay_and_learn(self, W: np.ndarray, t: float, got_f: bool, got_d: bool) -> list:
        out = []
        if got_f:
            x = self.x_pre
            out.append(("out", FORWARD, W @ x if x.ndim == 1 else relay(W, x)))
        if got_d:
            d = self.d_post
            out.append(("in", DELTA, W.T @ d if d.ndim == 1 else relay(W.T, d)))
        self.t_grad = t
        if self.eta:
            d, x, eta, k = self.d_post, self.x_pre, self.eta, kernels.loaded
            # the kernel's case, checked in a few attribute reads (kernels.fits
            # checks more, for any caller): this rule's values are float64,
            # its payloads new arrays (never views of W); a batch, a length
            # that does not match or a NaN step goes numpy's way
            if k is not None and d.ndim == 1 and x.ndim == 1 and W.shape[0] == d.shape[0] \
                    and W.shape[1] == x.shape[0] and type(eta) is float and eta == eta:
                k.learn(W, d, x, eta)
            else:
                learn(W, self._buf, eta, d, x)
        return out


class Synapse(_Junction):
    """A projection: relays ``W x`` and ``Wᵀ δ``; learns where they meet.

    ``W`` changes in place (through a scratch buffer kept for the purpose);
    ``grad`` is computed when asked, from the values that met last.
    """

    __slots__ = ("W",)

    def __init__(self, rule: Diffusion, proj: Projection):
        self.W = proj.weight.copy()
        kernels.prepare(self.W.size)  # a big projection: compiled steps, numpy's bits
        super().__init__(rule, self.W.shape)

    def react(self, t: float, batch: list) -> list:
        """Relay what arrived and update from the values that meet."""
        got_f, got_d = self._take(batch)
        return self._relay_and_learn(self.W, t, got_f, got_d)

    def state(self) -> dict:
        """Weight (a copy) and latest gradient estimate (sign of dV/dW)."""
        return {"weight": self.W.copy(), "grad": self.grad}


class OneSynapse(_Junction):
    """A synapse between two single neurons (a per-neuron net): the same
    arithmetic as :class:`Synapse` on Python floats.

    numpy's fixed cost per call (~0.6 µs) is most of a 1 x 1 synapse's
    work: here a relay costs one multiply and a new one-element array, the
    learning step three float operations. The bits are those of the array
    path: a relay is ``0.0 + w x`` as numpy's matrix–vector product makes it
    (``-0.0`` becomes ``+0.0``), the step ``w - (x δ) η`` in the order
    :func:`~asyncnet.schemes.batching.learn` takes. A batched payload goes
    the array path, on a ``1 x 1`` array made for the call.

    The weight is kept as the Python float ``w``, not a ``1 x 1`` array: an
    array and its data cost ≈ 180 bytes of a process's memory, and a
    per-neuron net has one of these per synapse agent (issue 13). ``W``
    reads it as a new read-only ``1 x 1`` array (writing into that raises);
    assigning ``W`` sets ``w``.
    """

    __slots__ = ("w",)

    def __init__(self, rule: Diffusion, proj: Projection):
        self.w = proj.scalar()
        super().__init__(rule, (1, 1))

    @property
    def W(self) -> np.ndarray:  # noqa: N802 (the name every synapse's weight has)
        """The weight as a new read-only ``1 x 1`` array."""
        W = np.array([[self.w]])
        W.flags.writeable = False
        return W

    @W.setter
    def W(self, value: np.ndarray) -> None:  # noqa: N802
        value = np.asarray(value, dtype=float)
        if value.shape != (1, 1):
            raise ValueError(f"a one-neuron synapse's weight is 1 x 1, got shape {value.shape}")
        self.w = float(value[0, 0])

    def react(self, t: float, batch: list) -> list:
        """Relay what arrived and update from the values that meet."""
        got_f = got_d = False
        for m in batch:  # _take, written out: a method call a wake-up costs here
            if m[0] == FORWARD:
                self.x_pre = m[6]
                got_f = True
            else:
                self.d_post = m[6]
                got_d = True
        x, d = self.x_pre, self.d_post
        if x.ndim != 1 or d.ndim != 1:
            W = np.array([[self.w]])
            out = self._relay_and_learn(W, t, got_f, got_d)
            self.w = W.item()
            return out
        w, xv, dv = self.w, x.item(), d.item()
        out = []
        if got_f:
            v = _empty(1)
            v[0] = 0.0 + w * xv
            out.append(("out", FORWARD, v))
        if got_d:
            v = _empty(1)
            v[0] = 0.0 + w * dv
            out.append(("in", DELTA, v))
        self.t_grad = t
        if self.eta:
            self.w = w - (xv * dv) * self.eta
        return out

    def state(self) -> dict:
        """Weight (a new array) and latest gradient estimate (sign of dV/dW)."""
        return {"weight": np.array([[self.w]]), "grad": self.grad}


_empty = np.empty
_ndarray = np.ndarray
_ZEROS: dict[int, np.ndarray] = {}
_SCRATCH: dict[tuple[int, ...], np.ndarray] = {}


def zeros(n: int) -> np.ndarray:
    """A shared read-only zero vector of length ``n`` (an initial value).

    Parameters
    ----------
    n:
        The length.

    Returns
    -------
    The same array for every caller (written to, it raises).
    """
    z = _ZEROS.get(n)
    if z is None:
        z = _ZEROS[n] = np.zeros(n)
        z.flags.writeable = False
    return z


def scratch(shape: tuple[int, ...]) -> np.ndarray:
    """A scratch array of ``shape`` shared by every caller.

    Only for use within one call that does not yield (a synapse's learning
    step): its contents never outlive that call.

    Parameters
    ----------
    shape:
        The array's shape.

    Returns
    -------
    The same uninitialised array for every caller asking for ``shape``.
    """
    b = _SCRATCH.get(shape)
    if b is None:
        b = _SCRATCH[shape] = np.zeros(shape)
    return b


def sum_in_order(d: dict, names: list[str]) -> np.ndarray:
    """Sum contributions in a fixed (sorted-name) order: reproducible bits."""
    it = iter(names)
    total = d[next(it)]
    for n in it:
        total = total + d[n]
    return total


def sum_one(d: dict, names: list[str]) -> np.ndarray:
    """:func:`sum_in_order` for a single neuron's values, on Python floats.

    The same additions in the same order (the same bits) without numpy's
    fixed cost per addition: a per-neuron neuron sums hundreds of one-element
    contributions an instant. A contribution is a Python float (what a
    single :class:`Neuron` keeps) or an array (a batch's ``(B, 1)``, or a
    checkpoint's of older code), which makes the rest of the sum arrays.

    Parameters
    ----------
    d:
        synapse -> its latest contribution: a float, shape ``(1,)`` or a batch.
    names:
        the synapses, in order.

    Returns
    -------
    The sum: a new ``(1,)`` array where every contribution was a float,
    else the array the additions made (the one contribution, if alone).
    """
    it = iter(names)
    total = d[next(it)]
    for n in it:
        # a float and a one-element array add as two floats do (numpy's add is
        # the same IEEE addition); an array anywhere makes the total an array
        total = total + d[n]  # never in place: an array total may be a held payload
    if type(total) is not float:
        return total
    out = _empty(1)
    out[0] = total
    return out
