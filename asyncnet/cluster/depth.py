"""Even shares of every depth: a partition balanced within windows, not only overall.

METIS balances a partition's whole load. But activity moves through a network
in waves — the forward wave reaches the agents ``h`` links from the inputs at
about ``h`` link delays, the delta wave comes back the same way — so in any
one window the busy agents are those of a few depths. If one partition holds
96 of a layer's 120 neurons and the other 24, the first is the busier one
whenever that layer is, and a window lasts as long as its busier worker
(measured: the windows' critical path 12% above either worker's total).

:func:`even_depths` moves groups of agents between partitions until every
depth class (hops from the inputs) is spread evenly, choosing at each step
the groups whose move cuts the fewest extra links.
"""

from __future__ import annotations

from collections import deque

UNREACHED = -1
"""The depth of an agent no input reaches."""


def depths(links: dict[str, dict[str, int]], starts: list[str]) -> dict[str, int]:
    """Each agent's hops from the nearest of ``starts`` (``UNREACHED`` if none).

    Parameters
    ----------
    links:
        agent -> neighbour -> delay, the locality graph.
    starts:
        the input agents.

    Returns
    -------
    agent -> depth.
    """
    depth = {a: 0 for a in starts if a in links}
    queue = deque(sorted(depth))
    while queue:
        a = queue.popleft()
        d = depth[a] + 1
        for b in links[a]:
            if b not in depth:
                depth[b] = d
                queue.append(b)
    return {a: depth.get(a, UNREACHED) for a in links}


def even_depths(chunks: list[list[list[str]]], links: dict[str, dict[str, int]],
                weight: dict[str, int], starts: list[str]) -> list[list[list[str]]]:
    """``chunks`` (partitions of agent groups) with every depth spread evenly.

    A group's depth is its shallowest agent's. For each depth, the partition
    with the most load of it gives groups of that depth to the one with the
    least — those with most links into the receiving partition first, and
    none that would overshoot — until no such move is left (heavy depths
    first). Then, lightest depths first, groups of equal load at one depth
    trade places where that cuts fewer links.

    Parameters
    ----------
    chunks:
        per partition, its groups (each a list of agents that stay together).
    links:
        the locality graph.
    weight:
        agent -> load.
    starts:
        the input agents.

    Returns
    -------
    The new chunks (the same groups; no partition left empty), in a
    deterministic order.
    """
    n = len(chunks)
    if n < 2:
        return chunks
    depth = depths(links, starts)
    owner: dict[str, int] = {}
    groups: list[tuple[int, list[str], int]] = []  # (partition, agents, load)
    for k, chunk in enumerate(chunks):
        for g in chunk:
            groups.append((k, g, sum(weight[a] for a in g)))
            for a in g:
                owner[a] = k
    part = [k for k, _, _ in groups]
    by_depth: dict[int, list[int]] = {}
    for i, (_, g, _) in enumerate(groups):
        by_depth.setdefault(min(depth[a] for a in g), []).append(i)
    # the heavy groups (neurons) first: the light ones (synapses) then follow them
    order = sorted(by_depth, key=lambda d: (-max(groups[i][2] for i in by_depth[d]), d))

    def move(i: int, k: int) -> None:
        part[i] = k
        for a in groups[i][1]:
            owner[a] = k

    inside = [set(g) for _, g, _ in groups]

    def gain(i: int, dst: int) -> int:  # links that stop crossing minus links that start to
        g, src = inside[i], part[i]
        return sum((owner[b] == dst) - (owner[b] == src)
                   for a in g for b in links[a] if b not in g)

    for d in order:
        _even_out(by_depth[d], groups, part, n, gain, move)
    for d in reversed(order):
        _swap(by_depth[d], groups, inside, part, links, owner, gain, move)
    out: list[list[list[str]]] = [[] for _ in range(n)]
    for i, (_, g, _) in enumerate(groups):
        out[part[i]].append(g)
    return out if all(out) else chunks


def _even_out(members: list[int], groups, part: list[int], n: int, gain, move) -> None:
    """One depth: the heaviest partition gives groups to the lightest, best gain first."""
    for _ in range(2 * n):  # each pass evens the heaviest and the lightest partition
        load = [0] * n
        for i in members:
            load[part[i]] += groups[i][2]
        src = max(range(n), key=lambda k: (load[k], -k))
        dst = min(range(n), key=lambda k: (load[k], k))
        excess = (load[src] - load[dst]) / 2
        movable = [i for i in members if part[i] == src and groups[i][2] <= excess]
        if not movable:
            return
        moved = 0
        for i in sorted(movable, key=lambda i: (-gain(i, dst), i)):
            if moved + groups[i][2] <= excess:
                moved += groups[i][2]
                move(i, dst)


def _swap(members: list[int], groups, inside: list[set], part: list[int], links, owner,
          gain, move) -> None:
    """One depth: groups of equal load trade places where that cuts fewer links
    (each group towards the partition most of its neighbours are in)."""
    wants: dict[tuple[int, int, int], list[tuple[int, int]]] = {}
    for i in members:
        near: dict[int, int] = {}
        g = inside[i]
        for a in g:
            for b in links[a]:
                if b not in g:
                    near[owner[b]] = near.get(owner[b], 0) + 1
        if not near:
            continue
        best = min(near, key=lambda k: (-near[k], k))
        if best != part[i]:
            wants.setdefault((part[i], best, groups[i][2]), []).append((gain(i, best), i))
    for (a, b, w), there in sorted(wants.items()):
        back = wants.get((b, a, w))
        if a > b or not back:
            continue
        there.sort(key=lambda x: (-x[0], x[1]))
        back.sort(key=lambda x: (-x[0], x[1]))
        for (g1, i), (g2, j) in zip(there, back, strict=False):
            # at one depth two groups are seldom neighbours: their gains are taken to add up
            if g1 + g2 <= 0 or part[i] != a or part[j] != b:
                break
            move(i, b)
            move(j, a)
