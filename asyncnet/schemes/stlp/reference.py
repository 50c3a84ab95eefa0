"""Independent references for STLP, written from scratch in plain numpy.

Nothing here imports the scheme: a leaky network is given as arrays
(``W`` with its ``mask``, biases ``b``, one activation name per neuron,
the input and output indices, the step ``dt``). Inputs are clamped
(``x_t[inputs] = U[t]``); hidden and output neurons follow
``x_{t+1} = x_t + dt (−x_t + σ(W x_t + b))``. The loss of a stream is
``L = Σ_{t=1..T} ½ q ‖x_t[outputs] − Y_t‖²`` (steps whose target is NaN
count nothing). Parameters are ``W[mask]`` and the biases of non-input
neurons.

- :func:`fixed_point`: Newton's method for ``x* = σ(W x* + b)`` and one linear
  solve for the costate ``p* = γ((1 + θ/Δt) I − Jᵀ)⁻¹ q (x* − y)``
  (``J = diag σ'(a*) W``; θ = 0: the backprop delta on a DAG,
  Almeida–Pineda with cycles);
- :func:`bptt` (full; with a start state it is one window of truncated
  BPTT), :func:`rtrl` (forward influence matrix): the gradient of ``L``;
- :func:`train` — online learners on a stream for the comparisons:
  ``rtrl`` (an update every step), ``tbptt`` (every ``k`` steps, through the
  last ``k``), ``bptt`` (epochs over the whole stream), all with heavy-ball
  momentum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


ACT = {
    "tanh": (np.tanh, lambda a: 1.0 / np.cosh(a) ** 2),
    "linear": (lambda a: a + 0.0, lambda a: np.ones_like(a)),
    "sigmoid": (_sig, lambda a: _sig(a) * (1.0 - _sig(a))),
}


@dataclass
class Leaky:
    """A leaky network as arrays (see the module docstring)."""

    mask: np.ndarray
    acts: list
    inputs: np.ndarray
    outputs: np.ndarray
    dt: float
    q: float = 1.0

    def __post_init__(self):
        self.N = self.mask.shape[0]
        self.hid = np.ones(self.N, dtype=bool)
        self.hid[self.inputs] = False
        self.by_act = {}
        for i, name in enumerate(self.acts):
            if name not in ACT:
                raise ValueError(f"the reference knows no activation {name!r}")
            self.by_act.setdefault(name, []).append(i)
        self.by_act = {k: np.array(v) for k, v in self.by_act.items()}

    def f(self, a):
        """``(σ(a), σ'(a))``."""
        f, fp = np.empty_like(a), np.empty_like(a)
        for name, idx in self.by_act.items():
            f[idx], fp[idx] = ACT[name][0](a[idx]), ACT[name][1](a[idx])
        return f, fp

    def n_params(self) -> int:
        """Number of parameters (masked weights + non-input biases)."""
        return int(self.mask.sum() + self.hid.sum())

    def pack(self, W, b) -> np.ndarray:
        """Parameters as one vector."""
        return np.concatenate([W[self.mask], b[self.hid]])

    def unpack(self, theta, W0, b0):
        """Vector -> ``(W, b)`` (entries outside the mask / input biases from ``W0``, ``b0``)."""
        W, b = W0.copy(), b0.copy()
        m = int(self.mask.sum())
        W[self.mask] = theta[:m]
        b[self.hid] = theta[m:]
        return W, b

    def step(self, W, b, x, u_next):
        """One step: returns ``(x_next, a, σ'(a))``."""
        a = W @ x + b
        f, fp = self.f(a)
        xn = x + self.dt * (f - x)
        xn[self.inputs] = u_next
        return xn, a, fp


def _err(net: Leaky, x, y):
    if np.isnan(y).any():
        return None
    return x[net.outputs] - y


def loss(net: Leaky, W, b, U, Y, x0) -> float:
    """The stream loss.

    Parameters
    ----------
    net : the network; W, b : parameters; U, Y : inputs and targets by step;
    x0 : the state at step 0 (inputs set to ``U[0]``).

    Returns
    -------
    ``L`` over steps ``1..T`` (``T = len(U) − 1``).
    """
    x = np.array(x0, dtype=float)
    x[net.inputs] = U[0]
    L = 0.0
    for t in range(len(U) - 1):
        x, _, _ = net.step(W, b, x, U[t + 1])
        e = _err(net, x, Y[t + 1])
        if e is not None:
            L += 0.5 * net.q * float(e @ e)
    return L


def bptt(net: Leaky, W, b, U, Y, x0):
    """Backpropagation through time (stores the whole trajectory).

    Parameters
    ----------
    As :func:`loss`; with ``x0`` a stored state, one window of truncated BPTT.

    Returns
    -------
    ``(dL/dW, dL/db, L)``.
    """
    T = len(U) - 1
    xs = np.empty((T + 1, net.N))
    fps = np.empty((T, net.N))
    x = np.array(x0, dtype=float)
    x[net.inputs] = U[0]
    xs[0] = x
    L = 0.0
    for t in range(T):
        x, _, fps[t] = net.step(W, b, x, U[t + 1])
        xs[t + 1] = x
        e = _err(net, x, Y[t + 1])
        if e is not None:
            L += 0.5 * net.q * float(e @ e)
    gW = np.zeros_like(W)
    gb = np.zeros(net.N)
    lam = np.zeros(net.N)  # dL/dx_{t+1}, accumulated from the future
    for t in range(T - 1, -1, -1):
        e = _err(net, xs[t + 1], Y[t + 1])
        if e is not None:
            lam[net.outputs] += net.q * e
        lam[net.inputs] = 0.0  # clamped: nothing flows through an input
        g = net.dt * fps[t] * lam  # dL/da_t
        g[net.inputs] = 0.0
        gW += np.outer(g, xs[t])
        gb += g
        lam = (1.0 - net.dt) * lam + W.T @ g
    gb[net.inputs] = 0.0
    return gW * net.mask, gb, L


def rtrl(net: Leaky, W, b, U, Y, x0):
    """Real-time recurrent learning: the gradient carried forward in ``dx_t/dθ``.

    Parameters
    ----------
    As :func:`loss`.

    Returns
    -------
    ``(dL/dW, dL/db, L)``.
    """
    P = net.n_params()
    m = int(net.mask.sum())
    rows, cols = np.nonzero(net.mask)
    hid_idx = np.flatnonzero(net.hid)
    x = np.array(x0, dtype=float)
    x[net.inputs] = U[0]
    M = np.zeros((net.N, P))  # dx_t / dθ
    grad = np.zeros(P)
    L = 0.0
    for t in range(len(U) - 1):
        xn, _, fp = net.step(W, b, x, U[t + 1])
        J = (1.0 - net.dt) * np.eye(net.N) + net.dt * fp[:, None] * W
        Mn = J @ M
        Mn[rows, np.arange(m)] += net.dt * fp[rows] * x[cols]
        Mn[hid_idx, m + np.arange(len(hid_idx))] += net.dt * fp[hid_idx]
        Mn[net.inputs] = 0.0
        x, M = xn, Mn
        e = _err(net, x, Y[t + 1])
        if e is not None:
            L += 0.5 * net.q * float(e @ e)
            grad += net.q * e @ M[net.outputs]
    gW = np.zeros_like(W)
    gW[rows, cols] = grad[:m]
    gb = np.zeros(net.N)
    gb[hid_idx] = grad[m:]
    return gW, gb, L


def fixed_point(W, b, mask, acts, inputs, outputs, u, y, gamma: float = 1.0, q: float = 1.0,
                theta_rate: float = 0.0, tol: float = 1e-15, max_iter: int = 200) -> dict:
    """Newton's method for the activities, one linear solve for the costates.

    Parameters
    ----------
    W, b, mask, acts, inputs, outputs : the network as arrays; u, y : input
    and target; gamma, q : the loss weights; theta_rate : θ/Δt (0: exact);
    tol, max_iter : Newton's stopping rule.

    Returns
    -------
    ``{"x", "a", "p", "delta", "spectral_radius"}``; ``p`` solves
    ``((1 + theta_rate) I − Jᵀ) p = γ q (x − y)`` on non-input neurons.
    """
    net = Leaky(np.asarray(mask, bool), list(acts), np.asarray(inputs), np.asarray(outputs), 1.0)
    h = np.flatnonzero(net.hid)
    x = np.zeros(net.N)
    x[net.inputs] = u
    for _ in range(max_iter):
        a = W @ x + b
        f, fp = net.f(a)
        F = (x - f)[h]
        if np.max(np.abs(F)) < tol:
            break
        Jh = np.eye(len(h)) - fp[h, None] * W[np.ix_(h, h)]
        x[h] -= np.linalg.solve(Jh, F)
    else:
        raise RuntimeError("Newton's method did not converge")
    a = W @ x + b
    _, fp = net.f(a)
    J = fp[h, None] * W[np.ix_(h, h)]
    rhs = np.zeros(net.N)
    rhs[net.outputs] = gamma * q * (x[net.outputs] - y)
    p = np.zeros(net.N)
    p[h] = np.linalg.solve((1.0 + theta_rate) * np.eye(len(h)) - J.T, rhs[h])
    rad = float(np.max(np.abs(np.linalg.eigvals(J)))) if len(h) else 0.0
    return {"x": x, "a": a, "p": p, "delta": fp * p, "spectral_radius": rad}


def train(method: str, net: Leaky, W, b, U, Y, x0, lr: float, mu: float = 0.0, k: int = 10,
          epochs: int = 20, r_w: float = 0.0) -> dict:
    """Learn online on a stream; return the per-step squared errors and final parameters.

    Parameters
    ----------
    method : ``rtrl`` (update every step), ``tbptt`` (every ``k`` steps,
        gradient through the last ``k`` from the stored state at the window's
        start), ``bptt`` (``epochs`` passes over the whole stream, one update
        each; ``se`` is the last pass's).
    lr, mu : heavy-ball learning rate and momentum.
    r_w : weight decay per step (``r_w/2 ‖W_rec‖²`` added to every step's loss, on
        the recurrent weights only — those not from an input neuron — as in
        SCHEMES.md §3; input weights and biases are not decayed).

    Returns
    -------
    ``{"se": per-step ‖x_{t+1} − y_{t+1}‖², "W", "b", "x": final state}``.
    """
    T = len(U) - 1
    theta = net.pack(W, b)
    v = np.zeros_like(theta)
    # 1 on recurrent weights (the pre neuron is no input), 0 on input weights and biases
    decayed = net.pack((net.mask & net.hid[None, :]).astype(float), np.zeros(net.N))

    def update(g, steps=1):
        nonlocal theta, v, W, b
        v = mu * v + lr * (g + (r_w * steps) * decayed * theta)
        theta = theta - v
        W, b = net.unpack(theta, W, b)

    if method == "bptt":
        for _ in range(epochs):
            gW, gb, _ = bptt(net, W, b, U, Y, x0)
            update(net.pack(gW, gb), T)
        se, x = _pass(net, W, b, U, Y, x0)
        return {"se": se, "W": W, "b": b, "x": x}
    x = np.array(x0, dtype=float)
    x[net.inputs] = U[0]
    se = np.full(T, np.nan)
    P = net.n_params()
    m = int(net.mask.sum())
    rows, cols = np.nonzero(net.mask)
    hid_idx = np.flatnonzero(net.hid)
    M = np.zeros((net.N, P))
    start_x, start_t = x.copy(), 0
    for t in range(T):
        xn, _, fp = net.step(W, b, x, U[t + 1])
        if method == "rtrl":
            Mn = ((1.0 - net.dt) * M + net.dt * fp[:, None] * (W @ M))
            Mn[rows, np.arange(m)] += net.dt * fp[rows] * x[cols]
            Mn[hid_idx, m + np.arange(len(hid_idx))] += net.dt * fp[hid_idx]
            Mn[net.inputs] = 0.0
            M = Mn
        x = xn
        e = _err(net, x, Y[t + 1])
        if e is not None:
            se[t] = float(e @ e)
            if method == "rtrl":
                update(net.q * e @ M[net.outputs])
        if method == "tbptt" and (t + 1 - start_t == k or t == T - 1):
            gW, gb, _ = bptt(net, W, b, U[start_t:t + 2], Y[start_t:t + 2], start_x)
            update(net.pack(gW, gb), t + 1 - start_t)
            start_x, start_t = x.copy(), t + 1
    return {"se": se, "W": W, "b": b, "x": x}


def _pass(net: Leaky, W, b, U, Y, x0):
    x = np.array(x0, dtype=float)
    x[net.inputs] = U[0]
    se = np.full(len(U) - 1, np.nan)
    for t in range(len(U) - 1):
        x, _, _ = net.step(W, b, x, U[t + 1])
        e = _err(net, x, Y[t + 1])
        if e is not None:
            se[t] = float(e @ e)
    return se, x


def free_run(net: Leaky, W, b, U, Y, x0) -> np.ndarray:
    """Per-step squared errors of the network run with its parameters fixed.

    Parameters
    ----------
    As :func:`loss`.

    Returns
    -------
    ``‖x_{t+1} − y_{t+1}‖²`` per step (NaN without a target).
    """
    return _pass(net, W, b, U, Y, x0)[0]
