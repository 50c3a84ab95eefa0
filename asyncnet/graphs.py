"""Graphs to build a network from: :func:`layered`, a chain of populations.

Any ``networkx.DiGraph`` with the node and edge attributes of
:meth:`asyncnet.network.Network.from_graph` is a network; this is the usual one.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import networkx as nx
import numpy as np

from .netparts import NetworkError


def layered(
    sizes: list[int],
    *,
    activation: str = "tanh",
    out_activation: str | None = None,
    delay: float = 1.0,
    scale: float = 1.0,
    init: str = "normal",
) -> nx.DiGraph:
    """A chain of populations ``l0 -> l1 -> ... -> lL`` with the given sizes.

    Parameters
    ----------
    sizes:
        Neurons per layer, input first (at least two layers).
    activation:
        Activation of the hidden layers (the input layer is ``linear``).
    out_activation:
        Activation of the output layer (default: ``activation``).
    delay:
        Delay of every projection.
    scale:
        Initial weights ~ N(0, scale²/fan_in) (``normal``).
    init:
        ``"normal"`` or ``"uniform"``.

    Returns
    -------
    A ``networkx.DiGraph`` with nodes ``l0``... (attributes ``size``,
    ``activation``, ``role``) and edges with ``delay``, ``scale``, ``init``;
    edit it freely before building a :class:`~asyncnet.Scenario`.
    """
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, (Sequence, np.ndarray)):
        raise NetworkError(f"layered takes a list of layer sizes ([2, 4, 1]), got "
                           f"{type(sizes).__name__} {sizes!r}"[:200])
    if len(sizes) < 2:
        raise NetworkError("a layered network needs at least two layer sizes")
    for i, n in enumerate(sizes):  # here, not when the net is built: the graph is handed on
        if not isinstance(n, Integral) or isinstance(n, bool) or n < 1:
            raise NetworkError(f"node 'l{i}': size must be a positive integer, got {n!r}")
    sizes = [int(n) for n in sizes]  # numpy's integers too: the scenario's TOML holds ints
    g = nx.DiGraph()
    L = len(sizes) - 1
    for i, n in enumerate(sizes):
        role = "input" if i == 0 else "output" if i == L else "hidden"
        act = "linear" if i == 0 else (out_activation or activation) if i == L else activation
        g.add_node(f"l{i}", size=n, activation=act, role=role)
    for i in range(L):
        g.add_edge(f"l{i}", f"l{i + 1}", delay=delay, scale=scale, init=init)
    return g
