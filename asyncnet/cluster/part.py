"""One partition of a distributed run, whatever carries its messages.

A :class:`PartRunner` owns the agents of one partition on its own engine and
runs it window by window. It knows nothing of sockets: the ZeroMQ worker
(:mod:`.worker`) and the MPI worker (:mod:`.mpi`) hand it the frames other
partitions sent, ask it to run to a window's end, and carry what it returns —
one frame of messages per neighbouring partition (straight to that peer),
and for the coordinator a small header, this window's log segment and, while
the coordinator still traces input-to-update latency, trace rows.

The log segment is the partition's delivered records, packed exactly as the
event log packs them, grouped by ``(t_arrive, dst)`` in canonical order, with
one row of ``meta`` per group: ``t, dst, bytes, forward, delta, control``.
Every message to one agent at one instant is delivered by the partition that
owns the agent, so the coordinator merges segments by ``(t, dst)`` alone and
never unpacks a record (:mod:`.merge`).
"""

from __future__ import annotations

import time
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np

from .. import logcapture, logsends
from ..agents import Outbox
from ..capture import Captured, send_table
from ..checkpoint import capture_agent, restore_partition
from ..logcapture import pack_sends, send_records
from ..logencode import PayloadCodes
from ..logformat import array_items, record_key
from ..logpack import MIN_RECORDS, pack_batches
from ..messages import LocalityError, Message, to_quanta
from ..metrics import Traffic
from ..scenario import load
from ..simulation import analyses_of, build_engine, context, feed_traffic, final_state
from . import frames, wire
from .cones import ConeWatch
from .frames import IncomingLinks, group_by_peer, outbox_frames, pack_frame, read_columns

META_COLS = 6
"""Columns of a segment's meta rows: t, dst, bytes, forward, delta, control."""
TRAFFIC_KEYS = ("count", "local", "dmin", "dmax", "dsum")
"""The mergeable counters of :class:`~asyncnet.metrics.Traffic` a partition reports."""
TRACE_OFF, TRACE_ON = 0, 1
"""Whether a window returns rows for the coordinator's latency trace (see ``run_window``)."""
_ARRIVES = itemgetter(4)
_ONE_OF = ((1, 0, 0), (0, 1, 0), (0, 0, 1))  # a one-message batch's count by kind
_new_tuple = tuple.__new__
_NDARRAY = np.ndarray


def _by_kind(batch: list[Message]) -> list[int]:
    """A batch's message count by kind."""
    by = [0, 0, 0]
    for m in batch:
        by[m[0]] += 1
    return by


class PartError(RuntimeError):
    """The partition cannot go on (another network, a broken protocol)."""


class PartRunner:
    """The agents of one partition and their window-by-window run.

    Parameters
    ----------
    init:
        The coordinator's INIT map: ``part``, ``scenario`` (text), ``path``,
        ``agents`` (every agent name), ``owner`` (partition of each), ``log``
        (whether to build log segments) and optionally ``counts`` (per-instant
        message counts wanted) and ``resume`` (a checkpoint's instant and the
        packed states of this partition's agents).
    """

    def __init__(self, init: dict):
        self.part = int(init["part"])
        self.log = bool(init["log"])
        self.counts = bool(init.get("counts", False))
        sc = load(init["path"], text=init["scenario"])
        owner = [int(p) for p in init["owner"]]
        agents = list(init["agents"])
        if len(owner) != len(agents):
            raise PartError("INIT: one owner per agent expected")
        mine = [n for n, p in zip(agents, owner, strict=True) if p == self.part]
        self.index = {n: i for i, n in enumerate(agents)}
        # what crosses the cut is kept as sent, six numbers and a payload a message
        # (no Message made), and packed, a frame a neighbour, at the window's end
        self.outbox = Outbox(self.index)
        eng, net, stream = build_engine(sc, local=mine, remote=self.outbox)
        if eng.names != agents:
            raise PartError("this worker builds a different network from the scenario "
                            "(different asyncnet versions?)")
        if "resume" in init:  # the checkpoint's state of this partition's agents
            restore_partition(eng, init["resume"])
        self.eng, self.net, self.names, self.stream = eng, net, eng.names, stream
        self.owner = np.array(owner, dtype=np.int64)
        self.incoming = IncomingLinks(eng.links, self.index, set(mine))
        links = eng.links
        # links are symmetric: the partitions this one sends to are those it hears from
        self.peers = sorted({owner[self.index[b]] for a in mine for b in links[a]}
                            - {self.part})
        self.packer = wire.packer()
        self.owner_by_name = dict(zip(agents, owner, strict=True))
        # an array delivered to many (a neuron's value to its synapses) is encoded
        # once a window for the log
        self.codes = PayloadCodes()
        # the window's log segment so far: (meta rows, their records' bytes) an instant
        self.chunks: list[tuple[np.ndarray, bytes]] = []
        # the latency trace's rows: only those of messages that can matter there
        self.tracing = TRACE_OFF
        self._traced: list[list[Message]] = []  # the instant's batches, while it runs
        self.cones = ConeWatch(self.index, frozenset(net.inputs()), frozenset(net.outputs()))
        # the last window whose neighbours' frames were injected (a checkpoint
        # takes them early: the next window must not wait for them again)
        self.taken = -1
        # this partition's own traffic counters; the coordinator adds them up
        self.traffic = Traffic(links, [], [], traces=0)
        eng.instant_sinks.append(self._record)
        if self.log:  # the segment from the sends (asyncnet.logcapture), batches where not
            eng.record(self._logged)
        # the run's end: this partition's records are projected there when its log
        # chooses the packing loop (loading the compiled one costs a worker 0.3-0.7
        # CPU-s, more than the records of a short run save)
        self.end = to_quanta(sc.duration)
        feed_traffic(eng, self.traffic)
        # probes run at the coordinator (it asks for states); monitors run here
        ctx = context(sc, eng, net, stream)
        self.shares = [a.share(ctx) for a in analyses_of(sc) if a.monitors]
        self.stats = {"windows": 0, "delivered": 0, "cut_sent": 0, "cut_received": 0,
                      "wait_seconds": 0.0, "busy_seconds": 0.0, "cpu_seconds": 0.0}

    # -- messages -----------------------------------------------------------
    def _record(self, batches: list[list[Message]]) -> None:
        """An instant's delivered batches (an engine instant sink), in wake order."""
        self.stats["delivered"] += sum(map(len, batches))
        if self.counts and not self.log:  # the coordinator's counts: meta rows alone
            self._batch_segment(batches)
        if self.tracing:
            if self.log:  # followed from its sends, as the log takes them (_logged)
                self._traced = batches
            else:
                self.cones.instant(batches)

    def _logged(self, captured: Captured) -> None:
        """An instant for the log segment (an engine recorder): its sends, or its batches."""
        if captured.sends is None:
            if self.tracing:
                self.cones.instant(captured.batches or [])
            self._batch_segment(captured.batches or [])
            return
        # a small instant record by record, as the in-process writer packs it: the
        # column-wise path's numpy calls cost more there (a window of a small
        # scenario is an instant or two)
        small = len(captured.sends[1]) < logcapture.SMALL_INSTANT
        table = None if small else send_table(captured.sends)
        if self.tracing and (table is None or not self.cones.sends(captured, table)):
            self.cones.instant(self._traced)
        self._traced = []
        got = None if small else pack_sends(
            captured, logsends.projected(self.stats["delivered"], captured.t, self.end), table)
        if got is None:  # not column-wise exactly: the records one by one
            recs = sorted(send_records(captured, self.codes), key=record_key)
            self._record_segment(captured.t, recs)
            return
        data, dst, kind, ends, _ = got
        if not len(dst):
            return
        first = np.flatnonzero(np.diff(dst)) + 1  # each (t, dst) group's first record
        starts = np.concatenate(([0], first))
        last = np.concatenate((first, [len(dst)])) - 1
        group = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(dst))))
        meta = np.empty((len(starts), META_COLS), dtype="<i8")
        meta[:, 0] = captured.t
        meta[:, 1] = dst[starts]
        meta[:, 2] = np.diff(ends[last], prepend=0)
        meta[:, 3:] = np.bincount(group * 3 + kind, minlength=3 * len(starts)).reshape(-1, 3)
        self.chunks.append((meta, bytes(data)))  # not a view of the loop's larger buffer

    def _record_segment(self, t: int, recs: list[tuple]) -> None:
        """Records ``(t, kind, src, dst, t_sent, seq, code)`` in canonical order, as
        (t, dst) groups of the segment."""
        rows, blobs = [], []
        at = 0
        while at < len(recs):
            end = at + 1
            while end < len(recs) and recs[end][3] == recs[at][3]:
                end += 1
            group = recs[at:end]
            by = [0, 0, 0]
            for r in group:
                by[r[1]] += 1
            blob = array_items(self.packer.pack(group))
            rows.append((t, recs[at][3], len(blob), *by))
            blobs.append(blob)
            at = end
        if rows:
            self.chunks.append((np.array(rows, dtype="<i8"), b"".join(blobs)))

    def _batch_segment(self, batches: list[list[Message]]) -> None:
        """An instant's delivered batches as (t, dst) groups of the segment."""
        if not batches:
            return
        idx = self.index
        n = sum(map(len, batches))
        # a batch is one receiver at one instant, in canonical order: its
        # records are one (t, dst) group of the log
        t = batches[0][0][4]
        packed = pack_batches(batches, idx) if self.log and n >= MIN_RECORDS else None
        if packed is not None:  # column-wise (asyncnet.logpack): the same bytes
            data, ends, kinds, dst = packed
            g = len(batches)
            lens = np.fromiter(map(len, batches), dtype=np.int64, count=g)
            last = np.cumsum(lens) - 1
            meta = np.empty((g, META_COLS), dtype="<i8")
            meta[:, 0] = t
            meta[:, 1] = dst[last]
            meta[:, 2] = np.diff(ends[last], prepend=0)
            group = np.repeat(np.arange(g), lens)
            meta[:, 3:] = np.bincount(group * 3 + kinds, minlength=3 * g).reshape(g, 3)
            self.chunks.append((meta, data))
            return
        ds = [idx[b[0][2]] for b in batches]
        bys = [_ONE_OF[b[0][0]] if len(b) == 1 else _by_kind(b) for b in batches]
        if self.log:
            known, make = self.codes.known, self.codes.make
            groups = [[(ta, k, idx[s], d, ts, q,
                        p if type(p) is not _NDARRAY else known(id(p)) or make(p))
                       for k, s, _, ts, ta, q, p in b]
                      for d, b in zip(ds, batches, strict=True)]
            # each group's records without the array's own header
            blobs = [array_items(x) for x in map(self.packer.pack, groups)]
        else:
            blobs = [b""] * len(batches)
        meta = np.array([(t, d, len(b), *by) for d, b, by in zip(ds, blobs, bys, strict=True)],
                        dtype="<i8")
        self.chunks.append((meta, b"".join(blobs)))

    def inject(self, frame: bytes) -> None:
        """Accept one frame of messages another partition sent to this one.

        Parameters
        ----------
        frame:
            a msgpack array of ``[kind, src, dst, t_sent, t_arrive, seq,
            payload]`` (agents as indices); every message must travel a link
            of this partition with that link's delay (``LocalityError``).
        """
        items = wire.unpack(frame)
        if isinstance(items, dict):  # column-wise (.frames)
            cols, payloads = read_columns(items)
            if not self._inject_columns(cols, payloads):
                self._inject_each([[*fields, p] for fields, p in zip(
                    cols.tolist(), payloads, strict=True)])
            self.stats["cut_received"] += len(payloads)
            return
        if not isinstance(items, list):
            raise wire.WireError("a message frame must be an array or a map")
        # a small frame (a sender sends one message by message) is read so too
        if len(items) < frames.SMALL_FRAME or not self._inject_all(items):
            self._inject_each(items)
        self.stats["cut_received"] += len(items)

    def _inject_each(self, items: list) -> None:
        """A frame's messages one at a time: the first that is wrong says why."""
        eng = self.eng
        names, links, agents, inject = self.names, eng.links, eng.agents, eng.inject
        for it in items:
            if type(it) is not list or len(it) != 7:
                raise wire.WireError("malformed message in a frame")
            kind, s, d, t_sent, t_arrive, seq, payload = it
            if not all(type(x) is int for x in (kind, s, d, t_sent, t_arrive, seq)):
                raise wire.WireError("a message's fields must be integers (its payload apart)")
            if not 0 <= kind <= 2:
                raise wire.WireError(f"a message of unknown kind {kind}")
            if not 0 <= s < len(names) or not 0 <= d < len(names):
                raise wire.WireError("a message names no agent of the run")
            src, dst = names[s], names[d]
            if dst not in agents or links[dst].get(src) != t_arrive - t_sent:
                raise LocalityError(f"message {src} -> {dst} does not match a link here")
            if t_arrive < eng.env.now:
                raise wire.WireError(f"message {src} -> {dst} arrives in this partition's past")
            inject(_new_tuple(Message, (kind, src, dst, t_sent, t_arrive, seq, payload)))

    def _inject_all(self, items: list) -> bool:
        """Check and inject a per-message frame as columns; False, with nothing
        injected, if any message is not plainly right (the caller then goes one by one)."""
        if set(map(type, items)) != {list} or set(map(len, items)) != {7}:
            return False
        *ints, payloads = zip(*items, strict=True)
        if not {int}.issuperset(map(type, chain(*ints))):  # plain ints only
            return False
        try:
            cols = np.array(ints, dtype=np.int64).T
        except OverflowError:  # an integer past int64
            return False
        return self._inject_columns(cols, list(payloads))

    def _inject_columns(self, cols: np.ndarray, payloads: list) -> bool:
        """Inject a frame's messages, ``(n, 6)`` integer columns and their payloads,
        if every one travels an incoming link of this partition with its delay
        (checked with numpy, :class:`.frames.IncomingLinks`); else False, nothing
        injected."""
        if not self.incoming.admit(cols, self.eng.env.now):
            return False
        self.eng.inject_columns(cols, payloads)
        return True

    # -- windows ------------------------------------------------------------
    def next_t(self) -> int | None:
        """When this partition's next event is (quanta), or None if it has none."""
        t = self.eng.env.peek()
        return None if t == float("inf") else int(t)

    def run_window(self, end: int, trace: int = TRACE_OFF, inbound: list[bytes] = (),
                   watch: list | None = None) -> tuple[dict, list[bytes], dict[int, bytes]]:
        """Take what the neighbours sent, then run every event before ``end``.

        Parameters
        ----------
        end:
            the window's end (quanta, exclusive).
        trace:
            ``TRACE_ON``: return the rows the coordinator's latency trace can
            use (:class:`~asyncnet.cluster.cones.ConeWatch`); ``TRACE_OFF``: none.
        inbound:
            the frames the neighbouring partitions sent in the last window.
        watch:
            what the coordinator says of its open cones
            (:meth:`~asyncnet.cluster.cones.ConeTeller.watch`), or None.

        Returns
        -------
        ``(head, frames, out)``: the header for the coordinator (``next_t``,
        ``sent_min``, ``delivered``, ``cpu``: this process's CPU seconds for the
        window), its frames (segment meta, segment bytes, trace rows) and one
        frame of messages for every neighbouring partition.
        """
        cpu0 = time.process_time()
        for frame in inbound:
            self.inject(frame)
        self.tracing = trace
        if trace:
            self.cones.told(watch)
        before = self.stats["delivered"]
        self.eng.run_quanta(end)
        meta, blob = self._segment()
        self.codes.clear()
        out, sent_min, n_sent = self._frames()
        self.stats["cut_sent"] += n_sent
        trace_frame = self.cones.take() if trace else b""
        cpu = time.process_time() - cpu0
        self.stats["cpu_seconds"] += cpu
        head = {"next_t": self.next_t(), "sent_min": sent_min,
                "delivered": self.stats["delivered"] - before, "cpu": cpu}
        self.stats["windows"] += 1
        return head, [meta, blob, trace_frame], out

    def _frames(self) -> tuple[dict[int, bytes], int | None, int]:
        """The outbox as one frame a neighbour, the earliest arrival, the count."""
        numbers, payloads = self.outbox.take()
        try:
            got = outbox_frames(numbers, payloads, self.owner, self.peers, self.packer)
            if got is None:  # a kind of the rule's own, or a huge number: message by message
                names = self.names
                sent = [_new_tuple(Message, (k, names[s], names[d], ts, ta, q, p))
                        for (k, s, d, ts, ta, q), p in zip(
                            zip(*[iter(numbers)] * 6, strict=True), payloads, strict=True)]
                by_peer = group_by_peer(sent, self.owner_by_name.__getitem__)
                if not set(by_peer) <= set(self.peers):
                    raise ValueError("a message was sent to an agent of no neighbouring "
                                     "partition")
                got = ({p: pack_frame(by_peer.get(p, []), self.index, self.packer)
                        for p in self.peers}, min(map(_ARRIVES, sent)) if sent else None)
        except ValueError as e:
            raise PartError(str(e)) from None
        return got[0], got[1], len(payloads)

    def wants_frames(self, window: int) -> bool:
        """Whether the neighbours' frames of ``window`` are still to be taken.

        Parameters
        ----------
        window:
            the number of a window run (-1: none yet).

        Returns
        -------
        True if this partition has neighbours and has not injected them yet.
        """
        return window >= 0 and bool(self.peers) and self.taken < window

    def checkpoint(self, inbound: list[bytes]) -> dict[str, Any]:
        """This partition at a checkpoint: take what is in flight to it, pack its agents.

        Parameters
        ----------
        inbound:
            the neighbours' frames of the last window (messages in flight to
            this partition; they go into the agents' inboxes, which are captured).

        Returns
        -------
        ``next_t``, ``agents`` (``[[name, packed state], ...]``) and ``traffic``
        (the counters so far, as :meth:`results` gives them).
        """
        for frame in inbound:
            self.inject(frame)
        eng, shared = self.eng, [self.eng.rule, self.net, self.stream]
        return {"next_t": self.next_t(),
                "agents": [[n, capture_agent(eng, a, shared)] for n, a in eng.agents.items()],
                "traffic": {k: getattr(self.traffic, k) for k in TRAFFIC_KEYS}}

    def _segment(self) -> tuple[bytes, bytes]:
        """This window's records as (meta, packed bytes), grouped by (t, dst)."""
        chunks, self.chunks = self.chunks, []
        if not chunks:
            return b"", b""
        meta = np.concatenate([c[0] for c in chunks]) if len(chunks) > 1 else chunks[0][0]
        data = b"".join([c[1] for c in chunks])
        t, d = meta[:, 0], meta[:, 1]
        if not ((t[1:] > t[:-1]) | ((t[1:] == t[:-1]) & (d[1:] >= d[:-1]))).all():
            # not in the log's canonical order (t, dst) as run: the groups sorted,
            # stably, their bytes moved along
            order = np.lexsort((d, t)).tolist()
            at = [0, *np.cumsum(meta[:, 2]).tolist()]
            view = memoryview(data)
            data = b"".join([view[at[i]:at[i + 1]] for i in order])
            meta = meta[order]
        return meta.tobytes(), data

    # -- reading ------------------------------------------------------------
    def states(self, names: list[str]) -> list[list]:
        """The states of agents of this partition (for probes).

        Parameters
        ----------
        names:
            agents owned by this partition.

        Returns
        -------
        ``[[name, state], ...]`` in the order asked.
        """
        agents = self.eng.agents
        out = []
        for name in names:
            if name not in agents:
                raise PartError(f"asked for the state of {name!r}, not in this partition")
            out.append([name, agents[name].model.state()])
        return out

    def results(self, save_state: bool) -> dict[str, Any]:
        """What the coordinator merges at the end.

        Parameters
        ----------
        save_state:
            whether to include the final state arrays.

        Returns
        -------
        ``stats`` (per-worker figures), ``traffic`` (the mergeable counters),
        the analyses' shares, and ``state`` if asked.
        """
        tr = self.traffic
        res: dict[str, Any] = {
            "stats": {**self.stats, "agents": len(self.eng.agents), "part": self.part},
            "traffic": {k: getattr(tr, k) for k in TRAFFIC_KEYS}}
        for share in self.shares:
            res.update(share())
        if save_state:
            res["state"] = [[k, v] for k, v in final_state(self.eng).items()]
        return res
