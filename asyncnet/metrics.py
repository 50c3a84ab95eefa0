"""Measurements of a run: traffic, locality, latency, gradient error, alignment.

``Traffic`` is fed message batches — by the engine during a run, or by the
event log afterwards — so ``asyncnet stats`` computes the same figures from
a log alone as ``asyncnet run`` does live.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import chain, repeat
from operator import itemgetter, mul

import numpy as np

from .capture import Captured, send_bounds
from .ids import is_synapse
from .messages import CONTROL, DELTA, FORWARD, KIND_NAMES, QUANTA, Message

INF = float("inf")
_WRAP = 1 << 63
_NO_LINK = -_WRAP
_KIND, _SRC, _DST, _T_SENT, _T_ARRIVE = (itemgetter(i) for i in range(5))
_FIRST = itemgetter(0)


def input_value(payload: object) -> bytes:
    """An input's value as the latency trace compares it (a change opens a trace).

    Parameters
    ----------
    payload:
        a data message's payload.

    Returns
    -------
    Its float64 bytes.
    """
    return np.asarray(payload, dtype=float).tobytes()


class Traffic:
    """Counts by kind, link delays, locality, and input -> update latency.

    ``links`` is the locality graph (agent -> neighbour -> delay). For the
    first ``traces`` changes of an input value after t = 0 it follows the
    change forward (through forward messages) and records when it first
    reached a synapse (a weight update that used the new input); once it
    reaches an output, it follows the credit born there backward (through
    delta messages) and records when that first reached a synapse (a weight
    update that used the credit the new input caused).
    """

    small_instant = 64
    """:meth:`instant` takes fewer messages than this one by one: its C loops cost
    ≈ 10 µs an instant more and save ≈ 0.15 µs a message (measured: at 4–6
    messages an instant, 0.5 µs a message one by one against 2.6 µs; at
    ~70 about even)."""

    def __init__(self, links: dict[str, dict[str, int]], inputs: list[str],
                 outputs: list[str], traces: int = 5, horizon: int = 0):
        self.links = links
        self.inputs = set(inputs)
        self.outputs = set(outputs)
        self.count = [0, 0, 0]
        self.local = 0
        self.dmin = [INF, INF, INF]
        self.dmax = [0, 0, 0]
        self.dsum = [0, 0, 0]
        self.traces_left = traces
        self.horizon = horizon
        self.last_input: dict[str, bytes] = {}
        self.cones: list[dict] = []
        self.latency_forward: list[float] = []
        self.latency_credit: list[float] = []

    def __call__(self, batch: list[Message], locality: bool = True) -> None:
        """Account for one delivered batch (``locality=False``: its one-link
        messages apart, which the caller counts)."""
        for m in batch:
            k = m.kind
            self.count[k] += 1
            d = m.t_arrive - m.t_sent
            self.dsum[k] += d
            if d < self.dmin[k]:
                self.dmin[k] = d
            if d > self.dmax[k]:
                self.dmax[k] = d
            if locality and self.links.get(m.src, {}).get(m.dst) == d:
                self.local += 1
            if self.cones:
                self._trace(m)
            if k == CONTROL and m.dst in self.inputs:
                self._input(m)

    def instant(self, batches: list[list[Message]],
                offroute: Sequence[Message] | None = None) -> None:
        """Account for a whole instant's batches (an engine instant sink).

        The same figures as calling the counter with each batch in turn
        (tested), with the per-message work done by C loops: counts, delays
        and locality taken over all the instant's messages at once. Messages
        are looked at one by one, in order, only where the latency traces
        need them: control messages (one to an input may open a trace), and
        while a trace is open those that can change it (:meth:`_can_change`).

        Which those are is decided by the cones as they stood when the
        instant began. That is exact: a message can extend a cone only if it
        was sent after its sender joined, and one delivered now was sent
        before now (every link between agents a cone can hold takes a
        quantum or more; only a data source's may take none, and a source
        is in no cone), so a sender that joins during the instant sent
        nothing that matters among its messages; and a receiver in a cone
        stays in it.

        Parameters
        ----------
        batches:
            every batch delivered at one instant, in wake order.
        offroute:
            if given, every message of ``batches`` but these travelled one
            link with that link's delay (the engine's ``offroute``: it sent
            the others along its routes, whose delays are their links'), so
            only these are looked up in ``links``; None: all are.
        """
        if self.small(batches):  # the per-message loop is cheaper there
            return self._each(batches, offroute)
        msgs = list(chain.from_iterable(batches))
        try:
            kinds = bytes(map(_KIND, msgs))
        except (ValueError, TypeError):  # not a small int
            kinds = b""
        if kinds.count(0) + kinds.count(1) + kinds.count(2) != len(msgs):
            # a kind the counters do not know: as a batch does
            return self._each(batches, offroute)
        n = len(msgs)
        try:
            # the times and each link's delay (-2**63: no such link, a value no delay
            # below takes) as int64 columns: no Python int made a message (the
            # delays used to be, by operator.sub)
            t_sent = np.fromiter(map(_T_SENT, msgs), dtype=np.int64, count=n)
            t_arrive = np.fromiter(map(_T_ARRIVE, msgs), dtype=np.int64, count=n)
            near = None if offroute is not None else np.fromiter(
                map(dict.get, map(self.links.__getitem__, map(_SRC, msgs)), map(_DST, msgs),
                    repeat(_NO_LINK)), dtype=np.int64, count=n)
        except (KeyError, OverflowError, TypeError):  # no links, past int64, not an int
            return self._each(batches, offroute)
        if int(t_sent.min()) < 0 or int(t_arrive.min()) < 0:  # t_arrive - t_sent could wrap
            return self._each(batches, offroute)
        d = t_arrive - t_sent
        local = int(np.count_nonzero(near == d)) if near is not None else \
            n - len(offroute) + self._one_link(offroute)
        k = np.frombuffer(kinds, dtype=np.uint8)
        for kind in range(3):
            sel = d if kinds.count(kind) == len(kinds) else d[k == kind]
            if len(sel):
                self._add_delays(kind, sel)
        self.local += local
        self._follow_instant(msgs, kinds)

    def sends(self, captured: Captured, table: np.ndarray | None,
              batches: list[list[Message]], offroute: Sequence[Message] | None = None) -> None:
        """:meth:`instant` for an instant the log's capture has as sends.

        The counts, delays and locality are taken from one entry a send (a
        neuron's value to its 120 synapses is one), not from every message:
        on the per-neuron L net the counter's C loops over every message
        cost ≈ 0.2 µs a message, much of it in cache misses (the instant's
        messages are touched again after its wake-ups). The latency traces
        still look at the batches (while a trace is open, or at a control
        message to an input).

        Parameters
        ----------
        captured:
            the instant as the engine hands it to a recorder, with its sends.
        table:
            its sends' :func:`~asyncnet.capture.send_table`, or None.
        batches:
            the same instant's delivered batches (the trace's; and the
            counts' where the sends are not plain numbers: then as :meth:`instant`).
        offroute:
            as :meth:`instant`'s; None (look every message up): as :meth:`instant`.
        """
        if table is None or offroute is None or \
                not self._count_sends(captured, table, batches, offroute):
            self.instant(batches, offroute)
            return
        if self.cones:
            msgs = list(chain.from_iterable(batches))
            self._follow_instant(msgs, bytes(map(_KIND, msgs)))  # kinds 0-2 (checked)
        elif not self.inputs.isdisjoint(map(_DST, map(_FIRST, batches))):
            inputs = self.inputs
            for b in batches:
                if b[0][2] in inputs:
                    for m in b:
                        if m[0] == CONTROL:
                            self._input(m)

    def small(self, batches: list[list[Message]]) -> bool:
        """Whether an instant of ``batches`` is counted message by message: fewer
        than ``small_instant`` messages, where the per-message loop costs less
        than a send table's or the C loops' fixed cost (numpy calls on arrays
        of a few rows: ≈ 60 µs an instant, most of a small scenario's counting).

        Parameters
        ----------
        batches:
            the instant's delivered batches.

        Returns
        -------
        True if :meth:`instant` counts it message by message (and the run's
        recorder gives it to :meth:`instant`, not :meth:`sends`:
        :func:`asyncnet.simulation.feed_traffic`).
        """
        small = self.small_instant  # (a batch holds a message or more: no sum past it)
        return len(batches) < small and sum(map(len, batches)) < small

    def _count_sends(self, captured: Captured, table: np.ndarray,
                     batches: list[list[Message]], offroute: Sequence[Message]) -> bool:
        """Counts, delays and locality from the sends; False, nothing counted, where
        the sends are not what the batches delivered in plain numbers."""
        t = captured.t
        delivered = sum(map(len, batches))
        got = send_bounds(table, captured)
        if got is None:
            return not delivered
        lo, hi, keys_known = got  # (src, t_sent, seq before, kind, key); key < 0: one receiver
        if lo[3] < 0 or hi[3] > 2 or lo[1] < 0 or hi[1] > t or not keys_known \
                or not 0 <= t < _WRAP:
            return False
        key = table[:, 4]
        named = key < 0
        n = np.where(named, 1, captured.table.here()[np.where(named, 0, key)]
                     if len(captured.table.arrays()[2]) else 1)
        if int(n.sum()) != delivered:
            return False
        d = t - table[:, 1]
        kind = table[:, 3]
        for k in range(lo[3], hi[3] + 1):
            sel = n > 0 if lo[3] == hi[3] else (kind == k) & (n > 0)
            if sel.any():
                self._add_delays(k, d[sel], n[sel])
        self.local += delivered - len(offroute) + self._one_link(offroute)
        return True

    def _add_delays(self, k: int, d: np.ndarray, times: np.ndarray | None = None) -> None:
        """Count messages of kind ``k`` with delays ``d`` (int64; ``times``: how
        many messages each delay stands for, or one each), exactly: an int64 sum
        where it cannot wrap, else Python ints."""
        count = len(d) if times is None else int(times.sum())
        lo, hi = int(d.min()), int(d.max())
        if max(hi, -lo) * count < _WRAP:
            total = int(d.sum() if times is None else d @ times)
        else:
            total = sum(d.tolist()) if times is None else \
                sum(map(mul, d.tolist(), times.tolist()))
        self.count[k] += count
        self.dsum[k] += total
        if lo < self.dmin[k]:
            self.dmin[k] = lo
        if hi > self.dmax[k]:
            self.dmax[k] = hi

    def _follow_instant(self, msgs: list[Message], kinds: bytes) -> None:
        """The latency traces' part of an instant: in order, the control messages
        and those that can change an open cone (see :meth:`instant`)."""
        look = []
        at = kinds.find(CONTROL)
        while at >= 0:
            look.append(at)
            at = kinds.find(CONTROL, at + 1)
        if self.cones:
            look = sorted(set(look).union(np.flatnonzero(self._can_change(msgs, kinds)).tolist()))
        inputs = self.inputs
        for i in look:  # what calling the counter does, counts apart
            m = msgs[i]
            if self.cones:
                self._trace(m)
            if m[0] == CONTROL and m[2] in inputs:
                self._input(m)

    def _can_change(self, msgs: list[Message], kinds: bytes) -> np.ndarray:
        """Which of an instant's messages can change an open cone (a superset).

        :meth:`_trace` changes a cone only for a message from a sender in the
        cone's side (forward: ``reach``; delta: ``back``) that adds its
        receiver to that side, or may set the side's first update (while that
        is not found), or passes the horizon (which ends the cone). A cone's
        sides only grow, so a receiver already in a side at the instant's start
        stays there: once a change has reached the whole net, the instant's
        forward messages are passed over here in C loops, not one by one.
        """
        n = len(msgs)
        kind = np.frombuffer(kinds, dtype=np.uint8)
        # each side's senders are looked up among its kind's messages only (a
        # forward side's among forward messages): half the look-ups
        of_kind: dict[int, tuple[np.ndarray, list[str]]] = {}
        hit = np.zeros(n, dtype=bool)
        t = msgs[0][4]  # every message of an instant arrives then
        for c in self.cones:
            late = bool(self.horizon) and t - c["t0"] > self.horizon
            for side, k, first in ((c["reach"], FORWARD, c["fwd"]),
                                   (c["back"], DELTA, c["credit"])):
                if not side:
                    continue
                got = of_kind.get(k)
                if got is None:
                    at_k = np.flatnonzero(kind == k)
                    got = of_kind[k] = (at_k, list(map(_SRC, map(msgs.__getitem__,
                                                                 at_k.tolist()))))
                at_k, srcs = got
                at = at_k[np.fromiter(map(side.__contains__, srcs), dtype=bool,
                                      count=len(srcs))]
                if first is not None and not late and len(at):
                    # a receiver already in the side changes nothing now
                    known = np.fromiter(map(side.__contains__, map(_DST, map(
                        msgs.__getitem__, at.tolist()))), dtype=bool, count=len(at))
                    at = at[~known]
                hit[at] = True
        return hit

    def follow(self, msgs: list[Message] | list[tuple]) -> None:
        """Feed the latency traces alone: what calling the counter does, counts apart.

        A distributed run's coordinator traces the latencies from rows the
        workers send, while its counts are the workers' own, added up
        (:func:`asyncnet.cluster.merge.merge_traffic`): counting here too
        was work thrown away (≈ 0.2 µs a traced message).

        Parameters
        ----------
        msgs:
            delivered messages, in delivery order: :class:`Message` or plain
            tuples of its fields in its order. (Taking an instant's rows
            together, as :meth:`instant` does, was tried: the rows the workers
            send are those that can matter already, about half of them
            change a cone, and the choosing cost what it saved.)
        """
        inputs = self.inputs
        for m in msgs:
            if self.cones:
                self._trace(m)
            if m[0] == CONTROL and m[2] in inputs:  # m.kind, m.dst
                self._input(m)

    def _each(self, batches: list[list[Message]],
              offroute: Sequence[Message] | None = None) -> None:
        """An instant batch by batch, message by message (the reference path)."""
        if offroute is None:
            for b in batches:
                self(b)
            return
        n = 0
        for b in batches:
            self(b, False)
            n += len(b)
        self.local += n - len(offroute) + self._one_link(offroute)

    def _one_link(self, msgs: Sequence[Message]) -> int:
        """How many of ``msgs`` travelled one link with that link's delay."""
        links = self.links
        return sum(links.get(m[1], {}).get(m[2]) == m[4] - m[3] for m in msgs)

    # _input and _trace read a message by place (kind, src, dst, t_sent, t_arrive,
    # seq, payload): a Message, or the plain tuple the coordinator makes of a row
    def _input(self, m: Message | tuple) -> None:
        dst, t_arrive = m[2], m[4]
        v = input_value(m[6])
        prev = self.last_input.get(dst)
        self.last_input[dst] = v
        if prev is not None and prev != v and self.traces_left > 0 and t_arrive > 0:
            self.traces_left -= 1
            self.cones.append({"t0": t_arrive, "reach": {dst: t_arrive},
                               "back": {}, "fwd": None, "credit": None})

    def _trace(self, m: Message | tuple) -> None:
        kind, src, dst, t_sent, t_arrive = m[0], m[1], m[2], m[3], m[4]
        if kind == FORWARD:
            side = "reach"
        elif kind == DELTA:
            side = "back"
        else:
            return  # a control message is in no cone
        for c in list(self.cones):
            cone = c[side]
            t_src = cone.get(src)
            if t_src is None or t_sent < t_src:
                continue
            if dst not in cone:
                cone[dst] = t_arrive
                if kind == FORWARD and dst in self.outputs:
                    c["back"].setdefault(dst, t_arrive)
            if is_synapse(dst):
                if kind == FORWARD and c["fwd"] is None:
                    c["fwd"] = t_arrive - c["t0"]
                if kind == DELTA and c["credit"] is None:
                    c["credit"] = t_arrive - c["t0"]
            done = c["fwd"] is not None and c["credit"] is not None
            if done or (self.horizon and t_arrive - c["t0"] > self.horizon):
                self.cones.remove(c)
                if c["fwd"] is not None:
                    self.latency_forward.append(c["fwd"] / QUANTA)
                if c["credit"] is not None:
                    self.latency_credit.append(c["credit"] / QUANTA)

    def summary(self) -> dict:
        """The figures as a plain dict (JSON-ready)."""
        total = sum(self.count)
        delays = {}
        for k, name in enumerate(KIND_NAMES):
            if self.count[k]:
                delays[name] = {"min": self.dmin[k] / QUANTA, "max": self.dmax[k] / QUANTA,
                                "mean": self.dsum[k] / self.count[k] / QUANTA}
        return {
            "messages": {"total": total, **dict(zip(KIND_NAMES, self.count, strict=True))},
            "locality": {"one_link": self.local, "share": self.local / total if total else 1.0},
            "link_delay": delays,
            "latency": {
                "input_to_first_update_forward": _mean(self.latency_forward),
                "input_to_first_update_credit": _mean(self.latency_credit),
                "input_changes_traced": len(self.latency_forward),
            },
        }


NO_CHANGE_TRACED = "none traced (no input value changed after t=0 and reached a synapse)"
"""What the summaries print where :class:`Traffic` traced no input change (a
constant input): a mean of no changes would print as ``n/a``."""


def _mean(xs: list[float]) -> float | None:
    return float(np.mean(xs)) if xs else None


def rel_error(g: np.ndarray, ref: np.ndarray) -> float:
    """Normwise relative error ``max|g - ref| / max|ref|``."""
    scale = float(np.max(np.abs(ref)))
    return float(np.max(np.abs(g - ref))) / (scale if scale > 0 else 1.0)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of the angle between two flattened arrays (nan if one is zero)."""
    a, b = np.ravel(a), np.ravel(b)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else math.nan
