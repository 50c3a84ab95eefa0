"""Run a scenario over N worker processes with conservative time windows.

The coordinator partitions the agents, hands each worker its partition and
the addresses of the others, and then drives windows of at most the
lookahead (the smallest delay of a link that crosses partitions): a message
sent inside a window across the cut arrives after the window, so every
worker can run its window alone. Messages that cross the cut go straight
from worker to worker (:mod:`.peers`, or MPI); per window the coordinator
gets from each worker only a small header and its log segment, already
packed and sorted, and merges the segments byte by byte (:mod:`.merge`) —
no message is unpacked here, which is why the coordinator costs nearly
nothing per message and the log is byte-identical to an in-process run.
Each worker counts its own traffic; the counts are added up at the end.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable

from ..checkpoint import release
from ..eventlog import EventLogWriter
from ..messages import to_quanta, to_time
from ..metrics import Traffic
from ..numerics import numeric_stack
from ..outputs import save_npz
from ..registry import GROUP, only_here
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
from .ckpt import checkpoint_writer, resume_coordinator, traffic_base
from .cones import ConeTeller
from .errors import ClusterError
from .gather import ProbeEngine
from .merge import SegmentMerger, merge_traffic, trace_messages
from .part import TRACE_OFF, TRACE_ON
from .partition import Partition, PartitionError, partition
from .report import sidecar_path

WINDOWS_AT_LEAST = 50
"""A run starts with windows of at most 1/50 of its duration (progress, streaming)."""
WINDOW_MESSAGES = 250_000
"""A window that delivered fewer than half this many messages is followed by one
twice as long, up to the lookahead (fewer barriers for small networks); one that
delivered more than twice this many, by one half as long. Message counts are the
run's own, so the windows are the same in every run of a scenario."""


def simulate_distributed(sc: Scenario, *, workers: int, log_path: str | None = None,
                         progress: Callable[[float], None] | None = None,
                         save_state: str | None = None, bind: str | None = None,
                         local: int | None = None, timeout: float = 5.0,
                         join_timeout: float = 60.0, keys: str | None = None,
                         method: str | None = None, step_timeout: float = 600.0,
                         notice: Callable[[str], None] | None = None,
                         attach: list[Callable] = (), final: dict | None = None,
                         mpi: bool = False, resume: dict | None = None,
                         checkpoint_every: float | None = None,
                         checkpoint_dir: str | None = None, meta: dict | None = None) -> dict:
    """Run a scenario on ``workers`` processes; return the same summary as
    ``simulation.simulate`` plus a ``cluster`` section.

    ``local`` of the workers are started here (all by default); the others
    join with ``asyncnet worker --connect`` at ``bind`` (``notice`` is told
    where to point them). With ``mpi`` this process is rank 0 of an MPI job
    and the other ranks are the workers (:mod:`.mpi`); ZeroMQ is not used.
    ``resume`` is a checkpoint to continue from (each worker restores its
    partition's agents); ``checkpoint_every`` writes checkpoints to
    ``checkpoint_dir`` as an in-process run does (:mod:`.ckpt`, ``meta``:
    more options to store in them).
    """
    sc = sc.current()  # changed since validated: the log (and workers) get what runs
    if only_here(sc.rule_name):
        raise ScenarioError(f"{sc.path}: [rule] {sc.rule_name!r} was added by "
                            f"asyncnet.register() in this process only, and worker processes "
                            f"cannot see it: install it with an entry point "
                            f"(group {GROUP!r}) or run in one process")
    side = _Side()
    complete = built = False
    try:
        if mpi:
            from .mpi import MPICluster
            opened = MPICluster(workers, step_timeout=step_timeout)
        else:
            from .transport import Cluster
            opened = Cluster(workers, local=local, bind=bind, timeout=timeout,
                             join_timeout=join_timeout, keys=keys, step_timeout=step_timeout)
        with opened as cl:
            # the workers start (Python, imports) while this process builds its
            # side and partitions: start-up overlaps, not adds up
            cl.spawn()
            remote = workers - cl.local
            if remote > 0 and notice is not None:
                notice(f"coordinator listening at {cl.endpoint}; waiting up to "
                       f"{join_timeout:g} s for {remote} worker(s) to join: "
                       f"asyncnet worker --connect {cl.endpoint}"
                       + (" --keys DIR" if keys else ""))
            side.build(sc, workers, method, log_path, progress, attach, resume,
                       (checkpoint_every, checkpoint_dir, save_state, meta))
            built = True
            eng0, net, part, traffic, writer, run = \
                side.eng0, side.net, side.part, side.traffic, side.writer, side.run
            run.cluster = cl
            cl.describe_part = run.describe_part
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
        release(checkpoint_dir)
        # a run that failed before its side was built (a --bind that cannot listen, an
        # analysis refused) leaves the log path as it was: a footer would make an old log
        # there an empty one; a resumed run's log was cut to its checkpoint, and is closed
        footer = side.writer.close(complete=complete) \
            if side.writer is not None and (built or resume is not None) else None
    wall = time.perf_counter() - side.t0
    # every worker counted its own traffic; the trace kept here adds the latencies
    merge_traffic(traffic, ([side.base] if side.base else []) + [r["traffic"] for r in results])
    for a, res in side.merged:
        a.merge(res, results, run.merger.through)
    if save_state or final is not None:
        index = {n: i for i, n in enumerate(eng0.names)}
        arrays = [(k, v) for r in results for k, v in r.get("state", [])]
        arrays.sort(key=lambda kv: index[kv[0].split("/", 1)[1]])
        if save_state:
            save_npz(save_state, dict(arrays))
        if final is not None:
            final.update(arrays)
    summary = summarize(sc, net, traffic, side.analyses, wall=wall, log_path=log_path,
                        footer=footer, save_state=save_state)
    cluster = {**part.describe(), "windows": run.n_windows,
               # start-up (processes, partitions built) vs the windows themselves
               "seconds": {"start": t1 - side.t0, "windows": t2 - t1, "total": wall,
                           # the windows' critical path in CPU time: what the
                           # windows would take with a free core per worker
                           "critical_cpu": run.critical_cpu,
                           # the coordinator's CPU on the message path (probes apart)
                           "coordinator_cpu": run.coordinator_cpu,
                           # of which following the latency trace (until its
                           # input changes are traced: a bounded cost, not a
                           # message's)
                           "trace_cpu": run.trace_cpu},
               "workers": [r["stats"] for r in results]}
    summary["cluster"] = cluster
    if writer:
        # the log it describes, by its digest: a later run into the same log (on one
        # process: no sidecar) left these figures beside a log they do not describe
        sidecar = {**cluster, "log_digest": footer.get("digest") if footer else None}
        with open(sidecar_path(log_path), "w", encoding="utf-8") as f:
            json.dump(sidecar, f, indent=1, default=_digest_json)
    return summary


class _Side:
    """The coordinator's own side of a run, built while the workers start: the
    network (no agents), the partition, the log's writer, the analyses and,
    for a resumed or checkpointed run, what that needs."""

    writer: EventLogWriter | None = None
    """The log's writer, once made (a failure after that still closes the log)."""

    def build(self, sc: Scenario, workers: int, method: str | None, log_path: str | None,
              progress: Callable[[float], None] | None, attach: list[Callable],
              resume: dict | None, checkpointing: tuple) -> None:
        """Build it (see the class); ``checkpointing``: ``(checkpoint_every,
        checkpoint_dir, save_state, meta)`` as :func:`simulate_distributed` takes them."""
        checkpoint_every, checkpoint_dir, save_state, meta = checkpointing
        eng0, net, stream = build_engine(sc, local=[])
        try:
            part = partition(eng0.links, workers, method or sc.cluster.get("partition", "auto"),
                             starts=net.inputs())
        except PartitionError as e:
            raise ScenarioError(f"{sc.path}: [cluster] {e}") from None
        traffic = new_traffic(eng0.links, net)
        writer = self.writer = \
            EventLogWriter(log_path, log_header(sc, eng0.names)) if log_path else None
        self.t0 = time.perf_counter()
        run = _Run(sc, part, eng0.names, traffic, writer, progress, net.inputs())
        probe_eng = ProbeEngine(eng0, run.fetch, lambda: run.delivered)
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
        base = None  # a resumed run's traffic counters at its checkpoint
        if resume is not None:  # a checkpoint is per agent: each worker restores its own
            run.t = resume_coordinator(resume, eng0, probe_eng, writer, merged, roots)
            run.resume = resume
            run.delivered = sum(eng0.delivered)
            run.retrace()
            base = traffic_base(traffic)
        if checkpoint_every is not None:
            run.ck_times = checkpoint_times(sc.duration, checkpoint_every, run.t)
            info = checkpoint_meta(sc, log_path, os.path.abspath(log_path) if writer else None,
                                   save_state, os.path.abspath(save_state) if save_state else None,
                                   checkpoint_every, checkpoint_dir, meta)
            run.on_checkpoint = checkpoint_writer(
                sc, eng0, traffic, writer, merged, roots, [net, stream, ctx, probe_eng, run], info,
                checkpoint_dir, fresh=resume is None, base=base,
                wall0=float((resume or {}).get("wall", 0.0)))
        self.eng0, self.net, self.part, self.traffic, self.run = eng0, net, part, traffic, run
        self.analyses, self.merged, self.base = analyses, merged, base


def _digest_json(value: object) -> object:
    """The footer's digest (bytes) as hex in the sidecar."""
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"not JSON: {type(value).__name__}")


class _Run:
    """The window loop of one run: scheduling, merging, tracing (see the module docstring)."""

    def __init__(self, sc: Scenario, part: Partition, names: list[str], traffic: Traffic,
                 writer: EventLogWriter | None, progress, inputs: list[str]):
        self.sc, self.part, self.names = sc, part, names
        self.traffic, self.writer, self.progress = traffic, writer, progress
        self.cluster = None
        self.end_q = to_quanta(sc.duration)
        look = part.lookahead_q or self.end_q
        self.window = max(1, min(look, -(-self.end_q // WINDOWS_AT_LEAST)))
        self.window_range = (self.window, look)
        self.n_windows = 0
        self.t = 0
        self.delivered = 0  # messages delivered in the windows run so far
        self.critical_cpu = 0.0  # sum over windows of the busiest worker's CPU time
        self.coordinator_cpu = 0.0  # this process's CPU in the window loop, probes apart
        self.trace_cpu = 0.0  # of which following the latency trace
        self.sent_min: int | None = None  # earliest arrival of what crossed last window
        self.keep_counts = False  # set when an analysis merges per-instant counts
        self.inputs = {names.index(n) for n in inputs if n in names}
        # latency traces need rows only until the traced input changes are done,
        # and then only of what can be in a cone (cones.py)
        self.teller = ConeTeller({n: i for i, n in enumerate(names)})
        self.retrace()  # sets self.tracing
        self.resume: dict | None = None
        self.ck_times: list[int] = []  # instants to checkpoint at, and the writer
        self.on_checkpoint: Callable[[int, dict, list[dict]], None] | None = None

    def retrace(self) -> None:
        """Choose what the next window sends for the trace (after a restored trace)."""
        tr = self.traffic
        self.tracing = TRACE_ON if tr.cones or (self.inputs and tr.traces_left > 0) \
            else TRACE_OFF

    def describe_part(self, k: int) -> str:
        agents = self.part.parts[k]
        head = ", ".join(agents[:4]) + (", ..." if len(agents) > 4 else "")
        return f"partition {k}: {len(agents)} agents ({head})"

    def start(self, want_log: bool) -> None:
        cl = self.cluster
        owner = [self.part.owner[n] for n in self.names]
        self.members = cl.members
        self.merger = SegmentMerger(self.writer, self.keep_counts)
        peers = [m.peer for m in sorted(self.members, key=lambda m: m.part)]
        nonce = os.urandom(8)
        for m in self.members:
            init = {"part": m.part, "scenario": self.sc.text, "path": self.sc.path,
                    "agents": self.names, "owner": owner, "log": want_log,
                    "counts": self.keep_counts, "peers": peers, "nonce": nonce,
                    "timeout": max(30.0, 3 * cl.timeout)}
            if self.resume is not None:  # the checkpoint's states of this partition
                init["resume"] = {"t": self.resume["t"], "agents": [
                    [n, self.resume["agents"][n]] for n in self.part.parts[m.part]]}
            cl.send(m, [b"INIT", wire.pack(init)])
        cl.where = "building its partition"
        got = cl.collect(self.members, b"READY")
        ready = {k: wire.as_map(wire.unpack(f[0]), "READY") for k, f in got.items()}
        self.next_t = {k: r["next_t"] for k, r in ready.items()}
        mine = numeric_stack()
        for m in self.members:
            theirs = ready[m.part].get("numerics")
            if theirs is not None and theirs != mine:  # (an older worker does not say)
                warnings.warn(f"{cl.name(m)} computes with {theirs}, the coordinator with "
                              f"{mine}: its messages may differ in the last bits from a "
                              f"one-process run's (set OPENBLAS_CORETYPE alike on every "
                              f"machine; docs/reproducibility.md)", stacklevel=2)

    def windows(self) -> None:
        cl = self.cluster
        probes = sorted(p for p in self.probe_eng.probes if p[0] < self.end_q)
        pi = 0
        # the segments of a window are merged while the workers run the next one
        pending: list[tuple[bytes, bytes]] = []
        pending_end = 0

        cpu0 = time.process_time()

        def flush() -> None:
            self.merger.add(pending)
            pending.clear()
            if self.progress is not None and pending_end:
                self.progress(to_time(pending_end))

        while True:
            starts = [t for t in self.next_t.values() if t is not None]
            if self.sent_min is not None:
                starts.append(self.sent_min)
            first = min(starts) if starts else None
            # a probe at t reads the state after every event before t (in-process,
            # the wake-ups of t = 0 are scheduled before any probe: after those)
            barrier = None
            ck = self.ck_times[0] if self.ck_times else None
            if ck is not None and (first is None or first >= ck) and \
                    (pi >= len(probes) or probes[pi][0] >= ck):
                # every event and probe before ck is done, none at ck; what crossed
                # the cut last window waits in the peers' buffers
                c = time.process_time()
                flush()
                self._checkpoint(self.ck_times.pop(0))
                cpu0 += time.process_time() - c
                continue
            if pi < len(probes):
                barrier = probes[pi][0] + (1 if probes[pi][0] == 0 else 0)
                if first is None or barrier <= first:
                    c = time.process_time()
                    pi = self._probe(probes, pi)
                    cpu0 += time.process_time() - c
                    continue
            if first is None or first >= self.end_q:
                break
            begin = max(self.t, first)
            end = min(begin + self.window, self.end_q, barrier or self.end_q, ck or self.end_q)
            head = {"end": end, "w": self.n_windows, "trace": self.tracing}
            if self.tracing:
                head["watch"] = self.teller.watch(self.traffic.cones, self.traffic.horizon)
            head = wire.pack(head)
            for m in self.members:
                cl.send(m, [b"RUN", head])
            flush()
            cl.where = f"running the window t={to_time(begin):g}..{to_time(end):g}"
            got = cl.collect(self.members, b"DONE")
            self.sent_min = None
            traces = []
            cpu = 0.0
            before = self.delivered
            for k in sorted(got):
                frames = got[k]
                if len(frames) != 4:
                    raise ClusterError(f"{cl.name(self._member(k))} sent {len(frames)} "
                                       f"frames with DONE (expected 4)")
                h = wire.as_map(wire.unpack(frames[0]), "DONE")
                self.next_t[k] = h["next_t"]
                sm = h["sent_min"]
                if sm is not None:
                    if sm < end:
                        raise ClusterError(f"{cl.name(self._member(k))} sent a message that "
                                           f"arrives inside the window")
                    self.sent_min = sm if self.sent_min is None else min(self.sent_min, sm)
                self.delivered += int(h["delivered"])
                cpu = max(cpu, float(h["cpu"]))
                pending.append((frames[1], frames[2]))
                traces.append(frames[3])
            if self.tracing != TRACE_OFF:
                self._trace(traces)
            self.critical_cpu += cpu
            self._next_window(self.delivered - before, end - begin)
            pending_end = end
            self.n_windows += 1
            self.t = end
        flush()
        self.merger.finish()
        self.coordinator_cpu = time.process_time() - cpu0
        if self.progress is not None:
            self.progress(to_time(self.end_q))

    def _next_window(self, delivered: int, length: int) -> None:
        """The next window's length from this one's messages (``WINDOW_MESSAGES``)."""
        low, high = self.window_range
        if delivered < WINDOW_MESSAGES // 2 and length >= self.window:
            self.window = min(high, 2 * self.window)
        elif delivered > 2 * WINDOW_MESSAGES:
            self.window = max(low, self.window // 2)

    def _checkpoint(self, t: int) -> None:
        """Every worker takes the messages in flight to it and packs its agents;
        the checkpoint is written here."""
        cl = self.cluster
        cl.where = f"writing the checkpoint at t={to_time(t):g}"
        head = wire.pack({"t": t, "w": self.n_windows})
        for m in self.members:
            cl.send(m, [b"CKPT", head])
        agents: dict = {}
        parts = []
        got = cl.collect(self.members, b"CKSTATE")
        for k in sorted(got):
            h = wire.as_map(wire.unpack(got[k][0]), "CKSTATE")
            self.next_t[k] = h["next_t"]
            agents.update(dict(h["agents"]))
            parts.append(h["traffic"])
        self.sent_min = None  # what was in flight is in the agents' inboxes now
        self.on_checkpoint(t, agents, parts)

    def _member(self, k: int):
        return next(m for m in self.members if m.part == k)

    def _trace(self, frames: list[bytes]) -> None:
        """Feed the latency trace one window; choose what the next window sends."""
        c = time.process_time()
        self.traffic.follow(trace_messages(frames, self.names))  # the counts are the workers'
        self.retrace()
        self.trace_cpu += time.process_time() - c

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


__all__ = ["simulate_distributed", "ClusterError"]
