"""``asyncnet stats``: the run's traffic figures, computed from a log alone."""

from __future__ import annotations

import warnings

import numpy as np

from .gcpause import collector_paused
from .ids import is_source, source_node
from .logcols import read_columns
from .logfile import EventLog, LogError, open_log
from .logscan import payload_value
from .logtools import scenario_of
from .messages import CONTROL, KIND_NAMES, Message, to_quanta
from .metrics import NO_CHANGE_TRACED, Traffic
from .network import Network, traffic_horizon
from .wiring import link_table


def log_stats(path: str) -> dict:
    """Counts, locality and latency of the messages in the log at ``path``.

    The log is streamed and checked as it is read: an altered byte (a digest
    that does not match) or a malformed record raises ``LogError`` — no
    figures are printed from a log that is not what the run wrote. A log cut
    short is counted up to its last whole record and flagged
    (``log.complete`` false, ``log.unverified_records`` > 0 when records
    after the last digest could not be checked).

    Parameters
    ----------
    path:
        the event log.

    Returns
    -------
    The traffic summary (as ``asyncnet run`` prints it) plus a ``log`` section.
    """
    log = open_log(path, strict=True)
    sc = scenario_of(log)
    net = sc.build_network()
    tr = Traffic(links_of(log, net), net.inputs(), net.outputs(),
                 horizon=to_quanta(traffic_horizon(net)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # nothing read makes a reference cycle: the collector would only walk
        # the records alive (pausing it halves the time stats takes)
        with collector_paused():
            count_records(log, tr)
    for w in caught:
        warnings.warn(str(w.message), stacklevel=2)
    s = tr.summary()
    s["log"] = {"path": path, "bytes": log.size, "complete": log.complete,
                "interrupted": log.interrupted, "truncated": log.truncated,
                "verified": log.verified,
                "unverified_records": log.count - log.verified_count,
                "scenario": sc.name, "seed": log.header.get("seed")}
    if log.footer is not None:
        s["log"]["digest"] = log.footer.get("digest")
        if "workers" in log.footer:
            s["workers"] = log.footer["workers"]
    from .cluster.report import read_sidecar
    cluster = read_sidecar(path, (log.footer or {}).get("digest"))
    if cluster is not None:
        s["cluster"] = cluster
    return s


def links_of(log: EventLog, net: Network) -> dict[str, dict[str, int]]:
    """The run's locality graph, from its network and the log's agent table alone.

    No agent is built: the sources are the log's ``src:`` agents, every
    source link one time unit long (as the engine makes them).

    Parameters
    ----------
    log:
        the opened log.
    net:
        its scenario's network.

    Returns
    -------
    Agent -> neighbour -> delay (quanta), as ``Engine.links``.

    Raises
    ------
    LogError
        the log's agent table is not that network's.
    """
    fed = {source_node(n): None for n in log.agents
           if is_source(n) and source_node(n) in net.populations}
    links = link_table(net, fed, 1.0)
    if sorted(links) != log.agents:
        raise LogError(f"{log.path}: the log's agent table differs from the network of the "
                       f"scenario it embeds")
    return links


def count_records(log: EventLog, tr: Traffic) -> None:
    """Feed every record of ``log`` to ``tr``, as ``tr(batch)`` would count them.

    Counts, delays and locality are taken a piece of the log at a time with
    numpy, on agent indices (no message objects, payloads left encoded);
    only the few records the latency traces look at become messages.

    Parameters
    ----------
    log:
        the opened log (read to its end, checked).
    tr:
        the traffic counter; its ``links`` are the log's locality graph.
    """
    names = log.agents
    na = len(names)
    idx = {n: i for i, n in enumerate(names)}
    pairs = sorted((idx[a] * na + idx[b], dq) for a, nb in tr.links.items()
                   for b, dq in nb.items())
    link_key = np.array([k for k, _ in pairs], dtype=np.int64)
    link_delay = np.array([dq for _, dq in pairs], dtype=np.int64)
    inputs = np.array(sorted(idx[n] for n in tr.inputs if n in idx), dtype=np.int64)
    for cols in read_columns(log):
        t, k, s, d, ts, seqs, payloads = cols
        dl = t - ts
        for kind in range(3):
            sel = dl[k == kind]
            if len(sel):
                tr.count[kind] += len(sel)
                tr.dsum[kind] += int(sel.sum())
                tr.dmin[kind] = min(tr.dmin[kind], int(sel.min()))
                tr.dmax[kind] = max(tr.dmax[kind], int(sel.max()))
        key = s * na + d
        at = np.minimum(np.searchsorted(link_key, key), max(len(link_key) - 1, 0))
        if len(link_key):
            tr.local += int(((link_key[at] == key) & (link_delay[at] == dl)).sum())
        _trace(tr, names, cols, np.flatnonzero((k == CONTROL) & np.isin(d, inputs)))


def _trace(tr: Traffic, names: list[str], cols: tuple, fed: np.ndarray) -> None:
    """The latency traces: ``tr``'s own per-message steps, on the records they look at.

    While no change is being traced, only control records to an input
    (``fed``: their places in the piece) can start one; while one is, every
    record is looked at, in order.
    """
    t, k, s, d, ts, seqs, payloads = cols
    n = len(t)
    fed_set = set(fed.tolist())
    i = 0
    while i < n:
        if not tr.cones:
            if tr.traces_left <= 0:
                return  # nothing more can be traced: no record changes a figure
            j = int(np.searchsorted(fed, i))
            if j >= len(fed):
                return
            i = int(fed[j])
        ki = int(k[i])
        m = Message(ki, names[int(s[i])], names[int(d[i])], int(ts[i]), int(t[i]),
                    int(seqs[i]), payload_value(payloads[i]) if i in fed_set else None)
        if tr.cones:
            tr._trace(m)
        if i in fed_set:
            tr._input(m)
        i += 1


def _flag(lg: dict) -> str:
    if lg.get("truncated"):
        n = lg.get("unverified_records", 0)
        return (", TRUNCATED" + (f": the last {n:,} records are NOT covered by a digest"
                                 if n else ""))
    if lg.get("interrupted"):
        return ", INTERRUPTED: a verified prefix of the run"
    return ", verified" if lg.get("verified") else ""


def format_stats(s: dict) -> str:
    """Human-readable stats."""
    m = s["messages"]
    lines = [f"log       {s['log']['path']} ({s['log']['bytes'] / 1e6:.2f} MB, scenario "
             f"{s['log']['scenario']}, seed {s['log']['seed']}"
             + _flag(s["log"]) + ")",
             f"messages  {m['total']:,}: " + ", ".join(f"{k} {m[k]:,}" for k in KIND_NAMES),
             f"locality  {100 * s['locality']['share']:.1f}% travelled exactly one link"]
    for k, v in s["link_delay"].items():
        lines.append(f"delay     {k}: min {v['min']:g}, mean {v['mean']:.4g}, max {v['max']:g}")
    lat = s["latency"]
    f = lat["input_to_first_update_forward"]
    c = lat["input_to_first_update_credit"]
    if lat["input_changes_traced"]:
        lines.append(f"latency   input change -> first weight update: "
                     f"{'n/a' if f is None else f'{f:g}'} (forward), "
                     f"{'n/a' if c is None else f'{c:g}'} (credit); "
                     f"{lat['input_changes_traced']} changes traced")
    else:
        lines.append(f"latency   input change -> first weight update: {NO_CHANGE_TRACED}")
    for w in s.get("workers", []):
        lines.append("worker    " + ", ".join(f"{k} {v}" for k, v in w.items()))
    if "cluster" in s:
        from .cluster.report import format_cluster
        lines += format_cluster(s["cluster"])
    return "\n".join(lines)
