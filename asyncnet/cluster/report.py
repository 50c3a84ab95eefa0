"""Human-readable figures of a distributed run (no ZeroMQ import)."""

from __future__ import annotations

import json
import os
import warnings

from ..outputs import sidecar_path

__all__ = ["sidecar_path", "read_sidecar", "format_cluster"]


def read_sidecar(log_path: str, digest: bytes | str | None = None) -> dict | None:
    """The cluster figures written next to a log, if the run was distributed.

    Parameters
    ----------
    log_path:
        the event log.
    digest:
        the log's footer digest, if it has a footer: figures written for
        another log (an earlier run into the same path) are left out.

    Returns
    -------
    The figures, or ``None`` (none, or none that describe this log; a
    warning says why when the file is there but unusable).
    """
    path = sidecar_path(log_path)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        format_cluster(doc)  # every figure the report reads is there and of its kind
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        warnings.warn(f"{path}: unreadable cluster figures ({type(e).__name__}: {e}); "
                      f"left out", stacklevel=2)
        return None
    want = digest.hex() if isinstance(digest, bytes) else digest
    have = doc.pop("log_digest", None)  # the check's, not a figure of the run
    if want is not None and have is not None and have != want:
        warnings.warn(f"{path}: cluster figures of another run into this log path; left "
                      f"out", stacklevel=2)
        return None
    return doc


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
