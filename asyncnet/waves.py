"""Which input frame each population's activity and credit carry, from a log alone.

This is the content of the diffusion paper's Figs. 1–3 (depth against time,
forward and backward waves), read off an event log: the header holds the
scenario (hence the graph), the records every delivered message.

- A *frame* starts whenever a data source's control value changes.
- An agent's forward label is the frame its activity is built from: an input
  population's is the frame of its latest input value; a synapse's, its pre
  neuron's latest message; a neuron's, the *oldest* among its in-synapses'
  latest messages (its activity is of frame k once every input carries frame
  k — on a DAG with skip connections the longest path decides). A message
  carries its sender's label at the instant it was sent.
- Credit for frame k is born at an output once frame k's input has reached it
  and frame k's target has arrived; a neuron's credit label is the oldest among
  its children's latest delta messages and its own forward label (its δ uses
  its own pre-activation). On a graph with cycles "oldest" would wait forever
  on the loop, so there labels mark the *first* influence (the newest frame
  that reached the agent by any path).

:func:`tension_trace` is the other picture's data: the activity and credit
of every neuron over time, re-run from the scenario the log embeds (neuron
states are not in the log); :mod:`asyncnet.plots` draws both.
"""

from __future__ import annotations

import bisect
import warnings

import networkx as nx
import numpy as np

from .ids import is_synapse, source_id, split_synapse, synapse_id
from .logfile import open_log
from .logtools import engine_of, scenario_of
from .messages import CONTROL, FORWARD, QUANTA

UNINFORMED = -1


class _Labels:
    """Per (agent, source) the labels of the messages received, as step functions."""

    def __init__(self, g: nx.DiGraph, inputs: set[str], outputs: set[str]):
        self.acyclic = nx.is_directed_acyclic_graph(g)
        self.inputs, self.outputs = inputs, outputs
        self.pre = {str(n): [synapse_id(p, n) for p in g.predecessors(n)] for n in g}
        self.post = {str(n): [synapse_id(n, c) for c in g.successors(n)] for n in g}
        self.hist: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
        self.times: dict[str, set[int]] = {}

    def put(self, agent: str, src: str, t: int, label: int) -> None:
        ts, vs = self.hist.setdefault((agent, src), ([], []))
        ts.append(t)
        vs.append(label)
        self.times.setdefault(agent, set()).add(t)

    def _at(self, agent: str, src: str, t: int) -> int:
        h = self.hist.get((agent, src))
        if h is None:
            return UNINFORMED
        k = bisect.bisect_right(h[0], t)
        return h[1][k - 1] if k else UNINFORMED

    def _combine(self, labels: list[int]) -> int:
        if not labels:
            return UNINFORMED
        return min(labels) if self.acyclic else max(labels)

    def forward(self, x: str, t: int) -> int:
        """The frame agent ``x``'s activity carries at ``t``."""
        if is_synapse(x):
            return self._at(x, split_synapse(x)[0], t)
        if x in self.inputs:
            return self._at(x, source_id(x), t)
        return self._combine([self._at(x, s, t) for s in self.pre[x]])

    def credit(self, x: str, t: int) -> int:
        """The frame agent ``x``'s delta carries credit for at ``t``."""
        if is_synapse(x):
            return self._at(x, split_synapse(x)[1], t)
        parts = [self._at(x, s, t) for s in self.post[x]]
        if x in self.outputs:
            parts.append(min(self.forward(x, t), self._at(x, source_id(x), t)))
        elif self.acyclic and x not in self.inputs:
            parts.append(self.forward(x, t))
        return self._combine(parts)


def _roles(g: nx.DiGraph) -> tuple[set[str], set[str]]:
    def role(n) -> str:
        r = g.nodes[n].get("role")
        if r is None:
            r = "input" if g.in_degree(n) == 0 else "output" if g.out_degree(n) == 0 else ""
        return r

    return ({str(n) for n in g if role(n) == "input"},
            {str(n) for n in g if role(n) == "output"})


def depths(g: nx.DiGraph, inputs: set[str]) -> dict[str, int]:
    """Longest distance from an input on a DAG; shortest one on a graph with cycles."""
    if nx.is_directed_acyclic_graph(g):
        d: dict[str, int] = {}
        for n in nx.topological_sort(g):
            ps = list(g.predecessors(n))
            d[str(n)] = 0 if not ps else 1 + max(d[str(p)] for p in ps)
        return d
    dist = nx.multi_source_dijkstra_path_length(g, list(inputs), weight=lambda *a: 1)
    return {str(n): int(dist.get(n, -1)) for n in g}


def wave_labels(path: str, until: float | None = None) -> dict:
    """Forward and credit frame labels of every population over time, from a log.

    Parameters
    ----------
    path:
        the event log.
    until:
        read records up to this time only (``None``: all).

    Returns
    -------
    ``{"populations": [(name, depth)], "forward": {name: [(t, frame)]},
    "credit": {...}, "frames": [change times], "t_end", "scenario", "records",
    "acyclic", "whole"}`` with times in units; a frame of ``-1`` means not
    yet informed. ``records`` counts those read; ``whole``: the log ends
    by ``until`` (``t_end`` is then its last arrival, else ``until``).
    """
    q_until = None if until is None else until * QUANTA
    log = open_log(path)
    sc = scenario_of(log)
    g = sc.graph
    inputs, outputs = _roles(g)
    # two streaming passes: the frame changes first, then the labels
    last: dict[str, bytes] = {}
    changes: list[int] = []
    n_records = 0
    whole = True
    for m in log.messages():
        if q_until is not None and m.t_arrive > q_until:
            whole = False
            break
        n_records += 1
        if m.kind == CONTROL:
            b = repr(m.payload).encode()
            prev = last.get(m.dst)
            last[m.dst] = b
            if prev is not None and prev != b and (not changes or changes[-1] != m.t_arrive):
                changes.append(m.t_arrive)
    changes.sort()
    lab = _Labels(g, inputs, outputs)
    t_end = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the first pass warned already
        msgs = log.messages()
        for m in msgs:
            if q_until is not None and m.t_arrive > q_until:
                break
            t_end = m.t_arrive
            if m.kind == CONTROL:
                v = bisect.bisect_right(changes, m.t_arrive)
            elif m.kind == FORWARD:
                v = lab.forward(m.src, m.t_sent)
            else:
                v = lab.credit(m.src, m.t_sent)
            lab.put(m.dst, m.src, m.t_arrive, v)
    depth = depths(g, inputs)
    pops = sorted(((str(n), depth[str(n)]) for n in g), key=lambda p: (p[1], p[0]))
    out: dict[str, dict] = {"forward": {}, "credit": {}}
    for name, _ in pops:
        ts = sorted(lab.times.get(name, ()))
        for key, fn in (("forward", lab.forward), ("credit", lab.credit)):
            steps, cur = [], UNINFORMED
            for t in ts:
                v = fn(name, t)
                if v != cur:
                    steps.append((t / QUANTA, v))
                    cur = v
            out[key][name] = steps
    return {"populations": pops, **out, "frames": [t / QUANTA for t in changes],
            "t_end": t_end / QUANTA if whole else until, "whole": whole,
            "scenario": sc.name, "records": n_records, "acyclic": lab.acyclic}


def tension_trace(path: str) -> dict:
    """Activity ``(u+v)/2`` and credit ``(u-v)/2`` of every neuron over time.

    Neuron states are not in the log (only messages are), so the run is
    re-executed from the scenario the log's header carries (runs are
    deterministic: ``asyncnet replay --verify`` checks the same thing message
    by message), recording each neuron's tension pair every time it wakes.

    Parameters
    ----------
    path:
        An event log of a ``leastaction`` or ``continuous`` run.

    Returns
    -------
    ``{"rows": [(label, depth)], "t": [...], "activity": [[...]],
    "credit": [[...]], "scenario": name}`` (one list per row, one value per time).
    """
    from .scenario import ScenarioError
    log = open_log(path)
    sc = scenario_of(log)
    eng, net, _ = engine_of(log, sc)
    probe = next(iter(eng.agents[n].model for n in net.populations))
    if "credit" not in probe.state():
        raise ScenarioError(f"{path}: rule {sc.rule_name!r} has no tension view "
                            f"(the leastaction and continuous rules have)")
    depth = depths(sc.graph, set(net.inputs()))
    rows = sorted(net.populations, key=lambda n: (depth[n], n))
    steps: dict[str, list] = {n: [] for n in rows}

    def monitor(agent, t: int) -> None:
        if agent.name in steps:
            st = agent.model.state()
            steps[agent.name].append((t / QUANTA, np.array(st["activity"], dtype=float),
                                      np.array(st["credit"], dtype=float)))

    eng.monitors.append(monitor)
    eng.run(sc.duration)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        log.scan()  # checks the log and reads its footer (the count)
    if log.footer is not None and log.footer.get("count") != eng.messages() \
            and log.complete:
        warnings.warn(f"{path}: the re-run delivered {eng.messages()} messages, the log "
                      f"{log.footer.get('count')}: the picture may not match the log",
                      stacklevel=2)
    grid = np.arange(0.0, sc.duration, max(sc.duration / 800, 1 / QUANTA * 2))
    out_rows, act, cred = [], [], []
    for n in rows:
        ts = np.array([s[0] for s in steps[n]])
        for k in range(net.populations[n].size):
            a = np.array([s[1][k] for s in steps[n]])
            c = np.array([s[2][k] for s in steps[n]])
            idx = np.searchsorted(ts, grid, side="right") - 1
            ok = idx >= 0
            act.append(np.where(ok, a[np.maximum(idx, 0)], np.nan))
            cred.append(np.where(ok, c[np.maximum(idx, 0)], np.nan))
            out_rows.append((f"{n}[{k}]" if net.populations[n].size > 1 else n, depth[n]))
    return {"rows": out_rows, "t": grid, "activity": np.array(act), "credit": np.array(cred),
            "scenario": sc.name}
