"""Checkpoints of a run: per-agent state, analyses, the log position — on disk, atomically.

A checkpoint is taken at an instant boundary ``t`` (every event before ``t``
done, none at ``t``). It holds, **per agent** (not per worker, so a run may
resume on any number of workers): the rule model's state (captured
generically, :mod:`asyncnet.ckstate`), its random stream's state, its
sequence counter, whether it started, its timer and its pending inbox (the
messages in flight to it); then the state of every analysis, recorder and
traffic counter; and the event log's position (bytes and records after the
last whole instant, and the BLAKE2b digest of that prefix).

The file itself (its layout, atomic writes, the checks on reading) is
:mod:`asyncnet.ckfile`'s.
"""

from __future__ import annotations

import hashlib
import heapq
import os
from typing import Any

from .agents import Agent
from .ckfile import (
    FORMAT,
    KEEP,
    VERSION,
    CheckpointError,
    Found,
    candidates,
    file_name,
    latest,
    read,
    release,
    write,
)
from .ckstate import (
    Packer,
    StateError,
    Unpacker,
    Walker,
    conv,
    restore,
    rng_state,
    set_rng_state,
)
from .eventlog import EventLogWriter
from .logformat import _new_hash
from .messages import Kind, Message
from .outputs import lock_alone


def scenario_id(text: str, seed: int) -> str:
    """The identity a checkpoint is tied to: SHA-256 of the scenario text and seed.

    Parameters
    ----------
    text:
        the scenario's TOML text.
    seed:
        its seed.

    Returns
    -------
    A hex digest.
    """
    return hashlib.sha256(f"{seed}\n{text}".encode()).hexdigest()


# -- agents -------------------------------------------------------------------
def get_rng(agent: Agent) -> Any:
    """An agent's random generator state (the one place that knows where it lives).

    Parameters
    ----------
    agent:
        the engine's agent.

    Returns
    -------
    Its bit generator's state, as data.
    """
    return rng_state(agent.rng)


def set_rng(agent: Agent, state: Any) -> None:
    """Set an agent's random generator state.

    Parameters
    ----------
    agent:
        the engine's agent.
    state:
        what :func:`get_rng` gave.
    """
    set_rng_state(agent.rng, state)


def capture_agent(eng: Any, agent: Agent, skip: list) -> bytes:
    """One agent's state, packed: model, random stream, seq, timer, inbox.

    Parameters
    ----------
    eng:
        the engine (it holds the messages in flight to the agent).
    agent:
        the engine's agent.
    skip:
        shared objects of the run (rule, network, stream): never captured.

    Returns
    -------
    The packed state.
    """
    inbox = [[t, [[int(m.kind), m.src, m.dst, m.t_sent, m.t_arrive, m.seq, conv(m.payload)]
                  for m in msgs]] for t, msgs in eng.inbox(agent).items()]
    unit = {"model": Walker(skip).node(agent.model), "rng": get_rng(agent),
            "seq": agent.seq, "started": agent.started, "timer": agent.timer_due,
            "inbox": inbox}
    return Packer().pack(unit)


def restore_agent(eng: Any, agent: Agent, blob: bytes) -> None:
    """Overwrite a freshly built agent with its captured state.

    Parameters
    ----------
    eng:
        the fresh engine (it takes the messages in flight to the agent).
    agent:
        the fresh agent (same scenario, same name).
    blob:
        what :func:`capture_agent` packed.
    """
    u = Unpacker().unpack(blob)
    if not isinstance(u, dict) or not {"model", "rng", "seq", "started", "timer",
                                       "inbox"} <= set(u):
        raise StateError(f"{agent.name}: malformed agent state")
    if u["model"] is not None:
        restore(u["model"], lambda: agent.model, _no_put, agent.name)
    set_rng(agent, u["rng"])
    agent.seq, agent.started, agent.timer_due = u["seq"], u["started"], u["timer"]
    eng.set_inbox(agent, {t: [Message(Kind(r[0]), *r[1:]) for r in msgs]
                          for t, msgs in u["inbox"]})


def _no_put(_v: Any) -> None:
    raise StateError("an agent's model cannot be replaced, only restored")


def resume_clock(eng: Any, t: int) -> None:
    """Move a freshly built engine to instant ``t`` and schedule its agents' wakes.

    This is the one function that knows the engine's scheduling internals:
    it drops the fresh build's events before ``t`` (the wakes at 0, the
    probes of the past — the probes at ``t`` and later stay, and as they
    were scheduled first they still run before any wake of their instant),
    sets the clock and schedules one wake per agent per instant it is due
    (its inbox's instants and its timer).

    Parameters
    ----------
    eng:
        the engine, its agents already restored.
    t:
        the checkpoint's instant, in quanta.
    """
    env = eng.env
    queue = [e for e in env._queue if e[0] >= t]
    heapq.heapify(queue)
    env._queue[:] = queue
    env._now = t
    # the instants before t went with their scheduler events (the fresh build's
    # wakes at 0); a probe at t or later keeps its instant and, registered on a
    # fresh build where nothing was due then yet, its place before every wake
    for q in [q for q in eng._due if q < t]:
        del eng._due[q]
        eng._probes.pop(q, None)
    eng._scheduled.clear()
    for agent in eng.agents.values():
        due = set(eng.inbox(agent))
        if agent.timer_due is not None:
            due.add(agent.timer_due)
        for ti in sorted(due):
            eng.schedule(agent, ti)


def restore_partition(eng: Any, part: dict) -> None:
    """Restore an engine's agents (one partition) from ``{"t", "agents": [[name, blob]]}``.

    Parameters
    ----------
    eng:
        a freshly built engine (``local`` = the partition).
    part:
        the checkpoint's instant and the packed states of exactly its agents.
    """
    blobs = dict(part["agents"])
    if set(blobs) != set(eng.agents):
        raise StateError("the checkpoint's agents for this partition are not its agents")
    for name, agent in eng.agents.items():
        restore_agent(eng, agent, blobs[name])
    resume_clock(eng, int(part["t"]))


def capture_global(eng: Any, roots: list, skip: list) -> bytes:
    """The analyses', recorders' and counters' state, packed.

    Parameters
    ----------
    eng:
        the engine (its delivered counts are kept).
    roots:
        the objects and functions whose reachable data is the run's state
        beyond the agents, in an order the fresh build repeats.
    skip:
        shared objects never captured.

    Returns
    -------
    The packed state.
    """
    w = Walker(skip, functions=True)
    return Packer().pack({"delivered": list(eng.delivered),
                          "roots": [w.node(r) for r in roots]})


def restore_global(eng: Any, roots: list, blob: bytes) -> None:
    """Restore :func:`capture_global`'s state into a fresh build's roots.

    Parameters
    ----------
    eng:
        the fresh engine.
    roots:
        the fresh build's roots, in the order of the capture.
    blob:
        what :func:`capture_global` packed.
    """
    g = Unpacker().unpack(blob)
    if not isinstance(g, dict) or len(g.get("roots", ())) != len(roots):
        raise StateError("the analyses of the run differ from the checkpoint's")
    eng.delivered[:] = g["delivered"]
    for i, (node, root) in enumerate(zip(g["roots"], roots, strict=True)):
        if node is not None:
            restore(node, lambda r=root: r, _no_put, f"analysis state {i}")


# -- the event log ------------------------------------------------------------
def log_position(writer: EventLogWriter) -> dict:
    """Flush the log to the last whole instant, fsync it, and say where it ends.

    Called at an instant boundary: the instant the writer buffers is whole,
    and writing it now gives the very bytes its next batch would have.

    Parameters
    ----------
    writer:
        the run's log writer.

    Returns
    -------
    ``{"pos", "count", "by_kind", "t_last", "next_ck", "digest"}``.
    """
    writer.flush_instant()
    if writer.f is None:  # nothing delivered yet: the header alone
        writer._emit(b"", None)  # the header only: no records to count
    writer.f.flush()
    os.fsync(writer.f.fileno())
    return {"pos": writer._pos, "count": writer.count, "by_kind": list(writer.by_kind),
            "t_last": writer.t_last, "next_ck": writer._next_ck,
            "digest": writer.digest.hexdigest()}


def check_log(path: str, head: bytes, pos: dict) -> Any:
    """Check that the log at ``path`` starts with the checkpoint's prefix.

    Parameters
    ----------
    path:
        the event log.
    head:
        the header bytes the resumed run writes (same scenario, same version).
    pos:
        :func:`log_position`'s figures.

    Returns
    -------
    The running digest of the prefix (to go on with).
    """
    try:
        size = os.path.getsize(path)
    except OSError:
        raise CheckpointError(f"{path}: the event log of the checkpointed run is missing") \
            from None
    if size < pos["pos"]:
        raise CheckpointError(f"{path}: the event log is shorter ({size:,} bytes) than at "
                              f"the checkpoint ({pos['pos']:,} bytes)")
    h = _new_hash()
    with open(path, "rb") as f:
        if f.read(len(head)) != head:
            raise CheckpointError(f"{path}: the event log's header is not this run's "
                                  f"(another scenario or asyncnet version)")
        h.update(head)
        left = pos["pos"] - len(head)
        while left > 0:
            chunk = f.read(min(left, 1 << 22))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    if h.hexdigest() != pos["digest"]:
        raise CheckpointError(f"{path}: the event log differs from the checkpoint's "
                              f"(digest of its first {pos['pos']:,} bytes)")
    return h


def restore_writer(writer: EventLogWriter, pos: dict, digest: Any) -> None:
    """Truncate the log to the checkpoint's position and let ``writer`` append.

    Parameters
    ----------
    writer:
        the resumed run's (fresh) log writer.
    pos:
        :func:`log_position`'s figures.
    digest:
        the running digest of the prefix (:func:`check_log`).
    """
    f = open(writer.path, "r+b")
    try:
        lock_alone(f)
    except BlockingIOError:
        f.close()
        raise CheckpointError(f"{writer.path}: another asyncnet process is writing this event "
                              f"log (is the run still going?); nothing was changed") from None
    f.seek(pos["pos"])
    f.truncate()
    writer.f = f
    writer.digest = digest
    writer._pos = pos["pos"]
    writer.count = pos["count"]
    writer.by_kind = list(pos["by_kind"])
    writer.t_last = pos["t_last"]
    writer._next_ck = pos["next_ck"]


__all__ = ["CheckpointError", "FORMAT", "VERSION", "KEEP", "Found", "capture_agent",
           "restore_agent", "restore_partition", "capture_global", "restore_global", "resume_clock",
           "log_position", "check_log", "restore_writer", "scenario_id", "write", "read",
           "latest", "candidates", "file_name", "release"]
