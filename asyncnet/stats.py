"""``asyncnet stats``: the run's traffic figures, computed from a log alone."""

from __future__ import annotations

import warnings

from .logfile import open_log
from .logtools import engine_of, scenario_of
from .messages import KIND_NAMES, to_quanta
from .metrics import Traffic
from .network import traffic_horizon


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
    eng, net, _ = engine_of(log, sc)
    tr = Traffic(eng.links, net.inputs(), net.outputs(),
                 horizon=to_quanta(traffic_horizon(net)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for m in log.messages():
            tr([m])
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
    cluster = read_sidecar(path)
    if cluster is not None:
        s["cluster"] = cluster
    return s


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
    lines.append(f"latency   input change -> first weight update: "
                 f"{'n/a' if f is None else f'{f:g}'} (forward), "
                 f"{'n/a' if c is None else f'{c:g}'} (credit); "
                 f"{lat['input_changes_traced']} changes traced")
    for w in s.get("workers", []):
        lines.append("worker    " + ", ".join(f"{k} {v}" for k, v in w.items()))
    if "cluster" in s:
        from .cluster.report import format_cluster
        lines += format_cluster(s["cluster"])
    return "\n".join(lines)
