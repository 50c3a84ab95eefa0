"""EP's numpy face as the energy analyses use it (:mod:`asyncnet.schemes.energy`).

The engine's network flattened into one :class:`HopfieldNet`, the engine's
estimates flattened the same way, and the independent reference: the free
state relaxed (and Newton-polished where the energy is smooth) and the
gradient by implicit differentiation.
"""

from __future__ import annotations

import numpy as np

from ...network import Network, layout
from . import hopfield as H
from .hopfield import HopfieldNet


def hopfield_of(net: Network) -> tuple[HopfieldNet, dict[str, slice]]:
    """The same network as one :class:`HopfieldNet` (units ordered by population name).

    All non-input populations must share one activation.
    """
    names = sorted(net.populations)
    sl, n = layout(net)
    acts = {p.activation for p in net.populations.values() if p.role != "input"}
    if len(acts) != 1:
        raise ValueError(f"the numpy face needs one activation for all free units, got {acts}")
    W = np.zeros((n, n))
    mask = np.zeros((n, n), bool)
    for (u, v), pr in net.projections.items():
        W[sl[v], sl[u]] = pr.weight
        W[sl[u], sl[v]] = pr.weight.T
        mask[sl[v], sl[u]] = True
        mask[sl[u], sl[v]] = True
    b = np.zeros(n)
    clamped = np.zeros(n, bool)
    out = []
    for nm in names:
        p = net.populations[nm]
        b[sl[nm]] = p.bias
        clamped[sl[nm]] = p.role == "input"
        if p.role == "output":
            out += list(range(sl[nm].start, sl[nm].stop))
    return HopfieldNet(W, b, mask, clamped, np.array(out, int), acts.pop()), sl


class EPFace:
    """The hooks :mod:`asyncnet.schemes.energy` needs, for EP."""

    nudge_key = "beta"
    nudge_symbol = "β"
    activity_key = "activity"
    biases_in_Q = True

    @staticmethod
    def side(rule) -> str:
        """How the estimate is taken."""
        return "symmetric ±β" if rule.symmetric else "one-sided"

    @staticmethod
    def build(net: Network, W: dict, b: dict):
        """The numpy face with the engine's current parameters; ``(face, slices)``."""
        for pr in net.projections.values():
            pr.weight = np.array(W[pr.name])
        for nm, p in net.populations.items():
            if b.get(nm) is not None:
                p.bias = np.array(b[nm])
        return hopfield_of(net)

    @staticmethod
    def full_input(face, sl, net, X: np.ndarray, inp: str) -> np.ndarray:
        """Clamped values of a batch in the face's layout (other units at 0)."""
        S = np.zeros((len(X), face.n))
        S[:, sl[inp]] = X
        return S

    @staticmethod
    def free_outputs(face, sl, net, X, inp: str, eps: float) -> np.ndarray:
        """Free-state outputs for a batch of inputs."""
        U = EPFace.full_input(face, sl, net, X, inp)
        return H.relax(face, U, eps=eps, tol=1e-12, steps=3000)[:, face.out]

    @staticmethod
    def flat_estimate(states: dict, net, face, sl) -> np.ndarray:
        """The engine's estimates (``states``: agent -> state) in the face's layout."""
        Wg = np.zeros((face.n, face.n))
        gb = np.zeros(face.n)
        for (u, v), pr in net.projections.items():
            G = states[pr.name]["grad"]
            Wg[sl[v], sl[u]] = G
            Wg[sl[u], sl[v]] = G.T
        for nm, s in sl.items():
            gb[s] = states[nm].get("grad_bias", 0.0)
        return face.flat(Wg, gb)

    @staticmethod
    def reference(face, sl, net, X, Y, inp, rule):
        """(implicit gradient, free states) of the face for the batch ``(X, Y)``."""
        U = EPFace.full_input(face, sl, net, X, inp)
        gs, states = [], []
        for u, y in zip(U, Y, strict=True):
            s0 = H.relax(face, u, eps=rule.eps, tol=1e-14)
            if face.act != "hardsigmoid":  # Newton needs a smooth energy
                s0 = H.newton_polish(face, s0)
            gs.append(face.flat(*H.implicit_gradient(face, s0, y)))
            states.append(s0)
        return np.mean(gs, axis=0), np.array(states)
