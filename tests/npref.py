"""An independent reference for tests: backprop written from scratch.

It shares no code with asyncnet: graphs are given as plain dicts, the
backward pass is the chain rule written per node, and ``finite_diff``
checks it in turn.
"""

from __future__ import annotations

import numpy as np

ACT = {
    "tanh": (np.tanh, lambda a: 1 / np.cosh(a) ** 2),
    "linear": (lambda a: a, lambda a: np.ones_like(a)),
    "sigmoid": (lambda a: 1 / (1 + np.exp(-a)), lambda a: np.exp(-a) / (1 + np.exp(-a)) ** 2),
}


def forward(order, parents, W, b, act, u):
    """order: topological list; parents[v]: list; W[(p, v)]; u: {input: x}."""
    x, a = {}, {}
    for v in order:
        if not parents[v]:
            x[v] = a[v] = np.array(u[v], dtype=float)
            continue
        a[v] = b[v] + sum(W[(p, v)] @ x[p] for p in parents[v])
        x[v] = ACT[act[v]][0](a[v])
    return x, a


def grads(order, parents, W, b, act, u, y):
    """dV/dW for V = ½ Σ_outputs ‖x - y‖², outputs = keys of y."""
    x, a = forward(order, parents, W, b, act, u)
    children = {v: [c for c in order if v in parents[c]] for v in order}
    dx = {}
    for v in reversed(order):
        g = np.zeros_like(x[v])
        if v in y:
            g += x[v] - y[v]
        for c in children[v]:
            g += W[(v, c)].T @ (ACT[act[c]][1](a[c]) * dx[c])
        dx[v] = g
    return {(p, v): np.outer(ACT[act[v]][1](a[v]) * dx[v], x[p]) for (p, v) in W}


def loss(order, parents, W, b, act, u, y):
    """½ Σ ‖x_out - y‖²."""
    x, _ = forward(order, parents, W, b, act, u)
    return 0.5 * sum(float(np.sum((x[o] - y[o]) ** 2)) for o in y)


def finite_diff(order, parents, W, b, act, u, y, key, eps=1e-6):
    """Central finite differences of the loss in W[key]."""
    g = np.zeros_like(W[key])
    for idx in np.ndindex(*g.shape):
        Wp = {k: v.copy() for k, v in W.items()}
        Wm = {k: v.copy() for k, v in W.items()}
        Wp[key][idx] += eps
        Wm[key][idx] -= eps
        g[idx] = (loss(order, parents, Wp, b, act, u, y)
                  - loss(order, parents, Wm, b, act, u, y)) / (2 * eps)
    return g


def from_network(net):
    """Read a description (weights, biases, activations) out of a Network."""
    import networkx as nx
    order = [str(n) for n in nx.topological_sort(net.graph)]
    parents = {v: sorted(str(p) for p in net.graph.predecessors(v)) for v in order}
    W = {k: p.weight.copy() for k, p in net.projections.items()}
    b = {v: net.populations[v].bias.copy() for v in order}
    act = {v: net.populations[v].activation for v in order}
    return order, parents, W, b, act
