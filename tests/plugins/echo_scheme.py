"""A scheme from outside the package: each neuron forwards what it receives.

It lives outside ``asyncnet`` and is found through its entry point
(``echo_scheme-0.1.dist-info/entry_points.txt`` beside it), as a scheme in
another installed package would be. An input neuron forwards its data; any
other neuron forwards the sum of what its synapses sent; a synapse forwards
``scale * x``. Nothing learns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from asyncnet.analysis.catalogue import kinds
from asyncnet.messages import FORWARD


@dataclass
class Echo:
    """Parameters: the factor every synapse multiplies by."""

    scale: float = 1.0
    name: ClassVar[str] = "echo"
    requires_dag: ClassVar[bool] = True
    analyses: ClassVar[dict] = kinds("accuracy", "none")

    def neuron(self, pop, ports, rng):
        """Forward what arrives."""
        return EchoNeuron(pop.size, pop.role)

    def synapse(self, proj, ports, rng):
        """Relay ``scale * x``."""
        return EchoSynapse(self.scale)


class EchoNeuron:
    def __init__(self, n: int, role: str):
        self.x = np.zeros(n)
        self.role = role

    def start(self, t):
        return []

    def react(self, t, batch):
        if self.role == "input":
            got = [m.payload for m in batch if m.kind != FORWARD]
            if got:
                self.x = np.asarray(got[-1], dtype=float)
        else:
            fwd = [m.payload for m in batch if m.kind == FORWARD]
            if not fwd:
                return []
            self.x = np.sum(fwd, axis=0)
        return [("out", FORWARD, self.x)]

    def state(self):
        return {"state": self.x}


class EchoSynapse:
    def __init__(self, scale: float):
        self.scale = scale

    def start(self, t):
        return []

    def react(self, t, batch):
        return [("out", FORWARD, self.scale * m.payload) for m in batch]

    def state(self):
        return {}
