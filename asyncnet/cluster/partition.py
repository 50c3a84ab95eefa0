"""Split the agents of a network over workers, cutting long-delay links.

The window of conservative synchronisation is the smallest delay of a link
that crosses partitions (the *lookahead*), so a good cut keeps short links
inside a partition. ``partition`` looks for the largest threshold ``tau``
such that the groups of agents joined by links shorter than ``tau`` can
still be spread evenly over the workers; the cut then consists of links of
delay ``>= tau`` only. Groups are laid out in breadth-first order from the
inputs and split into contiguous chunks, so neighbouring layers stay
together and the cut stays small.

A data source (``src:<node>``) always travels with its population.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ..ids import is_source
from ..messages import to_time

BALANCE = 1.3
"""Largest accepted load of a partition, relative to an even share."""

METHODS = ("auto", "round-robin")
MAX_THRESHOLDS = 48
"""At most this many candidate thresholds are tried (each costs one pass)."""


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


def partition(links: dict[str, dict[str, int]], n: int, method: str = "auto",
              starts: list[str] | None = None) -> Partition:
    """Assign every agent of the locality graph ``links`` to one of ``n`` workers."""
    if method not in METHODS:
        raise PartitionError(f"unknown partition method {method!r} (known: {', '.join(METHODS)})")
    if n < 1:
        raise PartitionError(f"the number of workers must be at least 1, got {n}")
    names = sorted(links)
    weight = {a: 1 + len(links[a]) for a in names}
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
        return _result(chunks, links, edges, weight, method)
    distinct = sorted({d for _, _, d in edges}, reverse=True)
    if len(distinct) > MAX_THRESHOLDS:
        # many distinct delays: try evenly spaced ranks, always ending at the smallest
        step = len(distinct) / MAX_THRESHOLDS
        distinct = [distinct[int(i * step)] for i in range(MAX_THRESHOLDS)] + [distinct[-1]]
    taus = [float("inf"), *distinct]
    best = None
    for tau in taus:
        gs, ws = groups(tau)
        if len(gs) < n:
            continue
        chunks = _chunks(gs, ws, n)
        loads = [sum(weight[a] for g in c for a in g) for c in chunks]
        best = chunks
        if max(loads) <= BALANCE * sum(ws) / n:
            break
    if best is None:
        raise PartitionError(f"{n} workers but the network has only "
                             f"{len(groups(0)[0])} agent groups to place")
    return _result(best, links, edges, weight, method)


def _result(chunks: list[list[list[str]]], links, edges, weight, method) -> Partition:
    parts = [sorted(a for g in c for a in g) for c in chunks]
    owner = {a: k for k, p in enumerate(parts) for a in p}
    cut = [(a, b, d) for a, b, d in edges if owner[a] != owner[b]]
    look = min((d for _, _, d in cut), default=None)
    loads = [sum(weight[a] for a in p) for p in parts]
    return Partition(parts, owner, cut, look, method, len(edges), loads)
