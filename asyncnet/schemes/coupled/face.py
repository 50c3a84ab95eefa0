"""Coupled learning's numpy face as the energy analyses use it.

The engine's resistor network as one :class:`ResistorNet`, the engine's
estimates in the same layout, and the independent reference: the free state
by a direct linear solve and the gradient by implicit differentiation.
"""

from __future__ import annotations

import numpy as np

from ...network import Network, layout
from . import resistor as R
from .resistor import ResistorNet


def resistor_of(net: Network, conductances: dict[str, np.ndarray]
                ) -> tuple[ResistorNet, dict[str, slice]]:
    """The engine's network as one :class:`ResistorNet` (nodes ordered by population).

    ``conductances`` maps a synapse name to its ``K``; inputs are the nodes of
    input populations fed by data (``net.inputs()`` minus grounds is up to the
    caller: every input-role node here is a voltage source).
    """
    names = sorted(net.populations)
    sl, n = layout(net)
    edges, ks = [], []
    for (u, v), pr in sorted(net.projections.items()):
        K = conductances[pr.name]
        for i, j in zip(*np.nonzero(K), strict=True):
            edges.append((sl[v].start + i, sl[u].start + j))
            ks.append(K[i, j])
    inputs = [i for nm in names if net.populations[nm].role == "input"
              for i in range(sl[nm].start, sl[nm].stop)]
    outputs = [i for nm in names if net.populations[nm].role == "output"
               for i in range(sl[nm].start, sl[nm].stop)]
    return ResistorNet(n, np.array(edges), np.array(ks), inputs, outputs), sl


class CoupledFace:
    """The hooks :mod:`asyncnet.schemes.energy` needs, for coupled learning."""

    nudge_key = "eta"
    nudge_symbol = "η"
    activity_key = "state"
    biases_in_Q = False

    @staticmethod
    def side(rule) -> str:
        """How the estimate is taken."""
        return "CL (vs the H-weighted cost)"

    @staticmethod
    def build(net: Network, W: dict, b: dict):
        """The numpy face with the engine's current conductances; ``(face, slices)``."""
        return resistor_of(net, W)

    @staticmethod
    def full_input(face, sl, net, X: np.ndarray, inp: str) -> np.ndarray:
        """Source voltages of a batch (input nodes in population order, others at 0)."""
        n_in = sum(net.populations[nm].size for nm in net.inputs())
        U = np.zeros((len(X), n_in))
        pos = 0
        for nm in sorted(net.inputs()):
            if nm == inp:
                U[:, pos:pos + X.shape[1]] = X
            pos += net.populations[nm].size
        return U

    @staticmethod
    def free_outputs(face, sl, net, X, inp: str, eps: float) -> np.ndarray:
        """Free-state output voltages for a batch of inputs."""
        return R.solve(face, CoupledFace.full_input(face, sl, net, X, inp))[:, face.outputs]

    @staticmethod
    def flat_estimate(states: dict, net, face, sl) -> np.ndarray:
        """The engine's estimates, one per resistor, in the face's edge order."""
        est = []
        for pr in sorted(net.projections.values(), key=lambda p: (p.pre, p.post)):
            st = states[pr.name]
            est += [st["grad"][i, j] for i, j in zip(*np.nonzero(st["weight"]), strict=True)]
        return np.array(est)

    @staticmethod
    def reference(face, sl, net, X, Y, inp, rule):
        """(implicit gradient, free states) of the face for the batch ``(X, Y)``."""
        U = CoupledFace.full_input(face, sl, net, X, inp)
        g = R.implicit_gradient(face, U, Y, M=R.effective_conductance(face))
        return g, R.solve(face, U)
