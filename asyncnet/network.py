"""From a ``networkx.DiGraph`` to populations, projections and delays.

Nodes are populations (``size`` neurons with one ``activation`` and a
``role``); edges are projections (a weight matrix and a link delay). The
description is checked here, once, with errors that name what is wrong.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import networkx as nx
import numpy as np

from .gcpause import collector_paused
from .graphs import layered  # noqa: F401 (where it was: asyncnet.network.layered)
from .ids import SYNAPSE_SEP
from .messages import QUANTA, to_quanta
from .netparts import (  # noqa: F401 (agent_rng, init_weight: where they were)
    NetworkError,
    Population,
    Projection,
    WeightDraw,
    agent_rng,
    check_init,
    init_weight,
)

MAX_DELAY = 1e9
"""The longest link delay, in time units: arrival times (quanta) stay within
what the event log's int64 columns and float horizons hold, whatever the path."""


def _sig(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _sig_d(a: np.ndarray) -> np.ndarray:
    s = _sig(a)
    return s * (1.0 - s)


ACTIVATIONS: dict[str, tuple[Callable, Callable]] = {
    "tanh": (np.tanh, lambda a: 1.0 - np.tanh(a) ** 2),
    "sigmoid": (_sig, _sig_d),
    "linear": (lambda a: a * 1.0, lambda a: np.ones_like(a)),
    "relu": (lambda a: np.maximum(a, 0.0), lambda a: (a > 0).astype(float)),
    "softplus": (lambda a: np.logaddexp(0.0, a), _sig),
    # EP's hard sigmoid; f' is 1 on the closed interval (see schemes/ep/hopfield.py)
    "hardsigmoid": (lambda a: np.clip(a, 0.0, 1.0),
                    lambda a: ((a >= 0.0) & (a <= 1.0)).astype(float)),
}
"""Activation name -> (f, f')."""

ROLES = ("input", "hidden", "output")


def activation(name: str) -> tuple[Callable, Callable]:
    """The activation function and its derivative, by name."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise NetworkError(
            f"unknown activation {name!r} (known: {', '.join(sorted(ACTIVATIONS))})"
        ) from None


class Network:
    """Validated populations and projections built from a DiGraph."""

    def __init__(self, graph: nx.DiGraph, populations: dict, projections: dict):
        self.graph = graph
        self.populations: dict[str, Population] = populations
        self.projections: dict[tuple[str, str], Projection] = projections

    # -- construction ---------------------------------------------------
    @classmethod
    @collector_paused()  # a projection an edge, millions of them: no collection walks them
    def from_graph(
        cls,
        graph: nx.DiGraph,
        *,
        seed: int = 0,
        speed: float | None = None,
        require_dag: bool = False,
    ) -> Network:
        """Check ``graph`` and build its populations and projections.

        Weights not given on an edge are drawn from the projection's own
        random stream (``init`` = ``normal`` scaled by ``scale/sqrt(fan_in)``,
        or ``uniform``), so they depend on the seed and the edge only.

        Parameters
        ----------
        graph:
            Nodes are populations (``size``, ``activation``, ``role``,
            ``bias``), edges projections (``delay`` or ``length``, ``weight``,
            ``scale``, ``init``).
        seed:
            The run's seed (weights not given are drawn from it).
        speed:
            Default speed for edges given a ``length`` (the graph's own
            ``speed`` attribute wins).
        require_dag:
            Refuse a graph with cycles (schemes that need layers).

        Returns
        -------
        The validated :class:`Network`.

        Raises
        ------
        NetworkError
            An impossible network (no nodes, a bad size, a delay <= 0, ...).
        """
        if not isinstance(graph, nx.DiGraph):
            raise NetworkError("the network must be a networkx.DiGraph")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):  # "1" drew as 1
            raise NetworkError(f"seed must be an integer, got {type(seed).__name__} {seed!r}")
        if graph.number_of_nodes() == 0:
            raise NetworkError("the network has no nodes")
        speed = graph.graph.get("speed", speed)
        loop = next(nx.selfloop_edges(graph), None)
        if loop is not None:  # before the roles: a loop makes its node no sink
            raise NetworkError(f"edge {loop[0]}->{loop[1]}: self-loops are not allowed "
                               f"(use a population)")
        pops: dict[str, Population] = {}
        sizes = {str(n): a.get("size", 1) for n, a in graph.nodes(data=True)}
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
               for v in sizes.values()):
            check_memory(sizes, graph)  # before anything of that size is allocated
        for node, a in graph.nodes(data=True):
            name = str(node)  # the graph's own node for its degrees (an int 0 is not "0")
            if SYNAPSE_SEP in name or ":" in name:
                raise NetworkError(f"node {name!r}: names may not contain '{SYNAPSE_SEP}' or ':'")
            if not name.strip():  # "" ran, as agents "", "->c" and "src:"
                raise NetworkError(f"node {name!r}: a population needs a name")
            size = a.get("size", 1)
            if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
                raise NetworkError(f"node {name!r}: size must be a positive integer, got {size!r}")
            act = a.get("activation", "tanh")
            activation(act)
            if graph.degree(node) == 0 and graph.number_of_nodes() > 1:
                # it became an input (no incoming edge) and grew the input layer: the
                # data then failed for a size the user never gave
                raise NetworkError(f"node {name!r}: no projection in or out (it would take "
                                   f"no part in the run): connect it or remove it")
            role = a.get("role")
            if role is None:
                if graph.in_degree(node) == 0:
                    role = "input"
                elif graph.out_degree(node) == 0:
                    role = "output"
                else:
                    role = "hidden"
            if role not in ROLES:
                raise NetworkError(f"node {name!r}: role must be one of {ROLES}, got {role!r}")
            if role == "input" and graph.in_degree(node) > 0:
                raise NetworkError(f"node {name!r}: an input population cannot have incoming edges")
            bias = a.get("bias")
            if bias is None:
                bias = np.zeros(size)
            bias = np.asarray(bias, dtype=float).reshape(-1)
            if bias.shape != (size,):
                raise NetworkError(f"node {name!r}: bias has {bias.size} entries, size is {size}")
            pops[name] = Population(name, int(size), act, role, bias.copy(), dict(a))
        for role, edge in (("input", "incoming"), ("output", "outgoing")):
            if not any(p.role == role for p in pops.values()):
                raise NetworkError(f"the network has no {role} population (every node has an "
                                   f"{edge} edge: give one role = \"{role}\")")
        if require_dag and not nx.is_directed_acyclic_graph(graph):
            cycle = nx.find_cycle(graph)
            path = " -> ".join(str(u) for u, _ in cycle) + f" -> {cycle[0][0]}"
            raise NetworkError(f"this rule needs an acyclic network, but it has a cycle: {path}")
        projs: dict[tuple[str, str], Projection] = {}
        same_q: dict[int, int] = {}
        for u, v, a in graph.edges(data=True):
            u, v = str(u), str(v)
            if "delay" in a and ("length" in a or "speed" in a):
                raise NetworkError(f"edge {u}->{v}: give a delay, or a length (with a speed), "
                                   f"not both: one of the two would be ignored")
            if "delay" in a:
                delay = a["delay"]
            elif "length" in a:
                sp = a.get("speed", speed)
                if sp is None or not sp > 0:
                    raise NetworkError(f"edge {u}->{v}: a length needs a positive speed")
                delay = a["length"] / sp
            else:
                delay = 1.0
            number = isinstance(delay, (int, float, np.number)) and not isinstance(delay, bool)
            if number and isinstance(delay, int) and not 0 < delay < 2**53:
                number = False  # beyond what a float holds exactly (or not positive)
            if not number or not np.isfinite(delay) or delay <= 0:
                raise NetworkError(f"edge {u}->{v}: delay must be positive, got {delay!r}")
            if delay > MAX_DELAY:
                raise NetworkError(f"edge {u}->{v}: delay {delay:g} is too long (at most "
                                   f"{MAX_DELAY:g} time units)")
            dq = to_quanta(delay)
            dq = same_q.setdefault(dq, dq)  # one int object per distinct delay
            if dq < 2:
                raise NetworkError(f"edge {u}->{v}: delay {delay} is below the time resolution")
            shape = (pops[v].size, pops[u].size)
            w = a.get("weight")
            if type(w) is float and shape == (1, 1):
                # kept as the float (the graph's own object): see Projection
                projs[(u, v)] = Projection(u, v, w, dq, a)
                continue
            if w is None:
                init, scale = a.get("init", "normal"), a.get("scale", 1.0)
                try:
                    check_init(init, scale)
                except NetworkError as e:
                    raise NetworkError(f"edge {u}->{v}: {e}") from None
                # drawn when first read: a worker draws only its partition's synapses
                projs[(u, v)] = Projection(u, v, WeightDraw(shape, init, scale, seed), dq, a)
                continue
            try:
                w = np.asarray(w, dtype=float)
                if w.ndim < 2:
                    w = w.reshape(shape)
            except (TypeError, ValueError) as e:  # not numbers, or not as many as needed
                raise NetworkError(f"edge {u}->{v}: weight is not {shape[0]} x {shape[1]} "
                                   f"numbers ({e})") from None
            if w.shape != shape:
                raise NetworkError(
                    f"edge {u}->{v}: weight has shape {w.shape}, sizes need {shape}"
                )
            projs[(u, v)] = Projection(u, v, w.copy(), dq, a)
        return cls(graph, pops, projs)

    # -- queries ----------------------------------------------------------
    def pre(self, node: str) -> list[str]:
        """Populations projecting to ``node``, sorted.

        Parameters
        ----------
        node:
            A population.

        Returns
        -------
        Their names.
        """
        return list(self._adjacency()[0].get(node, ()))

    def post(self, node: str) -> list[str]:
        """Populations ``node`` projects to, sorted.

        Parameters
        ----------
        node:
            A population.

        Returns
        -------
        Their names.
        """
        return list(self._adjacency()[1].get(node, ()))

    def _adjacency(self) -> tuple[dict, dict]:
        # built once (per set of projections): a scan per query made building
        # a per-neuron network quadratic in its size
        key = len(self.projections)
        cached = getattr(self, "_adj", None)
        if cached is None or cached[0] != key:
            pre: dict[str, list[str]] = {}
            post: dict[str, list[str]] = {}
            for u, v in sorted(self.projections):
                pre.setdefault(v, []).append(u)
                post.setdefault(u, []).append(v)
            for d in (pre, post):
                for k in d:
                    d[k].sort()
            cached = self._adj = (key, pre, post)
        return cached[1], cached[2]

    def inputs(self) -> list[str]:
        """Input populations, sorted.

        Returns
        -------
        Their names.
        """
        return sorted(n for n, p in self.populations.items() if p.role == "input")

    def outputs(self) -> list[str]:
        """Output populations, sorted.

        Returns
        -------
        Their names.
        """
        return sorted(n for n, p in self.populations.items() if p.role == "output")

    def depth(self) -> int:
        """L: the number of edges on the longest path (DAGs only).

        Returns
        -------
        The depth ``L``.
        """
        # weight=None: count edges (an edge attribute "weight" holds a matrix)
        return nx.dag_longest_path_length(self.graph, weight=None)

    def layer_of(self) -> dict[str, int]:
        """Longest distance from an input, per population (DAGs only).

        Returns
        -------
        population -> its layer (0 for inputs).
        """
        layer: dict[str, int] = {}
        for n in nx.topological_sort(self.graph):
            ps = list(self.graph.predecessors(n))
            layer[str(n)] = 0 if not ps else 1 + max(layer[str(p)] for p in ps)
        return layer

    def min_delay_q(self) -> int:
        """The smallest projection delay, in quanta.

        Returns
        -------
        The delay (an int, ``QUANTA`` a time unit).
        """
        return min(p.delay_q for p in self.projections.values())


BYTES_PER_WEIGHT = 192
"""What one weight costs a run (the matrix, its gradient, copies in messages and
states), for the check before building, with a quarter to spare. Measured (peak
RSS, a hidden layer of 10⁵ and then 10⁶ neurons, the difference a weight):
diffusion 72 B, least action 85, continuous 154. It was 64: a net the check let
through could be killed by the kernel for want of memory."""


def machine_memory() -> int:
    """Physical memory of this machine in bytes (0 if unknown)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def check_memory(sizes: dict[str, int], graph: nx.DiGraph) -> None:
    """Refuse, before allocating, a network this machine cannot hold.

    Parameters
    ----------
    sizes:
        Population name -> size.
    graph:
        The network's graph (its edges are the projections).
    """
    n_w = sum(int(sizes[str(u)]) * int(sizes[str(v)]) for u, v in graph.edges())
    n_n = sum(int(v) for v in sizes.values())
    need = (BYTES_PER_WEIGHT * (n_w + n_n) + 1000 * len(sizes)
            + 2000 * graph.number_of_edges())
    have = machine_memory()
    if have and need > have:
        raise NetworkError(f"the network has {n_w:,} weights: a run needs about "
                           f"{need / 2**30:.3g} GiB, this machine has {have / 2**30:.3g} GiB")


def expand_to_neurons(net: Network) -> nx.DiGraph:
    """The same network written with size-1 nodes: one node per neuron.

    Neuron ``k`` of population ``p`` becomes node ``p_k``; every nonzero-shape
    projection becomes a complete bipartite set of 1x1 edges carrying the
    same weights, delays and biases. Used to check that both granularities
    give the same numbers.

    Parameters
    ----------
    net:
        A built network (weights drawn).

    Returns
    -------
    The per-neuron ``networkx.DiGraph``.
    """
    if not isinstance(net, Network):  # a graph here failed on a dict's missing .graph
        raise TypeError(f"expand_to_neurons takes a built Network (Network.from_graph(g)), "
                        f"got {type(net).__name__}")
    g = nx.DiGraph()
    g.graph.update(net.graph.graph)
    names: dict[str, list[str]] = {}
    for name, p in net.populations.items():
        names[name] = [f"{name}_{k}" for k in range(p.size)]
        for k in range(p.size):
            g.add_node(names[name][k], size=1, activation=p.activation, role=p.role,
                       bias=[p.bias[k]])
    for (u, v), pr in net.projections.items():
        delay = pr.delay_q / QUANTA
        pre, post = names[u], names[v]  # one string per node, not one per edge end
        for i in range(pr.weight.shape[0]):
            for j in range(pr.weight.shape[1]):
                # a plain number (a 1 x 1 weight): the graph keeps its edge
                # attributes, and [[w]] would cost two lists per synapse
                g.add_edge(pre[j], post[i], delay=delay, weight=float(pr.weight[i, j]))
    return g


def response_delay(net: Network) -> float:
    """Time for an input change to reach the outputs (longest delay path; 0 with cycles)."""
    if not nx.is_directed_acyclic_graph(net.graph):
        return 0.0
    g = nx.DiGraph()
    g.add_weighted_edges_from((u, v, p.delay) for (u, v), p in net.projections.items())
    return float(nx.dag_longest_path_length(g, weight="weight"))


def traffic_horizon(net: Network) -> float:
    """How long after an input change the traffic metrics follow its waves."""
    return 4 * response_delay(net) + 4


def layout(net: Network) -> tuple[dict[str, slice], int]:
    """Every population's slice of one flat vector (populations in sorted order).

    The numpy faces and references flatten a network this way.

    Returns
    -------
    ``({population: slice}, total size)``.
    """
    sl, off = {}, 0
    for name in sorted(net.populations):
        sl[name] = slice(off, off + net.populations[name].size)
        off += net.populations[name].size
    check_dense(off)  # every caller makes (off, off) matrices next
    return sl, off


DENSE_COPIES = 4
"""Dense ``n × n`` float64 matrices a flattened face or reference holds at once
(the weights, a Jacobian, ``I - J`` and the solver's copy)."""


def check_dense(n: int, advice: str = "use fewer neurons") -> None:
    """Refuse, before allocating, a network flattened to more neurons than this
    machine holds as dense ``n × n`` matrices (numpy's MemoryError otherwise).

    Parameters
    ----------
    n:
        Neurons in all (the flat vector's length).
    advice:
        What the message suggests instead.
    """
    need = DENSE_COPIES * 8 * n * n
    have = machine_memory()
    if have and need > have:
        raise NetworkError(f"this rule or analysis works on the network as one dense "
                           f"{n:,} × {n:,} matrix: about {need / 2**30:.3g} GiB, this "
                           f"machine has {have / 2**30:.3g} GiB ({advice})")
