"""Plain numpy backprop on a DAG: the exact gradient the schemes are judged by.

It shares nothing with the agents: it reads the network description (weights,
biases, activations) and runs the textbook forward and backward passes.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from .network import Network, activation


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
