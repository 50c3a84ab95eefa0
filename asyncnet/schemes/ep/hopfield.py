"""Hopfield-like energy of equilibrium propagation, as plain numpy.

Units ``i = 0..N-1``; some are *clamped* (inputs: their value is held and
used directly as their activity), the others are free with activity
``ρ(s_i)``.  With ``r = where(clamped, s, ρ(s))``

    E(s) = ½ Σ_free s_i² − ½ Σ_{i≠j} W_ij r_i r_j − Σ_free b_i r_i
    F(s) = E(s) + β C(s),      C = ½ ‖s_out − y‖²

``W`` is symmetric with a zero diagonal and zero outside ``mask`` (the
undirected coupling graph).  One coupling ``W_ij = W_ji`` is one parameter,
so ``∂E/∂W_ij = −r_i r_j``; ``∂E/∂b_i = −r_i``.

Everything accepts a single state ``(N,)`` or a batch ``(B, N)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# -- activations ------------------------------------------------------------


def rho(s: np.ndarray, act: str) -> np.ndarray:
    """The activation ρ(s)."""
    if act == "sigmoid":
        return 1.0 / (1.0 + np.exp(-s))
    if act == "tanh":
        return np.tanh(s)
    if act == "hardsigmoid":
        return np.clip(s, 0.0, 1.0)
    if act == "linear":
        return s
    raise ValueError(f"unknown activation {act!r}")


def rho_prime(s: np.ndarray, act: str) -> np.ndarray:
    """ρ'(s)."""
    if act == "sigmoid":
        r = 1.0 / (1.0 + np.exp(-s))
        return r * (1.0 - r)
    if act == "tanh":
        return 1.0 - np.tanh(s) ** 2
    if act == "hardsigmoid":
        # inclusive: a unit resting at a bound still feels its field (else
        # a unit at s = 0 could never leave it)
        return ((s >= 0.0) & (s <= 1.0)).astype(float)
    if act == "linear":
        return np.ones_like(s)
    raise ValueError(f"unknown activation {act!r}")


def rho_second(s: np.ndarray, act: str) -> np.ndarray:
    """ρ''(s) (zero almost everywhere for the piecewise-linear ones)."""
    if act == "sigmoid":
        r = 1.0 / (1.0 + np.exp(-s))
        return r * (1.0 - r) * (1.0 - 2.0 * r)
    if act == "tanh":
        t = np.tanh(s)
        return -2.0 * t * (1.0 - t * t)
    if act in ("hardsigmoid", "linear"):
        return np.zeros_like(s)
    raise ValueError(f"unknown activation {act!r}")


# -- the network ------------------------------------------------------------


@dataclass
class HopfieldNet:
    """A symmetric network: couplings, biases, which units are clamped/outputs."""

    W: np.ndarray
    b: np.ndarray
    mask: np.ndarray
    clamped: np.ndarray
    out: np.ndarray
    act: str = "sigmoid"
    free: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.W = np.asarray(self.W, float)
        self.mask = np.asarray(self.mask, bool)
        self.clamped = np.asarray(self.clamped, bool)
        self.out = np.asarray(self.out, int)
        self.b = np.where(self.clamped, 0.0, np.asarray(self.b, float))
        n = self.W.shape[0]
        if self.W.shape != (n, n) or self.mask.shape != (n, n):
            raise ValueError("W and mask must be square and of the same size")
        if not np.array_equal(self.mask, self.mask.T) or self.mask.diagonal().any():
            raise ValueError("mask must be symmetric with an empty diagonal")
        if not np.allclose(self.W, self.W.T):
            raise ValueError("W must be symmetric")
        if self.clamped[self.out].any():
            raise ValueError("an output unit cannot be clamped")
        self.W = np.where(self.mask, 0.5 * (self.W + self.W.T), 0.0)
        self.free = ~self.clamped

    @property
    def n(self) -> int:
        """Number of units."""
        return self.W.shape[0]

    def copy(self) -> HopfieldNet:
        """A deep copy (parameters can then be changed independently)."""
        return HopfieldNet(self.W.copy(), self.b.copy(), self.mask.copy(),
                           self.clamped.copy(), self.out.copy(), self.act)

    # parameters as one flat vector θ = (W_ij for i<j in mask, b_free)
    def theta(self) -> np.ndarray:
        """The trainable parameters as a flat vector."""
        iu = np.triu_indices(self.n, 1)
        m = self.mask[iu]
        return np.concatenate([self.W[iu][m], self.b[self.free]])

    def flat(self, gW: np.ndarray, gb: np.ndarray) -> np.ndarray:
        """Flatten a (symmetric matrix, bias vector) pair like :meth:`theta`."""
        iu = np.triu_indices(self.n, 1)
        m = self.mask[iu]
        return np.concatenate([gW[iu][m], gb[self.free]])

    def set_theta(self, th: np.ndarray) -> None:
        """Set the parameters from a flat vector."""
        iu = np.triu_indices(self.n, 1)
        m = self.mask[iu]
        k = int(m.sum())
        W = np.zeros_like(self.W)
        W[iu[0][m], iu[1][m]] = th[:k]
        self.W = W + W.T
        self.b = np.zeros(self.n)
        self.b[self.free] = th[k:]


def layered_net(sizes: list[int], *, act: str = "sigmoid", scale: float = 1.0,
                seed: int = 0) -> HopfieldNet:
    """Layered symmetric net: layer 0 clamped, last layer the outputs.

    Couplings between consecutive layers only, Glorot-uniform times ``scale``.
    """
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    starts = np.cumsum([0] + list(sizes))
    W = np.zeros((n, n))
    mask = np.zeros((n, n), bool)
    for a, b in zip(range(len(sizes) - 1), range(1, len(sizes)), strict=True):
        ia = slice(starts[a], starts[a + 1])
        ib = slice(starts[b], starts[b + 1])
        lim = scale * np.sqrt(6.0 / (sizes[a] + sizes[b]))
        w = rng.uniform(-lim, lim, (sizes[b], sizes[a]))
        W[ib, ia] = w
        W[ia, ib] = w.T
        mask[ib, ia] = True
        mask[ia, ib] = True
    clamped = np.zeros(n, bool)
    clamped[: sizes[0]] = True
    out = np.arange(starts[-2], starts[-1])
    return HopfieldNet(W, np.zeros(n), mask, clamped, out, act)


def random_net(n_in: int, n_hidden: int, n_out: int, *, p: float = 0.6,
               act: str = "sigmoid", scale: float = 0.5, seed: int = 0) -> HopfieldNet:
    """Random symmetric coupling graph (no input–input couplings)."""
    rng = np.random.default_rng(seed)
    n = n_in + n_hidden + n_out
    mask = np.triu(rng.random((n, n)) < p, 1)
    mask[:n_in, :n_in] = False
    mask = mask | mask.T
    W = np.triu(rng.normal(0.0, scale, (n, n)), 1)
    W = np.where(mask, W + W.T, 0.0)
    clamped = np.zeros(n, bool)
    clamped[:n_in] = True
    b = rng.normal(0.0, 0.1, n)
    return HopfieldNet(W, b, mask, clamped, np.arange(n - n_out, n), act)


# -- energy, gradients, relaxation -------------------------------------------


def activity(net: HopfieldNet, s: np.ndarray) -> np.ndarray:
    """r = s on clamped units, ρ(s) on free ones."""
    return np.where(net.clamped, s, rho(s, net.act))


def energy(net: HopfieldNet, s: np.ndarray) -> np.ndarray:
    """E(s) (one value per batch row)."""
    r = activity(net, s)
    quad = 0.5 * np.sum(np.where(net.free, s * s, 0.0), axis=-1)
    inter = 0.5 * np.einsum("...i,ij,...j->...", r, net.W, r)
    return quad - inter - r @ net.b


def cost(net: HopfieldNet, s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """C(s) = ½‖s_out − y‖²."""
    d = s[..., net.out] - y
    return 0.5 * np.sum(d * d, axis=-1)


def grad_s(net: HopfieldNet, s: np.ndarray, beta: float = 0.0,
           y: np.ndarray | None = None) -> np.ndarray:
    """∂F/∂s, zero on clamped units."""
    r = activity(net, s)
    g = s - rho_prime(s, net.act) * (r @ net.W + net.b)
    if beta:
        g[..., net.out] += beta * (s[..., net.out] - y)
    return np.where(net.free, g, 0.0)


def relax_step(net: HopfieldNet, s: np.ndarray, eps: float, beta: float = 0.0,
               y: np.ndarray | None = None) -> np.ndarray:
    """One synchronous textbook step  s ← s − ε ∂F/∂s  (the reference iteration)."""
    s = s - eps * grad_s(net, s, beta, y)
    if net.act == "hardsigmoid":
        s = np.where(net.free, np.clip(s, 0.0, 1.0), s)
    return s


def relax(net: HopfieldNet, s: np.ndarray, *, eps: float = 0.5, beta: float = 0.0,
          y: np.ndarray | None = None, steps: int = 10_000,
          tol: float = 1e-12) -> np.ndarray:
    """Iterate :func:`relax_step` until ``max|Δs| < tol`` or ``steps`` run out."""
    s = np.array(s, float)
    for _ in range(steps):
        s_new = relax_step(net, s, eps, beta, y)
        done = np.max(np.abs(s_new - s)) < tol
        s = s_new
        if done:
            break
    return s


def newton_polish(net: HopfieldNet, s: np.ndarray, beta: float = 0.0,
                  y: np.ndarray | None = None, iters: int = 5) -> np.ndarray:
    """A few Newton steps on ∂F/∂s = 0 (single state): equilibrium to rounding."""
    s = np.array(s, float)
    f = np.flatnonzero(net.free)
    for _ in range(iters):
        H = hessian(net, s, beta)
        g = grad_s(net, s, beta, y)[f]
        s[f] -= np.linalg.solve(H, g)
    return s


def hessian(net: HopfieldNet, s: np.ndarray, beta: float = 0.0) -> np.ndarray:
    """∂²F/∂s_f² over the free units (single state)."""
    f = np.flatnonzero(net.free)
    r = activity(net, s)
    field_ = r @ net.W + net.b
    rp = rho_prime(s, net.act)
    H = -np.outer(rp[f], rp[f]) * net.W[np.ix_(f, f)]
    H += np.diag(1.0 - rho_second(s, net.act)[f] * field_[f])
    if beta:
        pos = {u: k for k, u in enumerate(f)}
        for o in net.out:
            H[pos[o], pos[o]] += beta
    return H


def param_grad(net: HopfieldNet, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(∂E/∂W, ∂E/∂b) at s, averaged over a batch; ∂E/∂W_ij = −r_i r_j on the mask."""
    r = activity(net, s)
    r2 = r.reshape(-1, net.n)
    gW = -(r2.T @ r2) / r2.shape[0]
    gb = -r2.mean(axis=0)
    return np.where(net.mask, gW, 0.0), np.where(net.free, gb, 0.0)


# -- equilibrium propagation and its references -------------------------------


def ep_gradient(net: HopfieldNet, x: np.ndarray, y: np.ndarray, beta: float, *,
                symmetric: bool = False, eps: float = 0.5, tol: float = 1e-12,
                polish: bool = False, s0: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EP estimate of ∂L/∂θ, L = C(s⁰(θ)); returns (gW, gb, s_free).

    one-sided:  (1/β)  [∂E/∂θ(s^β) − ∂E/∂θ(s⁰)]
    symmetric:  (1/2β) [∂E/∂θ(s^β) − ∂E/∂θ(s^−β)]
    ``x`` holds the clamped values in a full-size state (free entries are the
    starting point of the relaxation).
    """
    start = np.array(x, float) if s0 is None else s0
    s_free = relax(net, start, eps=eps, tol=tol)
    if polish:
        s_free = newton_polish(net, s_free)

    def nudged(b: float) -> np.ndarray:
        s = relax(net, s_free, eps=eps, beta=b, y=y, tol=tol)
        return newton_polish(net, s, b, y) if polish else s

    sp = nudged(beta)
    gWp, gbp = param_grad(net, sp)
    if symmetric:
        sm = nudged(-beta)
        gWm, gbm = param_grad(net, sm)
        return (gWp - gWm) / (2 * beta), (gbp - gbm) / (2 * beta), s_free
    gW0, gb0 = param_grad(net, s_free)
    return (gWp - gW0) / beta, (gbp - gb0) / beta, s_free


def implicit_gradient(net: HopfieldNet, s: np.ndarray, y: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """∂L/∂θ at the free equilibrium s by implicit differentiation (single state).

    Solve H λ = ∂C/∂s_f, then ∂L/∂W_ij = λ_i ρ'_i r_j + λ_j ρ'_j r_i and
    ∂L/∂b_i = λ_i ρ'_i  (from ds*/dθ = −H⁻¹ ∂²E/∂s∂θ).
    """
    f = np.flatnonzero(net.free)
    dC = np.zeros(net.n)
    dC[net.out] = s[net.out] - y
    lam = np.zeros(net.n)
    lam[f] = np.linalg.solve(hessian(net, s), dC[f])
    r = activity(net, s)
    u = lam * rho_prime(s, net.act) * net.free
    gW = np.outer(u, r) + np.outer(r, u)
    return np.where(net.mask, gW, 0.0), u


def loss_at_equilibrium(net: HopfieldNet, x: np.ndarray, y: np.ndarray,
                        eps: float = 0.5) -> float:
    """L(θ) = C(s⁰(θ)) with s⁰ relaxed from x and Newton-polished."""
    s = newton_polish(net, relax(net, x, eps=eps, tol=1e-13))
    return float(cost(net, s, y))
