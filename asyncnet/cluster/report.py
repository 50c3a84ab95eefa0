"""Human-readable figures of a distributed run (no ZeroMQ import)."""

from __future__ import annotations

import json
import os


def sidecar_path(log_path: str) -> str:
    """Where the per-worker figures of a distributed run are kept, next to its log
    (not in it: the log itself is the same bytes whatever the number of workers)."""
    return log_path + ".cluster.json"


def read_sidecar(log_path: str) -> dict | None:
    """The cluster figures written next to a log, if the run was distributed."""
    path = sidecar_path(log_path)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def format_cluster(c: dict) -> list[str]:
    """Lines for the run summary and ``asyncnet stats``."""
    look = c.get("lookahead")
    lines = [f"cluster   {len(c['workers'])} workers, partition {c['method']}: "
             f"{c['cut_links']:,} of {c['links']:,} links cut, lookahead "
             f"{'none (nothing crosses)' if look is None else f'{look:g}'}, "
             f"{c['windows']:,} windows"
             + (f", balance {c['balance']:.2f}" if "balance" in c else "")]
    if c.get("note"):
        lines.append(f"note      {c['note']}")
    for w in c["workers"]:
        busy, wait = w["busy_seconds"], w["wait_seconds"]
        share = 100 * wait / (busy + wait) if busy + wait > 0 else 0.0
        lines.append(f"worker {w['part']}  {w['agents']:,} agents, {w['delivered']:,} messages "
                     f"delivered, across the cut {w['cut_sent']:,} sent / "
                     f"{w['cut_received']:,} received, {w['windows']:,} windows, "
                     f"{wait:.2f} s waiting at barriers ({share:.0f}%)")
    r = c.get("restarts")
    if r and r["count"]:
        lines.append(f"restarts  {r['count']} (workers lost; every worker restarted from the "
                     f"last checkpoint), {r['seconds']:.2f} s wall in the failed attempts")
    return lines
