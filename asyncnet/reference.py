"""Plain numpy backprop on a DAG: the exact gradient the schemes are judged by.

It shares nothing with the agents: it reads the network description (weights,
biases, activations) and runs the textbook forward and backward passes.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from .network import Network, activation, layout


def backprop(net: Network, inputs: dict[str, np.ndarray], targets: dict[str, np.ndarray],
             weights: dict | None = None) -> dict:
    """Exact gradients of ``½ Σ‖x_out - y‖²`` for frozen weights.

    Returns ``{"x": {node: x}, "delta": {node: dV/da}, "grad": {(u, v): dV/dW}}``.
    """
    W = weights or {k: p.weight for k, p in net.projections.items()}
    order = [str(n) for n in nx.topological_sort(net.graph)]
    x, a = {}, {}
    for v in order:
        p = net.populations[v]
        if p.role == "input":
            x[v] = a[v] = np.asarray(inputs[v], dtype=float)
            continue
        s = p.bias.copy()
        for u in net.pre(v):
            s = s + W[(u, v)] @ x[u]
        a[v] = s
        x[v] = activation(p.activation)[0](s)
    delta: dict[str, np.ndarray] = {}
    for v in reversed(order):
        p = net.populations[v]
        g = np.zeros(p.size)
        for w in net.post(v):
            g = g + W[(v, w)].T @ delta[w]
        if p.role == "output":
            g = g + (x[v] - np.asarray(targets[v], dtype=float))
        delta[v] = g if p.role == "input" else activation(p.activation)[1](a[v]) * g
    grad = {(u, v): np.outer(delta[v], x[u]) for (u, v) in net.projections}
    return {"x": x, "delta": delta, "grad": grad}


def loss(net: Network, inputs: dict, targets: dict) -> float:
    """``½ Σ‖x_out - y‖²`` of the frozen network (a forward pass)."""
    x = backprop(net, inputs, targets)["x"]
    return 0.5 * sum(float(np.sum((x[o] - targets[o]) ** 2)) for o in net.outputs())


def recurrent_backprop(net: Network, inputs: dict[str, np.ndarray],
                       targets: dict[str, np.ndarray], *, tol: float = 1e-14,
                       max_iter: int = 100) -> dict:
    """Almeida–Pineda gradient of the fixed point, on any digraph.

    The fixed point ``x = σ(W x + b)`` (inputs clamped) is found by Newton's
    method on the whole flattened network, then the sensitivities solve the
    linear system ``(I - Jᵀ) λ = ∂V/∂x`` (implicit differentiation) with
    ``J = ∂σ(Wx + b)/∂x``. Nothing here relaxes in time, so it is independent
    of every rule. Returns ``{"x", "delta", "grad", "J"}`` like :func:`backprop`
    (``J`` the flattened Jacobian at the fixed point, over free neurons).
    Raises ``ValueError`` when Newton's method does not converge.
    """
    names = sorted(net.populations)
    sl, off = layout(net)
    W = np.zeros((off, off))
    b = np.zeros(off)
    free = np.ones(off, dtype=bool)
    x = np.zeros(off)
    for (u, v), p in net.projections.items():
        W[sl[v], sl[u]] = p.weight
    for n in names:
        p = net.populations[n]
        b[sl[n]] = p.bias
        if p.role == "input":
            free[sl[n]] = False
            x[sl[n]] = np.asarray(inputs[n], dtype=float)

    def sig(a: np.ndarray, deriv: bool) -> np.ndarray:
        out = np.empty_like(a)
        for n in names:
            f, fp = activation(net.populations[n].activation)
            out[sl[n]] = (fp if deriv else f)(a[sl[n]])
        return out

    F = np.flatnonzero(free)
    for _ in range(max_iter):
        a = W @ x + b
        r = (x - sig(a, False))[F]
        if np.max(np.abs(r), initial=0.0) <= tol:
            break
        J = (sig(a, True)[:, None] * W)[np.ix_(F, F)]
        x[F] = x[F] - np.linalg.solve(np.eye(F.size) - J, r)
    else:
        raise ValueError("Newton's method found no fixed point")
    a = W @ x + b
    D = sig(a, True)
    J = (D[:, None] * W)[np.ix_(F, F)]
    dV = np.zeros(off)
    for o in net.outputs():
        dV[sl[o]] = x[sl[o]] - np.asarray(targets[o], dtype=float)
    lam = np.zeros(off)
    lam[F] = np.linalg.solve(np.eye(F.size) - J.T, dV[F])
    delta = D * lam
    xs = {n: x[sl[n]].copy() for n in names}
    ds = {n: (lam if net.populations[n].role == "input" else delta)[sl[n]].copy()
          for n in names}
    grad = {(u, v): np.outer(delta[sl[v]], x[sl[u]]) for (u, v) in net.projections}
    return {"x": xs, "delta": ds, "grad": grad, "J": J}
