"""GradEP / FlowEqProp physics (SCHEMES.md §5): the local rules and the numpy face.

Energy over the visible population ``x`` and hidden ``h1``, ``h2``::

    E   = ½‖x‖² + ½‖h1‖² + ½‖h2‖² − [b_x·x + a(h1)·(W0 x + c0) + a(h2)·(W1 a(h1) + c1)]
    E_s = E + (λ/2)‖x − x_t‖² + m β (αλ)²/2 ‖x − (x_t + u/(αλ))‖²      (m ∈ {0, +1, −1})
    a(h) = 10 tanh(SiLU(h)/10)

Every population takes the same synchronous gradient step ``s ← s − ε ∂E_s/∂s``
from the previous state of its neighbours. The functions below are the *local*
physics: what one population does with the fields its synapses sent, what one
synapse sends each way, the local quantity ``∂E/∂θ`` each agent measures, and
each agent's Adam. The engine's agents (``agents.py``) and the plain-numpy face
(:func:`train_step`) call the same functions, so the face is the synchronous
composition of exactly the arithmetic the agents do; only the schedule differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...network import agent_rng
from . import kernels
from .errors import GradEPError

POPS = ("x", "h1", "h2")
SYNAPSES = ("x->h1", "h1->h2")
PARAMS = ("W0", "c0", "W1", "c1", "bx")
"""Parameter names: W0 is held by synapse ``x->h1``, W1 by ``h1->h2``, the
biases by their population (c0 by h1, c1 by h2, b_x by x)."""
HOLDER = {"W0": "x->h1", "W1": "h1->h2", "c0": "h1", "c1": "h2", "bx": "x"}


@dataclass
class Config:
    """Physics and training parameters (defaults: the paper's run).

    Parameters
    ----------
    lam, alpha, beta, eps:
        spring constant λ, velocity scale α, nudge β, relaxation step ε.
    free_steps, nudge_steps:
        synchronous steps of the free phase and of each nudged phase.
    lr, adam_b1, adam_b2, adam_eps:
        Adam, applied by every agent to its own parameters.
    clip, clip_mode:
        gradient-norm clip; ``"global"`` (the source's: one norm over all
        parameters; numpy face only), ``"local"`` (each agent its own), ``"none"``.
    dtype:
        ``"float32"`` (the source's) or ``"float64"``.
    kernel:
        ``"exact"`` (numpy's arithmetic, bit for bit, compiled where numba is
        installed) or ``"fast"`` (one fused pass, rational tanh, needs numba:
        within 2e-6 of the exact a(h), a'(h) in float32; :mod:`.kernels`).
    """

    lam: float = 15.0
    alpha: float = 2.0
    beta: float = 1.25e-3
    eps: float = 0.1
    free_steps: int = 300
    nudge_steps: int = 300
    lr: float = 1e-3
    adam_b1: float = 0.9
    adam_b2: float = 0.95
    adam_eps: float = 1e-8
    clip: float = 1.0
    clip_mode: str = "global"
    dtype: str = "float32"
    kernel: str = "exact"
    sizes: tuple = field(default=(64, 128, 128))

    def __post_init__(self) -> None:
        validate(self)

    @property
    def np_dtype(self) -> np.dtype:
        """The numpy dtype of states and parameters."""
        return np.dtype(self.dtype)

    @property
    def k(self) -> float:
        """β(αλ)²: the nudge's stiffness on x."""
        return self.beta * (self.alpha * self.lam) ** 2


def validate(c: Config) -> None:
    """Refuse settings under which the relaxation cannot converge.

    Raises
    ------
    GradEPError
        naming the offending keys.
    """
    for key in ("lam", "alpha", "beta", "eps", "lr"):
        if not getattr(c, key) > 0:
            raise GradEPError(f"{key} must be positive, got {getattr(c, key)!r}")
    if c.free_steps < 1 or c.nudge_steps < 1:
        raise GradEPError("free_steps and nudge_steps must be at least 1")
    k = c.beta * (c.alpha * c.lam) ** 2
    # x's curvature in the nudged phases is 1 + λ ± k: an explicit step is stable
    # only below 2/curvature, and the −β phase needs a positive curvature at all
    if c.eps * (1 + c.lam + k) >= 2:
        raise GradEPError(f"eps (1 + lam + beta (alpha lam)^2) = {c.eps * (1 + c.lam + k):.4g}"
                          " must be < 2 (keys eps, lam, beta, alpha): the relaxation diverges")
    if 1 + c.lam - k <= 0:
        raise GradEPError(f"1 + lam - beta (alpha lam)^2 = {1 + c.lam - k:.4g} must be > 0 "
                          "(keys lam, beta, alpha): the -beta phase has no minimum")
    if c.clip_mode not in ("global", "local", "none"):
        raise GradEPError(f"clip_mode must be global, local or none, got {c.clip_mode!r}")
    if c.clip_mode != "none" and not c.clip > 0:
        raise GradEPError(f"clip must be positive, got {c.clip!r}")
    if c.dtype not in ("float32", "float64"):
        raise GradEPError(f"dtype must be float32 or float64, got {c.dtype!r}")
    if c.kernel not in ("exact", "fast"):
        raise GradEPError(f"kernel must be exact or fast, got {c.kernel!r}")
    if c.kernel == "fast" and not kernels.available():
        raise GradEPError("kernel = 'fast' needs numba, which is not installed: "
                          "pip install 'asyncnet[fast]' (or use kernel = 'exact')")
    if not 0 <= c.adam_b1 < 1 or not 0 <= c.adam_b2 < 1 or not c.adam_eps > 0:
        raise GradEPError("need 0 <= adam_b1, adam_b2 < 1 and adam_eps > 0")


# -- activation --------------------------------------------------------------
def act(h: np.ndarray) -> np.ndarray:
    """a(h) = 10 tanh(SiLU(h)/10)."""
    return act_d(h)[0]


def act_d(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(a(h), a'(h))`` from one pass: a' = (1 − tanh²(SiLU/10)) SiLU'(h).

    σ is computed as ½(1 + tanh(h/2)) and SiLU' as σ + SiLU (1 − σ), with the
    temporaries reused in place: this is most of a relaxation step's cost
    (scipy's expit alone is ~10× slower than tanh here).
    """
    s = h * 0.5
    np.tanh(s, out=s)
    s *= 0.5
    s += 0.5
    si = h * s
    th = si * 0.1
    np.tanh(th, out=th)
    a = th * 10.0
    q = 1.0 - s
    q *= si
    q += s
    th *= th
    np.subtract(1.0, th, out=th)
    th *= q
    return a, th


# -- initialisation (each holder draws its own, from its own stream) -----------
def xavier(shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """Xavier-normal weights, gain 0.5: N(0, 0.25 · 2/(fan_in + fan_out)), shape post × pre."""
    return rng.standard_normal(shape) * (0.5 * np.sqrt(2.0 / (shape[0] + shape[1])))


def bias_init(n: int, fan_in: int, rng: np.random.Generator) -> np.ndarray:
    """torch's Linear bias: U(−1/√fan_in, 1/√fan_in); zeros without a fan-in (b_x)."""
    if fan_in == 0:
        return np.zeros(n)
    return rng.uniform(-1.0, 1.0, n) / np.sqrt(fan_in)


def init_param(name: str, sizes: tuple, rng: np.random.Generator,
               dtype: str = "float64") -> np.ndarray:
    """One parameter tensor: Xavier-normal (gain 0.5) weights, U(±1/√fan_in) biases.

    Parameters
    ----------
    name: one of :data:`PARAMS`. sizes: ``(n_x, n_h1, n_h2)``. rng: the holder
    agent's own random stream (``agent_rng(seed, holder)``). dtype: of the result.

    Returns
    -------
    The tensor (W has shape post × pre); drawn in float64, then cast.
    """
    nx_, n1, n2 = sizes
    if name in ("W0", "W1"):
        fan_out, fan_in = (n1, nx_) if name == "W0" else (n2, n1)
        w = xavier((fan_out, fan_in), rng)
    elif name in ("c0", "c1"):
        n, fan_in = (n1, nx_) if name == "c0" else (n2, n1)
        w = bias_init(n, fan_in, rng)
    elif name == "bx":
        w = bias_init(nx_, 0, rng)
    else:
        raise KeyError(name)
    return w.astype(dtype)


def init_params(sizes: tuple, seed: int, dtype: str = "float64") -> dict[str, np.ndarray]:
    """All five tensors, each drawn from its holder agent's stream ``(seed, holder)``."""
    return {p: init_param(p, sizes, agent_rng(seed, HOLDER[p]), dtype) for p in PARAMS}


def count(sizes: tuple) -> int:
    """Number of parameters of the layered energy."""
    nx_, n1, n2 = sizes
    return nx_ + nx_ * n1 + n1 + n1 * n2 + n2


# -- local physics: populations -------------------------------------------------
def visible_pull(c: Config, xt: np.ndarray, u: np.ndarray, m: float) -> tuple[float, np.ndarray]:
    """The spring (+ nudge) on x for one phase: ``(q, r)`` with ∂(spring+nudge)/∂x + x = q x − r.

    Returns ``q = 1 + λ + mk`` and ``r = λ x_t + m k (x_t + u/(αλ))``.
    """
    k = m * c.k
    r = c.lam * xt
    if m:
        r = r + k * (xt + u * (1.0 / (c.alpha * c.lam)))
    return 1.0 + c.lam + k, r


def visible_step(x, fields, bx, q, r, eps):
    """One step of the visible population: x ← x + ε (r + b_x + Σ fields − q x).

    Parameters
    ----------
    x: the state (batch × n). fields: what its synapses sent (``a(h1) W0``).
    bx: its bias. q, r: the phase's spring and nudge (:func:`visible_pull`). eps: ε.

    Returns
    -------
    The new state (a new array; the inputs are not written to).
    """
    out = kernels.visible_update(x, fields, bx, q, r, eps)
    if out is not None:  # the same bits, in one pass
        return out
    f = fields[0] + bx  # a new array: payloads are never written to
    for g in fields[1:]:
        f = f + g
    f = f + r  # f may be one broadcast row (h = 0) while r has the batch
    f -= q * x
    f *= eps
    f += x
    return f


def hidden_step(h, d, fields, c, eps):
    """One step of a hidden population: h ← h + ε (a'(h) (Σ fields + c) − h).

    Parameters
    ----------
    h: the state. d: a'(h). fields: what its synapses sent, in the order of
    the synapses' names. c: its bias. eps: ε.

    Returns
    -------
    The new state (a new array).
    """
    f = fields[0] + c
    for g in fields[1:]:
        f = f + g  # not in place: a field may still be one broadcast row (h = 0)
    f *= d
    f -= h
    f *= eps
    f += h
    return f


def hidden_update(h, d, fields, c, eps, kernel: str = "exact"
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`hidden_step` then :func:`act_d`: the new ``(h, a(h), a'(h))``.

    ``kernel = "exact"``: the compiled kernels (:mod:`.kernels`, with numba)
    give numpy's bits in a few passes; otherwise (or for a broadcast row) the
    numpy functions. ``kernel = "fast"``: one fused pass with a rational tanh
    (:func:`.kernels.hidden_update_fast`; not numpy's bits).
    """
    if kernel == "fast":
        return kernels.hidden_update_fast(h, d, fields, c, eps)
    out = kernels.hidden_update(h, d, fields, c, eps)
    if out is not None:
        return out
    h = hidden_step(h, d, fields, c, eps)
    return (h, *act_d(h))


def bias_sum(a: np.ndarray) -> np.ndarray:
    """Σ over the batch of −∂E/∂bias (= the activity): a bias holder's local quantity."""
    return a.sum(axis=0)


# -- local physics: synapses -----------------------------------------------------
def relay(W: np.ndarray, pre: np.ndarray, post: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What a synapse sends both ways.

    Parameters
    ----------
    W: its matrix (post × pre). pre, post: the activities it holds.

    Returns
    -------
    ``(pre Wᵀ, post W)``: the field for the post and for the pre population.
    """
    return pre @ W.T, post @ W


def weight_sum(pre: np.ndarray, post: np.ndarray) -> np.ndarray:
    """Σ over the batch of −∂E/∂W = a_post a_preᵀ: a synapse's local quantity."""
    return post.T @ pre


# -- the estimator, clipping and Adam ------------------------------------------
def estimate(plus: np.ndarray, minus: np.ndarray, beta: float, batch: int) -> np.ndarray:
    """The symmetric estimator from one agent's two measurements.

    Parameters
    ----------
    plus, minus: batch sums of −∂E/∂θ at the ends of the +β and −β phases.
    beta: β. batch: the full batch size.

    Returns
    -------
    ∂L/∂θ ≈ mean[∂E/∂θ(s⁺) − ∂E/∂θ(s⁻)]/(2β) = (minus − plus)/(2βB).
    """
    return (minus - plus) * (1.0 / (2.0 * beta * batch))


def clip_factor(norm2: float, clip: float) -> float:
    """torch's ``clip_grad_norm_`` factor.

    Parameters
    ----------
    norm2: the squared norm of the gradient being clipped. clip: the limit.

    Returns
    -------
    min(1, clip/(‖g‖ + 1e-6)).
    """
    return min(1.0, clip / (float(np.sqrt(norm2)) + 1e-6))


class Adam:
    """One agent's Adam state for one tensor (torch's update formula)."""

    def __init__(self, shape: tuple, dtype, c: Config):
        self.m = np.zeros(shape, dtype)
        self.v = np.zeros(shape, dtype)
        self.t = 0
        self.c = c

    def step(self, theta: np.ndarray, g: np.ndarray) -> np.ndarray:
        """One Adam step.

        Parameters
        ----------
        theta: the parameter. g: its gradient (already clipped).

        Returns
        -------
        The new value of ``theta`` (same dtype).
        """
        c = self.c
        self.t += 1
        self.m = c.adam_b1 * self.m + (1 - c.adam_b1) * g
        self.v = c.adam_b2 * self.v + (1 - c.adam_b2) * (g * g)
        bc1 = 1 - c.adam_b1 ** self.t
        bc2 = 1 - c.adam_b2 ** self.t
        denom = np.sqrt(self.v) / np.sqrt(bc2) + c.adam_eps
        return (theta - (c.lr / bc1) * (self.m / denom)).astype(theta.dtype)

    def state(self) -> dict:
        """m, v and the step count (for checkpoints)."""
        return {"m": self.m, "v": self.v, "t": np.array(self.t)}

    def load(self, st: dict) -> None:
        """Restore :meth:`state`."""
        self.m, self.v, self.t = np.array(st["m"]), np.array(st["v"]), int(st["t"])
