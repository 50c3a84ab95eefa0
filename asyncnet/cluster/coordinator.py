"""Run a scenario over N worker processes with conservative time windows.

The coordinator partitions the agents, hands each worker its partition and
then drives windows of at most the lookahead (the smallest delay of a link
that crosses partitions): a message sent inside a window across the cut
arrives after the window, so every worker can run its window alone. After
each window the workers return the records they delivered and one frame of
outgoing messages per peer; the coordinator relays the frames, merges the
records in the log's canonical order and writes them with the same writer
as an in-process run — which is why the log is byte-identical.
"""

from __future__ import annotations

import bisect
import gc
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from operator import itemgetter

import numpy as np

from .. import checkpoint as ckp
from ..checkpoint import CheckpointError, check_log, restore_global, restore_writer
from ..eventlog import EventLogWriter
from ..messages import CONTROL, Message, to_quanta, to_time
from ..metrics import Traffic
from ..scenario import Scenario, ScenarioError
from ..simulation import (
    attach_analyses,
    build_engine,
    checkpoint_meta,
    checkpoint_times,
    context,
    log_header,
    new_traffic,
    summarize,
)
from . import wire
from .gather import ProbeEngine
from .partition import Partition, PartitionError, partition
from .report import sidecar_path
from .transport import Cluster, ClusterError, Member

WINDOWS_AT_LEAST = 50
"""Even without a cut, a run is cut into this many windows (progress, streaming)."""
_KEY = itemgetter(0, 1, 2, 3, 4)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the duration of the block.

    A window's records are hundreds of thousands of small acyclic lists;
    allocating them triggers collections that walk every live object (the
    whole network included), which cost more than the merge itself.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def simulate_distributed(sc: Scenario, *, workers: int, log_path: str | None = None,
                         progress: Callable[[float], None] | None = None,
                         save_state: str | None = None, bind: str | None = None,
                         local: int | None = None, timeout: float = 5.0,
                         join_timeout: float = 60.0, keys: str | None = None,
                         method: str | None = None, step_timeout: float = 600.0,
                         notice: Callable[[str], None] | None = None,
                         attach: list[Callable] = (), final: dict | None = None,
                         resume: dict | None = None, checkpoint_every: float | None = None,
                         checkpoint_dir: str | None = None, meta: dict | None = None) -> dict:
    """Run a scenario on ``workers`` processes; return the same summary as
    ``simulation.simulate`` plus a ``cluster`` section.

    ``local`` of the workers are started here (all by default); the others
    join with ``asyncnet worker --connect`` at ``bind`` (``notice`` is told
    where to point them).
    """
    eng0, net, stream = build_engine(sc, local=[])
    try:
        part = partition(eng0.links, workers, method or sc.cluster.get("partition", "auto"),
                         starts=net.inputs())
    except PartitionError as e:
        raise ScenarioError(f"{sc.path}: [cluster] {e}") from None
    traffic = new_traffic(eng0.links, net)
    writer = EventLogWriter(log_path, log_header(sc, eng0.names)) if log_path else None
    t0 = time.perf_counter()
    complete = False
    run = _Run(sc, part, eng0.names, traffic, writer, progress)
    probe_eng = ProbeEngine(eng0, run.fetch, lambda: sum(traffic.count))
    ctx = context(sc, probe_eng, net, stream, progress)
    analyses = attach_analyses(sc, ctx)
    for fn in attach:  # recorders: probes, which read states fetched from the workers
        fn(ctx)
    # analyses that watch agents at every wake run in the workers and merge here
    merged = [(a, res) for a, res in analyses if a.monitors]
    run.keep_counts = any(a.counts_per_instant for a, _ in merged)
    run.probe_eng = probe_eng
    # a checkpoint's state beyond the agents, as an in-process run lists it
    roots = [*(fn for _, fn in analyses), *(a for a, _ in analyses), *attach, traffic,
             probe_eng.monitors]
    if resume is not None:  # a checkpoint is per agent: each worker restores its own
        run.t = resume_coordinator(resume, eng0, probe_eng, writer, merged, roots)
        run.resume = resume
    if checkpoint_every is not None:
        run.ck_times = checkpoint_times(sc.duration, checkpoint_every, run.t)
        info = checkpoint_meta(sc, log_path, os.path.abspath(log_path) if writer else None,
                               save_state, os.path.abspath(save_state) if save_state else None,
                               checkpoint_every, checkpoint_dir, meta)
        run.on_checkpoint = checkpoint_writer(
            sc, eng0, traffic, writer, merged, roots, [net, stream, ctx, probe_eng, run], info,
            checkpoint_dir, fresh=resume is None)
    try:
        with Cluster(workers, local=local, bind=bind, timeout=timeout,
                     join_timeout=join_timeout, keys=keys, step_timeout=step_timeout) as cl:
            run.cluster = cl
            cl.describe_part = run.describe_part
            cl.spawn()
            remote = workers - cl.local
            if remote > 0 and notice is not None:
                notice(f"coordinator listening at {cl.endpoint}; waiting up to "
                       f"{join_timeout:g} s for {remote} worker(s) to join: "
                       f"asyncnet worker --connect {cl.endpoint}"
                       + (" --keys DIR" if keys else ""))
            cl.join()
            try:
                run.start(want_log=writer is not None)
                t1 = time.perf_counter()
                run.windows()
                t2 = time.perf_counter()
                results = run.finish(save_state=bool(save_state) or final is not None)
            except (wire.WireError, KeyError, TypeError, IndexError) as e:
                # a frame that decodes but does not say what the protocol says
                raise ClusterError(f"a worker sent a malformed message while {cl.where}: "
                                   f"{type(e).__name__}: {e}") from None
            complete = True
    finally:
        footer = writer.close(complete=complete) if writer else None
    wall = time.perf_counter() - t0
    for a, res in merged:
        a.merge(res, results, run.through)
    if save_state or final is not None:
        index = {n: i for i, n in enumerate(eng0.names)}
        arrays = [(k, v) for r in results for k, v in r.get("state", [])]
        arrays.sort(key=lambda kv: index[kv[0].split("/", 1)[1]])
        if save_state:
            np.savez(save_state, **dict(arrays))
        if final is not None:
            final.update(arrays)
    summary = summarize(sc, net, traffic, analyses, wall=wall, log_path=log_path,
                        footer=footer, save_state=save_state)
    cluster = {**part.describe(), "windows": run.n_windows,
               # start-up (processes, partitions built) vs the windows themselves
               "seconds": {"start": t1 - t0, "windows": t2 - t1, "total": wall},
               "workers": [r["stats"] for r in results]}
    summary["cluster"] = cluster
    if writer:
        with open(sidecar_path(log_path), "w", encoding="utf-8") as f:
            json.dump(cluster, f, indent=1)
    return summary


class _Run:
    """The window loop of one run: scheduling, relaying, merging."""

    def __init__(self, sc: Scenario, part: Partition, names: list[str], traffic: Traffic,
                 writer: EventLogWriter | None, progress):
        self.sc, self.part, self.names = sc, part, names
        self.traffic, self.writer, self.progress = traffic, writer, progress
        self.cluster: Cluster | None = None
        self.end_q = to_quanta(sc.duration)
        look = part.lookahead_q or self.end_q
        self.window = max(1, min(look, -(-self.end_q // WINDOWS_AT_LEAST)))
        self.n_windows = 0
        self.t = 0
        self.instants: list[int] = []  # instants with deliveries, and messages through each
        self.through_count: list[int] = []
        self.keep_counts = False  # set when an analysis merges per-instant counts
        self.resume: dict | None = None
        self.ck_times: list[int] = []  # instants to checkpoint at, and how
        self.on_checkpoint: Callable[[int, dict], None] | None = None

    def describe_part(self, k: int) -> str:
        agents = self.part.parts[k]
        head = ", ".join(agents[:4]) + (", ..." if len(agents) > 4 else "")
        return f"partition {k}: {len(agents)} agents ({head})"

    def start(self, want_log: bool) -> None:
        cl = self.cluster
        owner = [self.part.owner[n] for n in self.names]
        self.members: list[Member] = cl.members
        for m in self.members:
            init = {"part": m.part, "scenario": self.sc.text, "path": self.sc.path,
                    "agents": self.names, "owner": owner, "log": want_log,
                    "timeout": max(30.0, 3 * cl.timeout)}
            if self.resume is not None:
                init["resume"] = {"t": self.resume["t"], "agents": [
                    [n, self.resume["agents"][n]] for n in self.part.parts[m.part]]}
            cl.send(m, [b"INIT", wire.pack(init)])
        cl.where = "building its partition"
        got = cl.collect(self.members, b"READY")
        self.next_t = {k: wire.as_map(wire.unpack(f[0]), "READY")["next_t"]
                       for k, f in got.items()}
        self.inbox: dict[int, list[bytes]] = {m.part: [] for m in self.members}
        self.inbox_min: dict[int, int | None] = {m.part: None for m in self.members}

    def windows(self) -> None:
        cl = self.cluster
        by_part = {m.part: m for m in self.members}
        probes = sorted(p for p in self.probe_eng.probes if p[0] < self.end_q)
        pi = 0
        # the records of a window are merged while the workers run the next one
        pending: list[bytes] = []
        pending_end = 0

        def flush() -> None:
            with _gc_paused():  # records are acyclic: nothing for the collector
                rows: list[list] = []
                for frame in pending:
                    rows += wire.unpack(frame)
                pending.clear()
                self._merge(rows)
            if self.progress is not None and pending_end:
                self.progress(to_time(pending_end))

        while True:
            starts = [t for t in self.next_t.values() if t is not None]
            starts += [t for t in self.inbox_min.values() if t is not None]
            first = min(starts) if starts else None
            # a probe at t reads the state after every event before t (in-process,
            # the wake-ups of t = 0 are scheduled before any probe: after those)
            barrier = None
            ck = self.ck_times[0] if self.ck_times else None
            if ck is not None and (first is None or first >= ck) and \
                    (pi >= len(probes) or probes[pi][0] >= ck):
                flush()  # every event and probe before ck is done, none at ck
                self._checkpoint(self.ck_times.pop(0))
                continue
            if pi < len(probes):
                barrier = probes[pi][0] + (1 if probes[pi][0] == 0 else 0)
                if first is None or barrier <= first:
                    flush()  # a probe may count the messages delivered so far
                    pi = self._probe(probes, pi)
                    continue
            if first is None or first >= self.end_q:
                break
            begin = max(self.t, first)
            end = min(begin + self.window, self.end_q, barrier or self.end_q, ck or self.end_q)
            active = [by_part[k] for k in sorted(by_part)
                      if (self.next_t[k] is not None and self.next_t[k] < end)
                      or (self.inbox_min[k] is not None and self.inbox_min[k] < end)]
            head = wire.pack({"end": end})
            for m in active:
                cl.send(m, [b"RUN", head, *self.inbox[m.part]])
                self.inbox[m.part], self.inbox_min[m.part] = [], None
            flush()
            cl.where = f"running the window t={to_time(begin):g}..{to_time(end):g}"
            got = cl.collect(active, b"DONE")
            for k in sorted(got):
                frames = got[k]
                h = wire.as_map(wire.unpack(frames[0]), "DONE")
                self.next_t[k] = h["next_t"]
                pending.append(frames[1])
                peers = h["peers"]
                if len(frames) != 2 + len(peers):
                    raise ClusterError(f"{cl.name(by_part[k])} sent {len(frames) - 2} "
                                       f"message frames for {len(peers)} peers")
                for (peer, _count, t_min), frame in zip(peers, frames[2:], strict=True):
                    if peer not in self.inbox or t_min < end:
                        raise ClusterError(f"{cl.name(by_part[k])} sent a message that "
                                           f"arrives inside the window (or to no worker)")
                    self.inbox[peer].append(frame)
                    cur = self.inbox_min[peer]
                    self.inbox_min[peer] = t_min if cur is None else min(cur, t_min)
            pending_end = end
            self.n_windows += 1
            self.t = end
        flush()
        if self.progress is not None:
            self.progress(to_time(self.end_q))

    def _checkpoint(self, t: int) -> None:
        """Every worker takes the messages in flight to it and packs its agents."""
        cl = self.cluster
        cl.where = f"writing the checkpoint at t={to_time(t):g}"
        for m in self.members:
            cl.send(m, [b"CKPT", wire.pack({"t": t}), *self.inbox[m.part]])
            self.inbox[m.part], self.inbox_min[m.part] = [], None
        agents = {}
        for k, frames in cl.collect(self.members, b"CKSTATE").items():
            h = wire.as_map(wire.unpack(frames[0]), "CKSTATE")
            self.next_t[k] = h["next_t"]
            agents.update(dict(h["agents"]))
        self.on_checkpoint(t, agents)

    def _probe(self, probes: list, pi: int) -> int:
        """Run every probe of the instant of ``probes[pi]`` (the workers wait);
        return the index of the next probe."""
        tq = probes[pi][0]
        self.cluster.where = f"probing agents at t={to_time(tq):g}"
        self.probe_eng.new_instant()
        while pi < len(probes) and probes[pi][0] == tq:
            _, _, t, fn = probes[pi]
            self.probe_eng.run_probe(fn, t)
            pi += 1
        return pi

    def _merge(self, rows: list[list]) -> None:
        """Write one window's records in canonical order, instant by instant."""
        if not rows:
            return
        rows.sort(key=_KEY)
        names, log, traffic, writer = self.names, self.writer is not None, self.traffic, \
            self.writer
        i = 0
        n = len(rows)
        while i < n:
            t = rows[i][0]
            j = i
            while j < n and rows[j][0] == t:
                j += 1
            inst = rows[i:j]
            msgs = []
            for t_a, d, kind, s, seq, t_sent, x in inst:
                if log and kind == CONTROL:
                    x = wire.unpack(x)[6]
                elif log:
                    x = None
                msgs.append(Message(kind, names[s], names[d], t_sent, t_a, seq, x))
            traffic(msgs)
            if self.keep_counts:
                self.instants.append(t)
                self.through_count.append(sum(traffic.count))
            if writer is not None:
                writer.write_instant([(r[0], r[2], r[6]) for r in inst])
            i = j

    def through(self, t: int) -> int:
        """Messages delivered up to and including instant ``t``."""
        k = bisect.bisect_right(self.instants, t)
        return self.through_count[k - 1] if k else 0

    def fetch(self, names: list[str]) -> dict:
        """The states of agents, from the workers that own them (they wait)."""
        cl = self.cluster
        by_part: dict[int, list[str]] = {}
        for n in names:
            by_part.setdefault(self.part.owner[n], []).append(n)
        members = [m for m in self.members if m.part in by_part]
        for m in members:
            cl.send(m, [b"STATE", wire.pack({"agents": by_part[m.part]})])
        got = cl.collect(members, b"STATES")
        out = {}
        for k in sorted(got):
            for name, st in wire.unpack(got[k][0]):
                out[name] = st
        return out

    def finish(self, save_state: bool) -> list[dict]:
        cl = self.cluster
        for m in self.members:
            cl.send(m, [b"FINISH", wire.pack({"state": save_state})])
        cl.where = "reporting results"
        got = cl.collect(self.members, b"RESULT")
        return [wire.as_map(wire.unpack(got[k][0]), "RESULT") for k in sorted(got)]


def checkpoint_writer(sc: Scenario, eng0, traffic: Traffic, writer, merged: list, roots: list,
                      skip: list, meta: dict, directory: str,
                      fresh: bool) -> Callable[[int, dict], None]:
    """``write(t, agents)``: one checkpoint of a distributed run, as an in-process run
    writes it (the agents' states come packed from their workers)."""
    if merged:
        raise CheckpointError(f"analysis {merged[0][0].key!r} watches every agent wake: "
                              f"write checkpoints of this run in one process (no --workers)")
    t0 = time.perf_counter()
    skip = [*skip, sc, eng0, eng0.rule, eng0.links, eng0.names, writer, traffic.links]

    first = [fresh]  # a new run's first checkpoint replaces those of an earlier run

    def write_checkpoint(t: int, agents: dict) -> None:
        eng0.delivered[:] = traffic.count  # what an engine would have counted
        replace, first[0] = first[0], False
        ckp.write(directory, replace=replace, body={
            "t": t, "scenario_id": ckp.scenario_id(sc.text, sc.seed), "meta": meta,
            "agents": agents, "global": ckp.capture_global(eng0, roots, skip),
            "log": ckp.log_position(writer) if writer else None,
            "wall": time.perf_counter() - t0})

    return write_checkpoint


def resume_coordinator(ck: dict, eng0, probe_eng, writer, merged: list, roots: list) -> int:
    """Restore the coordinator's side of a checkpoint; return its instant.

    The analyses, recorders and traffic counter get their state, the log is
    checked and truncated to the checkpoint's position, and probes of the
    past are dropped. Analyses that watch every wake keep part of their
    state inside the monitors of an in-process run: not resumable here yet.
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


__all__ = ["simulate_distributed", "ClusterError"]
