"""How agents are wired: who may address whom, over which delay, and the routes.

The engine's locality graph (:func:`link_table`), each agent's ports
(:func:`ports_of`: what its rule may address) and, once every agent exists,
each agent's routes (:func:`wire`): the receivers of its ports themselves,
so that sending a message looks nothing up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .agents import Agent, Elsewhere, Routes
from .api import Ports
from .ids import is_source, is_synapse, source_id, source_node, split_synapse, synapse_id
from .messages import LocalityError, to_quanta
from .network import Network


class ReceiverTable:
    """The receivers of every distinct route, as agent indices (a recorder's view).

    A route's third entry is its group's key here: ``receivers(keys)``
    gives, for a list of keys, every receiver's index in one numpy array
    (``-1`` for one another partition runs), so that a send to a
    neuron's 120 synapses is recorded as one entry, not 120.
    """

    def __init__(self) -> None:
        # by the group tuple's id: the routes share one tuple per distinct group,
        # kept here (no copy of its indices: a neuron's group is its synapses)
        self._keys: dict[int, int] = {}
        self._groups: list[tuple] = []
        self._frozen: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._here: np.ndarray | None = None

    def key(self, group: tuple) -> int:
        """The key of a group of receivers (``Agent``/``Elsewhere``), made at first sight."""
        k = self._keys.get(id(group))
        if k is None:
            k = self._keys[id(group)] = len(self._groups)
            self._groups.append(group)
            self._frozen = self._here = None
        return k

    def group(self, key: int) -> tuple:
        """The receivers of ``key`` (each with its ``idx``; negative: another partition's)."""
        return self._groups[key]

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(flat receivers, each key's start in it, each key's length)`` (int64)."""
        if self._frozen is None:
            lens = np.fromiter(map(len, self._groups), dtype=np.int64, count=len(self._groups))
            flat = np.fromiter((a.idx for g in self._groups for a in g), dtype=np.int64,
                               count=int(lens.sum()))
            self._frozen = (flat, np.cumsum(lens) - lens, lens)
        return self._frozen

    def here(self) -> np.ndarray:
        """How many of each key's receivers this engine runs (int64, by key): not
        those of another partition (a negative index in :meth:`arrays`)."""
        if self._here is None:
            flat, start, length = self.arrays()
            at = np.concatenate(([0], np.cumsum(flat >= 0)))
            self._here = at[start + length] - at[start]
        return self._here


def wire(agents: dict[str, Agent], wiring: list[tuple[Agent, tuple[str, ...], tuple[str, ...]]],
         index: Callable[[str], int] | None = None) -> ReceiverTable:
    """Set each agent's routes from its ports' neighbours (every agent exists now).

    Parameters
    ----------
    agents:
        the engine's agents by name (its partition's, in a cluster).
    wiring:
        ``(agent, its "out" neighbours, its "in" neighbours)`` for each agent.
    index:
        agent name -> its index in the run's agent table, for the
        receivers another partition runs (needed only if there are any).

    A route holds the receiving agent itself (or an :class:`Elsewhere`
    for one another partition runs) and the link's delay, so that the
    engine's ``_emit`` looks nothing up a message: the delay in the
    sender's link table and the receiver in ``agents`` were two
    look-ups in tables far apart in a large net's memory, a tenth of a
    message's cost (L 1.70 -> 1.49 µs a message, S 1.22 -> 1.14). Equal
    tuples are shared (the routes of every synapse into one neuron), so
    a synapse agent costs its place in each of its two neurons' routes.

    Returns
    -------
    The :class:`ReceiverTable` of the routes' group keys.

    Raises
    ------
    LocalityError
        A port lists an agent that is not a graph neighbour.
    """
    shared: dict[tuple, tuple] = {}
    table = ReceiverTable()
    elsewhere: dict[str, Elsewhere] = {}
    # a port of one neighbour (every synapse's two): routes by (neighbour, delay),
    # one look-up instead of building and hashing tuples of agents (3.9 M
    # synapses took 25 CPU-s more to wire that way)
    single: dict[tuple[str, int], Routes] = {}

    def receiver(d: str) -> Agent | Elsewhere:
        to = agents.get(d)
        if to is None:
            to = elsewhere.get(d)
            if to is None:
                if index is None:
                    raise LocalityError(f"{d} is not an agent of this engine")
                to = elsewhere[d] = Elsewhere(d, index(d))
        return to

    for agent, outputs, inputs in wiring:
        links = agent.links
        for port, names in (("out", outputs), ("in", inputs)):
            if len(names) == 1:
                d = names[0]
                delay = links.get(d)
                if delay is None:
                    raise LocalityError(f"{agent.name} cannot address {d}: not a neighbour")
                routes = single.get((d, delay))
                if routes is None:
                    group = (receiver(d),)
                    routes = single[d, delay] = ((delay, group, _key(table, group)),)
            else:
                routes = _routes(agent, names, receiver, shared, table)
            if port == "out":
                agent.routes_out = routes
            else:
                agent.routes_in = routes
    return table


def _routes(agent: Agent, names: tuple[str, ...], receiver: Callable[[str], Any],
            shared: dict[tuple, tuple], table: ReceiverTable) -> Routes:
    """A port's routes: runs of neighbours with the same delay (equal tuples shared)."""
    runs: list[tuple[int, list]] = []
    for d in names:
        delay = agent.links.get(d)
        if delay is None:
            raise LocalityError(f"{agent.name} cannot address {d}: not a neighbour")
        if runs and runs[-1][0] == delay:
            runs[-1][1].append(receiver(d))
        else:
            runs.append((delay, [receiver(d)]))
    routes = []
    for delay, group in runs:
        g = _shared(shared, tuple(group))
        routes.append((delay, g, _key(table, g)))
    return _shared(shared, tuple(routes))


def _key(table: ReceiverTable, group: tuple) -> int | None:
    """A route's group key, or ``None`` if another partition runs every receiver:
    such a send delivers nothing here, and the recorders here are not handed it
    (259,524 of the two partitions' 1,542,230 sends on the 24-unit L net split in two,
    each checked, converted and expanded to no record by the log's capture)."""
    if all(type(a) is Elsewhere for a in group):
        return None
    return table.key(group)


def _shared(table: dict, value: tuple) -> tuple:
    """The one copy of ``value`` kept in ``table`` (equal tuples become one object)."""
    return table.setdefault(value, value)


def ports_of(net: Network, name: str, canon: dict[str, str] | None = None) -> Ports:
    """What agent ``name`` may address (its graph neighbours), by port.

    Parameters
    ----------
    net:
        the network.
    name:
        the agent.
    canon:
        optional: every agent name -> the one string object to use for it
        (a per-neuron net would otherwise hold five copies of each synapse
        name).

    Returns
    -------
    The agent's :class:`~asyncnet.api.Ports`.
    """
    c = (lambda n: n) if canon is None else canon.__getitem__
    if is_source(name):
        return Ports(name, outputs=(c(source_node(name)),))
    if is_synapse(name):
        pre, post = split_synapse(name)
        pre, post = c(pre), c(post)
        return Ports(name, inputs=(pre,), outputs=(post,),
                     roles={pre: net.populations[pre].role, post: net.populations[post].role})
    pres = net.pre(name)
    return Ports(name, inputs=tuple(c(synapse_id(u, name)) for u in pres),
                 outputs=tuple(c(synapse_id(name, v)) for v in net.post(name)),
                 fan_in=sum(net.populations[u].size for u in pres))


def link_table(net: Network, sources: dict, source_delay: float) -> dict[str, dict[str, int]]:
    """Every agent's neighbours and link delays (quanta): the locality graph."""
    links: dict[str, dict[str, int]] = {n: {} for n in net.populations}
    same: dict[int, int] = {}  # one int object per distinct delay, not two per synapse
    for (u, v), pr in net.projections.items():
        first, second = pr.legs
        first, second = same.setdefault(first, first), same.setdefault(second, second)
        name = pr.name  # one string object per synapse, shared by every table
        links[name] = {u: first, v: second}
        links[u][name] = first
        links[v][name] = second
    for node in sources:
        if node not in net.populations:
            raise ValueError(f"data source for unknown population {node!r}")
        dq = to_quanta(source_delay)
        links[source_id(node)] = {node: dq}
        links[node][source_id(node)] = dq
    return links
