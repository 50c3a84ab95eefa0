"""Split the agents of a network over workers, cutting long-delay links.

The window of conservative synchronisation is the smallest delay of a link
that crosses partitions (the *lookahead*), so a good cut keeps short links
inside a partition. ``partition`` looks for the largest threshold ``tau``
such that the groups of agents joined by links shorter than ``tau`` can
still be spread evenly over the workers; the cut then consists of links of
delay ``>= tau`` only. Groups are laid out in breadth-first order from the
inputs and split into contiguous chunks, so neighbouring layers stay
together and the cut stays small.

Within a threshold, the groups are placed by METIS (``pymetis``, the
``cluster`` extra: ``pip install 'asyncnet[cluster]'``), which balances the
load and minimises the links cut between groups, and then moved so that each
depth (hops from the inputs) is spread evenly too (:mod:`.depth`: the load of
a window is that of a few depths); without ``pymetis``,
``auto`` falls back to laying groups out in breadth-first order from the
inputs and splitting them into contiguous chunks (method ``layers``), and
says so in the partition's ``note``. ``metis-cut`` is METIS's partition as
it comes (the fewest links cut, each depth wherever METIS put it: for a
cluster whose network, not its cores, is the limit); ``layers`` and
``round-robin`` can also be asked for by name.

A data source (``src:<node>``) always travels with its population.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ..gcpause import collector_paused
from ..ids import is_source
from ..messages import to_time
from .depth import even_depths

BALANCE = 1.3
"""Largest accepted load of a partition, relative to an even share."""

EVEN_BALANCE = 1.05
"""Spreading every depth evenly may leave the whole load this uneven, or METIS's."""
EVEN_CUT = 1.35
"""... and may cut this many times METIS's links (else METIS's partition stands)."""

METHODS = ("auto", "metis", "metis-cut", "layers", "round-robin")
METIS_SEED = 7
"""METIS's random seed: the same network always gets the same partition."""
MAX_THRESHOLDS = 48
"""At most this many candidate thresholds are tried (each costs one pass)."""


def load_of(n_links: int) -> int:
    """The load an agent with ``n_links`` links puts on its worker.

    Parameters
    ----------
    n_links:
        the agent's links (neighbours).

    Returns
    -------
    Its weight: its wake-ups plus the messages it handles, which go with its
    links (on per-neuron nets this is closer to the messages per part than
    the links alone).
    """
    return 1 + n_links


class PartitionError(ValueError):
    """The network cannot be split as asked."""


@dataclass
class Partition:
    """Agents per worker, the links that cross, and the lookahead."""

    parts: list[list[str]]
    owner: dict[str, int]
    cut: list[tuple[str, str, int]]
    lookahead_q: int | None
    method: str
    links_total: int
    loads: list[int] = field(default_factory=list)
    note: str | None = None

    @property
    def balance(self) -> float:
        """The largest load over the mean load (1.0: perfectly even)."""
        return max(self.loads) * len(self.loads) / sum(self.loads) if self.loads else 1.0

    @property
    def cut_fraction(self) -> float:
        """The share of links that cross partitions."""
        return len(self.cut) / self.links_total if self.links_total else 0.0

    def describe(self) -> dict:
        """The partition as a plain dict for the run summary."""
        delays = sorted({d for _, _, d in self.cut})
        return {
            "method": self.method,
            "parts": len(self.parts),
            "agents": [len(p) for p in self.parts],
            "load": self.loads,
            "cut_links": len(self.cut),
            "links": self.links_total,
            "cut_delays": [to_time(d) for d in delays[:8]],
            "lookahead": None if self.lookahead_q is None else to_time(self.lookahead_q),
            "balance": round(self.balance, 4),
            **({"note": self.note} if self.note else {}),
        }


class _Union:
    def __init__(self, items):
        self.up = {x: x for x in items}

    def find(self, x):
        while self.up[x] != x:
            self.up[x] = self.up[self.up[x]]
            x = self.up[x]
        return x

    def join(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # the smaller name is the root: deterministic whatever the order
            if rb < ra:
                ra, rb = rb, ra
            self.up[rb] = ra


def bfs_order(links: dict[str, dict[str, int]], starts: list[str]) -> list[str]:
    """Agents in breadth-first order from ``starts`` (neighbours by name)."""
    seen: set[str] = set()
    order: list[str] = []
    pending = sorted(links)
    queue = deque(s for s in starts if s in links)
    seen.update(queue)
    i = 0
    while True:
        while queue:
            a = queue.popleft()
            order.append(a)
            for b in sorted(links[a]):
                if b not in seen:
                    seen.add(b)
                    queue.append(b)
        while i < len(pending) and pending[i] in seen:
            i += 1
        if i == len(pending):
            return order
        seen.add(pending[i])
        queue.append(pending[i])


def _chunks(items: list, weights: list[int], n: int) -> list[list]:
    """Contiguous chunks of ``items`` with about equal weight, none empty."""
    total = sum(weights)
    target = total / n
    parts: list[list] = [[] for _ in range(n)]
    acc = 0
    k = 0
    for i, (item, w) in enumerate(zip(items, weights, strict=True)):
        left = len(items) - i
        if parts[k] and k < n - 1 and (acc + w / 2 > (k + 1) * target or left <= n - 1 - k):
            k += 1
        parts[k].append(item)
        acc += w
    return parts


@collector_paused()  # its sets, tuples and groups of a large net: 0.40 -> 0.34 s at L
def partition(links: dict[str, dict[str, int]], n: int, method: str = "auto",
              starts: list[str] | None = None) -> Partition:
    """Assign every agent of the locality graph ``links`` to one of ``n`` workers.

    Parameters
    ----------
    links:
        agent -> neighbour -> link delay (quanta), the engine's locality graph.
    n:
        the number of workers.
    method:
        ``auto`` (METIS if ``pymetis`` is installed, else ``layers``),
        ``metis`` (METIS, then every depth spread evenly), ``metis-cut``
        (METIS alone: the fewest links cut), ``layers`` or ``round-robin``.
    starts:
        the input agents (where ``layers`` starts its breadth-first order).

    Returns
    -------
    The :class:`Partition`: agents per worker, the cut, the lookahead.
    """
    if method not in METHODS:
        raise PartitionError(f"unknown partition method {method!r} (known: {', '.join(METHODS)})")
    note = None
    if method in ("auto", "metis", "metis-cut"):
        try:
            import pymetis
        except ImportError:
            if method != "auto":
                raise PartitionError(f"partition method {method!r} needs pymetis "
                                     "(pip install 'asyncnet[cluster]')") from None
            pymetis = None
            note = ("pymetis is not installed: partitioned by layers, which cuts more "
                    "links (pip install 'asyncnet[cluster]')")
        method = "layers" if pymetis is None else "metis" if method == "auto" else method
    if n < 1:
        raise PartitionError(f"the number of workers must be at least 1, got {n}")
    names = sorted(links)
    weight = {a: load_of(len(links[a])) for a in names}
    edges = sorted({(min(a, b), max(a, b), d) for a in names for b, d in links[a].items()})
    base = _Union(names)
    for a in names:
        if is_source(a):
            for b in links[a]:
                base.join(a, b)
    order = bfs_order(links, sorted(starts or []))
    pos = {a: i for i, a in enumerate(order)}

    def groups(tau: float) -> tuple[list[list[str]], list[int]]:
        u = _Union(names)
        for a in names:
            u.join(a, base.find(a))
        for a, b, d in edges:
            if d < tau:
                u.join(a, b)
        members: dict[str, list[str]] = {}
        for a in names:
            members.setdefault(u.find(a), []).append(a)
        gs = sorted(members.values(), key=lambda g: min(pos[a] for a in g))
        return gs, [sum(weight[a] for a in g) for g in gs]

    if method == "round-robin":
        gs, _ = groups(0)
        if len(gs) < n:
            raise PartitionError(f"{n} workers but the network has only {len(gs)} "
                                 f"agent groups to place")
        chunks = [[g for i, g in enumerate(gs) if i % n == k] for k in range(n)]
        return _result(chunks, links, edges, weight, method, note)
    distinct = sorted({d for _, _, d in edges}, reverse=True)
    if len(distinct) > MAX_THRESHOLDS:
        # many distinct delays: try evenly spaced ranks, always ending at the smallest
        step = len(distinct) / MAX_THRESHOLDS
        distinct = [distinct[int(i * step)] for i in range(MAX_THRESHOLDS)] + [distinct[-1]]
    taus = [float("inf"), *distinct]
    best, used = None, method
    for tau in taus:
        gs, ws = groups(tau)
        if len(gs) < n:
            continue
        chunks, used = None, method
        if method in ("metis", "metis-cut") and n > 1:
            chunks = _metis(pymetis, gs, ws, edges, n)
            if chunks is not None and method == "metis":  # balanced within windows too
                chunks = _within_windows(chunks, links, weight, edges, starts or [])
        if chunks is None:  # layers, or METIS left a partition empty (tiny graphs)
            chunks = _chunks(gs, ws, n)
            used = "layers" if method in ("metis", "metis-cut") and n > 1 else method
        loads = [sum(weight[a] for g in c for a in g) for c in chunks]
        best = chunks
        if max(loads) <= BALANCE * sum(ws) / n:
            break
    if best is None:
        raise PartitionError(f"{n} workers but the network has only "
                             f"{len(groups(0)[0])} agent groups to place")
    if used != method:
        note = (f"{method}: METIS left a partition empty (a small network on many "
                f"workers): laid out by layers instead")
    return _result(best, links, edges, weight, used, note)


def _within_windows(chunks: list[list[list[str]]], links, weight, edges,
                    starts: list[str]) -> list[list[list[str]]]:
    """METIS's chunks with every depth spread evenly (:func:`.depth.even_depths`),
    unless that unbalances the whole (small networks on many workers: a depth of
    8 neurons over 16 parts) or cuts far more links; then METIS's own."""
    even = even_depths(chunks, links, weight, sorted(starts))

    def balance_and_cut(cs):
        owner = {a: k for k, c in enumerate(cs) for g in c for a in g}
        loads = [sum(weight[a] for g in c for a in g) for c in cs]
        return (max(loads) * len(cs) / sum(loads),
                sum(owner[a] != owner[b] for a, b, _ in edges))

    (b0, c0), (b1, c1) = balance_and_cut(chunks), balance_and_cut(even)
    return even if b1 <= max(b0, EVEN_BALANCE) and c1 <= EVEN_CUT * c0 else chunks


def _metis(pymetis, gs: list[list[str]], ws: list[int], edges, n: int) -> list | None:
    """Groups placed on ``n`` partitions by METIS: balanced by weight, fewest
    links between partitions. None if a partition would be empty."""
    of = {a: i for i, g in enumerate(gs) for a in g}
    adj: list[dict[int, int]] = [{} for _ in gs]
    for a, b, _ in edges:
        i, j = of[a], of[b]
        if i != j:
            adj[i][j] = adj[i].get(j, 0) + 1
            adj[j][i] = adj[j].get(i, 0) + 1
    xadj, adjncy, ew = [0], [], []
    for nb in adj:
        for j in sorted(nb):
            adjncy.append(j)
            ew.append(nb[j])
        xadj.append(len(adjncy))
    opts = pymetis.Options(seed=METIS_SEED)
    _, member = pymetis.part_graph(n, pymetis.CSRAdjacency(xadj, adjncy), vweights=ws,
                                   eweights=ew or None, options=opts)
    chunks: list[list] = [[] for _ in range(n)]
    for g, k in zip(gs, member, strict=True):
        chunks[k].append(g)
    return chunks if all(chunks) else None


def _result(chunks: list[list[list[str]]], links, edges, weight, method,
            note: str | None = None) -> Partition:
    parts = [sorted(a for g in c for a in g) for c in chunks]
    owner = {a: k for k, p in enumerate(parts) for a in p}
    cut = [(a, b, d) for a, b, d in edges if owner[a] != owner[b]]
    look = min((d for _, _, d in cut), default=None)
    loads = [sum(weight[a] for a in p) for p in parts]
    return Partition(parts, owner, cut, look, method, len(edges), loads, note)
