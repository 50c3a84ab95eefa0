"""The protocols a learning scheme implements, and what the engine hands it.

A scheme (``asyncnet/schemes/<name>``) is a parameter object (a typed,
validated dataclass) with two factories:

- ``neuron(pop, ports, rng)``: the local physics of one population,
- ``synapse(proj, ports, rng)``: the local physics of one projection.

Each returns a *model* with ``start(t) -> emits``, ``react(t, batch) ->
emits`` and ``state() -> dict``, and optionally a local timer
(``next_interval(rng)`` and ``on_timer(t) -> emits``). ``start = None``
says the model only reacts: with no timer either, it is not woken at the
first instant (it waits for messages), which in a per-neuron net spares a
wake-up for nearly every agent. An emit is
``(port, kind, payload)``: ``"out"`` goes to every neighbour in
``ports.outputs``, ``"in"`` to every one in ``ports.inputs``. A model never
learns an agent id other than from its ``ports``, never parses ids and never
reads the network: the engine hands each agent what it may address.

A scheme may also provide (all optional, found by attribute):

- ``requires_dag`` (bool): refuse cyclic networks;
- ``fixed_state_keys`` (bool): every agent's ``state()`` has from its
  construction on every key it will ever have (an output's data keys
  aside), so a recorder refuses a misspelt variable before the run, not at
  its first sample;
- ``stream(scenario, net)``: a data stream of its own kinds (else the
  generic ``asyncnet.data`` streams);
- ``analyses``: ``{kind: attach(run) -> result()}``, the analyses it adds;
- ``default_analysis``: the analysis kind when a scenario names none;
- ``report(summary) -> lines``: how its analyses print.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


class ModelError(TypeError):
    """A scheme's factory gave something that is not a :class:`Model`."""


@dataclass(frozen=True)
class Ports:
    """What one agent may address, as handed to a scheme's factory.

    Parameters
    ----------
    name:
        The agent's own id.
    inputs:
        Neighbours on the ``"in"`` port: a neuron's incoming synapses
        (sorted by pre-population), a synapse's pre-neuron.
    outputs:
        Neighbours on the ``"out"`` port: a neuron's outgoing synapses
        (sorted by post-population), a synapse's post-neuron.
    roles:
        The role (``input``, ``hidden``, ``output``) of each neighbouring
        neuron a synapse connects (empty for neurons).
    fan_in:
        For a neuron: the total size of the populations projecting into it
        (the width of what it receives; initialisations scale by it).
    source:
        For a neuron: the data source that feeds it (an input's values, an
        output's targets, as ``CONTROL`` messages), or ``None`` if none
        does — an output no target ever reaches.
    """

    name: str
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    roles: dict[str, str] = field(default_factory=dict)
    fan_in: int = 0
    source: str | None = None

    @property
    def neighbours(self) -> tuple[str, ...]:
        """Every agent this one may address: inputs then outputs."""
        return self.inputs + self.outputs

    def as_dict(self) -> dict[str, list[str]]:
        """The engine's port table: port name -> neighbours.

        Returns
        -------
        ``{"out": [...], "in": [...]}``.
        """
        return {"out": list(self.outputs), "in": list(self.inputs)}


@runtime_checkable
class Model(Protocol):
    """The local physics of one agent."""

    def start(self, t: float) -> list:
        """Emits at the first instant (``start = None``: none, and no wake-up then).

        Parameters
        ----------
        t:
            The start time.

        Returns
        -------
        The messages to send, as the scheme's ports expect them.
        """

    def react(self, t: float, batch: list) -> list:
        """Emits in answer to everything that arrived at ``t`` (canonical order).

        Parameters
        ----------
        t:
            The instant.
        batch:
            Every message that reached the agent at ``t``, in canonical order.

        Returns
        -------
        The messages to send.
        """

    def state(self) -> dict:
        """What the agent exposes to probes, recorders and ``--save-state``.

        Returns
        -------
        ``{variable: value}`` (arrays, or numbers); a recorder samples a copy.
        """


class Scheme(Protocol):
    """A learning scheme's parameter object with its two factories."""

    name: str

    def neuron(self, pop: Any, ports: Ports, rng: np.random.Generator) -> Model:
        """The physics of one population.

        Parameters
        ----------
        pop:
            The population (name, size, activation, role, bias).
        ports:
            Its neighbours: the synapses it may address.
        rng:
            Its own random stream (from the seed and its name).

        Returns
        -------
        The neuron agent's model.
        """

    def synapse(self, proj: Any, ports: Ports, rng: np.random.Generator) -> Model:
        """The physics of one projection.

        Parameters
        ----------
        proj:
            The projection (pre, post, weight, delay).
        ports:
            Its neighbours: its pre- and post-neuron.
        rng:
            Its own random stream.

        Returns
        -------
        The synapse agent's model.
        """
