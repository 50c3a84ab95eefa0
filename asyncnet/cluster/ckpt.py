"""Checkpoints of a distributed run, and resuming one (the coordinator's side).

A checkpoint is per agent, whichever backend wrote it, so a run may resume
in one process or on any number of workers. At a checkpoint instant ``t``
(a window boundary: every event before ``t`` done, none at ``t``) every
worker takes the frames its neighbours sent in the last window — the
messages in flight to it — into its agents' inboxes, and sends the
coordinator its agents' packed states and its traffic counters
(:meth:`~.part.PartRunner.checkpoint`). The coordinator adds what only it
holds (analyses, recorders, the latency trace, the log position) and writes
the file exactly as an in-process run does. On resume each worker restores
its partition's agents (:func:`~asyncnet.checkpoint.restore_partition`) and
the coordinator the rest (:func:`resume_coordinator`).

Analyses that watch every agent wake keep part of their state in the
workers' monitors; such runs are checkpointed and resumed in one process.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .. import checkpoint as ckp
from ..checkpoint import CheckpointError, check_log, restore_global, restore_writer
from ..eventlog import EventLogWriter
from ..metrics import Traffic
from ..scenario import Scenario
from .merge import merge_traffic
from .part import TRAFFIC_KEYS


def traffic_base(traffic: Traffic) -> dict:
    """The counters of ``traffic`` as a partition reports them (a resumed run's base).

    Parameters
    ----------
    traffic:
        the coordinator's counter, restored from a checkpoint.

    Returns
    -------
    ``TRAFFIC_KEYS`` counters, copied.
    """
    return {k: (list(v) if isinstance(v := getattr(traffic, k), list) else v)
            for k in TRAFFIC_KEYS}


def checkpoint_writer(sc: Scenario, eng0, traffic: Traffic, writer: EventLogWriter | None,
                      merged: list, roots: list, skip: list, meta: dict, directory: str,
                      fresh: bool, base: dict | None,
                      wall0: float = 0.0) -> Callable[[int, dict, list[dict]], None]:
    """``write(t, agents, parts)``: one checkpoint of a distributed run, as an
    in-process run writes it.

    Parameters
    ----------
    sc:
        the scenario.
    eng0:
        the coordinator's engine without agents (its per-kind delivered counts).
    traffic:
        the coordinator's traffic counter (its latency trace).
    writer:
        the log writer, or None.
    merged:
        the analyses that watch wakes (refused: ``CheckpointError``).
    roots:
        the objects whose state a checkpoint holds beyond the agents, in the
        in-process order.
    skip:
        shared objects never captured.
    meta:
        :func:`asyncnet.simulation.checkpoint_meta`'s map.
    directory:
        where checkpoints go.
    fresh:
        whether this is a new run (its first checkpoint replaces an earlier run's).
    base:
        a resumed run's traffic counters at its checkpoint (None: a new run).
    wall0:
        wall seconds of the run before this attempt (a resumed run's).

    Returns
    -------
    The writer: ``agents`` is ``{name: packed state}``, ``parts`` the workers'
    traffic counters so far.
    """
    if merged:
        raise CheckpointError(f"analysis {merged[0][0].key!r} watches every agent wake: "
                              f"write checkpoints of this run in one process (no --workers)")
    t0 = time.perf_counter()
    skip = [*skip, sc, eng0, eng0.rule, eng0.links, eng0.names, writer, traffic.links]
    first = [fresh]  # a new run's first checkpoint replaces those of an earlier run

    def write_checkpoint(t: int, agents: dict, parts: list[dict]) -> None:
        # the counters an in-process run would hold at t (they are merged again at the end)
        merge_traffic(traffic, ([base] if base else []) + parts)
        eng0.delivered[:] = traffic.count  # what an engine would have counted
        replace, first[0] = first[0], False
        ckp.write(directory, replace=replace, body={
            "t": t, "scenario_id": ckp.scenario_id(sc.text, sc.seed), "meta": meta,
            "agents": agents, "global": ckp.capture_global(eng0, roots, skip),
            "log": ckp.log_position(writer) if writer else None,
            "wall": wall0 + time.perf_counter() - t0})

    return write_checkpoint


def resume_coordinator(ck: dict, eng0, probe_eng, writer: EventLogWriter | None,
                       merged: list, roots: list) -> int:
    """Restore the coordinator's side of a checkpoint; return its instant.

    The analyses, recorders and traffic counter get their state, the log is
    checked and truncated to the checkpoint's position, and probes of the
    past are dropped.

    Parameters
    ----------
    ck:
        the checkpoint (:func:`asyncnet.checkpoint.read`).
    eng0:
        the coordinator's engine without agents.
    probe_eng:
        the coordinator's probe engine.
    writer:
        the (fresh) log writer, or None.
    merged:
        the analyses that watch wakes (refused: ``CheckpointError``).
    roots:
        as for :func:`checkpoint_writer`.

    Returns
    -------
    The checkpoint's instant (quanta).
    """
    if merged:
        raise CheckpointError(f"analysis {merged[0][0].key!r} watches every agent wake: "
                              f"resume this run in one process (without --workers)")
    t = ck["t"]
    digest = (ck.get("log_hash") or check_log(writer.path, writer._head, ck["log"])) \
        if writer else None
    restore_global(eng0, roots, ck["global"])
    probe_eng.probes[:] = [p for p in probe_eng.probes if p[0] >= t]
    if writer:
        restore_writer(writer, ck["log"], digest)
    return t
