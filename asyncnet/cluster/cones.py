"""The rows a partition sends for the coordinator's latency trace: only those that can matter.

In a distributed run the coordinator follows the input-to-update latency
(:meth:`asyncnet.metrics.Traffic.follow`) from rows the partitions send.
There a message does something in two cases only. It is a control message
to an input, which may open a trace. Or its sender is in an open trace's
cone: a forward message from an agent the input's change has reached, or a
delta message from one the credit it caused has reached. Every other row
would change nothing there. Sending a row for every delivered message while
a trace was open cost the partitions 13% of their window time and the
coordinator ≈ 3 µs a row (``docs/distributed.md``).

A partition cannot know the cones exactly: they grow through other
partitions too, and a change opens one only if the coordinator still has
traces left. So it keeps a superset, :class:`ConeWatch`:

- what the coordinator tells it at a window's start (:class:`ConeTeller`:
  every agent in an open cone that it has not told yet, or to forget all
  of it once no cone is open);
- grown by its own deliveries by the trace's rules, times aside: a forward
  message from a watched sender adds its receiver (and, where that is an
  output, starts the credit there); a delta message adds its receiver to
  the credit's side; a control message to an input whose value changed (or
  that it has not seen before: after a resume) starts a cone there.

- a *settled* set, told too while every open cone has found its first
  update: the agents in every open cone (their intersection). A forward
  message to a settled agent can change no cone until the first cone
  reaches its horizon, so no row is sent for it. That ends once this
  partition sees an input change (a cone may open here that holds none of
  them), until the coordinator speaks again. Once a change has reached the
  whole net, that is nearly every forward message.

Why the superset is enough: a message sent from another partition arrives
at least the lookahead after it was sent, so a window never delivers what
a cone reached in another partition during the same window; the sender
joined before the window began, and the coordinator has said so. Inside a
partition, a message that can matter was sent after its sender joined, so
it is delivered at a later instant than the message that made the sender
join: every link between agents that can be in a cone takes at least a
quantum (a projection at least two, one a link), and only a data source's
link may take none, and a source is in no cone.
"""

from __future__ import annotations

import sys
from itertools import chain
from operator import itemgetter

import numpy as np

from ..capture import Captured, int64s, local_receivers, send_bounds
from ..messages import CONTROL, DELTA, FORWARD, Message
from ..metrics import input_value
from . import wire
from .wire import WireError

_SRC = itemgetter(1)
_DST = itemgetter(2)
_FIRST = itemgetter(0)
_KIND = itemgetter(0)
_T_SENT = itemgetter(3)
_SEQ = itemgetter(5)
_LITTLE = sys.byteorder == "little"
TRACE_COLS = 6
"""A trace row's numbers: ``t_arrive, dst, kind, src, seq, t_sent`` (agents by index)."""


class ConeWatch:
    """A partition's superset of the open cones, and the trace rows it makes.

    The sets are boolean masks over the run's agent table, so that an
    instant's messages are tested in a few numpy calls, not one by one: from
    the log's capture of its sends where the partition keeps a log
    (:meth:`sends`, one entry a send: a neuron's value to its 120 synapses
    is tested once), from its delivered batches otherwise (:meth:`instant`).
    Until 4 December (fifth session) a Python loop looked at every message
    from a watched sender: about 0.39 CPU-s of each partition's 2.8 on the
    24-unit L run of ``tools/bench_cluster.py`` (py-spy, the two partitions
    run in turn in one process).

    Parameters
    ----------
    index:
        agent name -> index (the run's agent table).
    inputs, outputs:
        the network's input and output agents (as :class:`~asyncnet.metrics.Traffic`
        has them).
    """

    def __init__(self, index: dict[str, int], inputs: frozenset[str], outputs: frozenset[str]):
        self.index, self.inputs, self.outputs = index, inputs, outputs
        self.names = list(index)
        n = len(self.names)
        self._fwd = np.zeros(n, dtype=bool)  # senders whose forward messages may be in a cone
        self._back = np.zeros(n, dtype=bool)  # senders whose delta messages may be
        self._settled = np.zeros(n, dtype=bool)  # in every open cone (told), see the module
        self._is_output = np.zeros(n, dtype=bool)
        self._is_output[[index[o] for o in outputs if o in index]] = True
        self._is_input = np.zeros(n, dtype=bool)
        self._is_input[[index[i] for i in inputs if i in index]] = True
        self.seen: dict[str, bytes] = {}  # each input's last value, as Traffic keeps it
        self.settled_until = -2  # the last instant a row to a settled agent may be left
        # out (-1: no horizon; -2: none may, as while a first update is not found)
        self.rows: list[np.ndarray] = []  # (k, TRACE_COLS) int64 blocks
        self._n = 0  # rows kept so far
        self.control: list[int] = []  # the control rows' places among them
        self.values: list[bytes] = []  # and their values (float64, little-endian)

    # the masks as names (what the coordinator told, and the growth since)
    fwd = property(lambda self: self._names(self._fwd), doc="Senders watched for forward messages.")
    back = property(lambda self: self._names(self._back), doc="Senders watched for delta messages.")
    settled = property(lambda self: self._names(self._settled), doc="Agents in every open cone.")

    def _names(self, mask: np.ndarray) -> set[str]:
        return set(map(self.names.__getitem__, np.flatnonzero(mask).tolist()))

    def told(self, watch: list | None) -> None:
        """Take what the coordinator said at a window's start (:meth:`ConeTeller.watch`).

        Parameters
        ----------
        watch:
            ``[forget, forward senders, delta senders]`` (agent indices), or None.
        """
        if watch is None:
            return
        n = len(self.names)

        def agents(w: object) -> bool:  # checked in C loops: a window can tell thousands
            return isinstance(w, list) and set(map(type, w)) <= {int} \
                and (not w or (min(w) >= 0 and max(w) < n))
        settled = watch[3] if isinstance(watch, list) and len(watch) == 4 else None
        if not (isinstance(watch, list) and len(watch) in (3, 4) and isinstance(watch[0], bool)
                and agents(watch[1]) and agents(watch[2])
                and (settled is None or (isinstance(settled, list) and len(settled) == 3
                                         and isinstance(settled[0], bool)
                                         and type(settled[1]) is int and settled[1] >= -1
                                         and agents(settled[2])))):
            raise WireError("RUN: a latency-trace watch must be [forget, forward senders, "
                            "delta senders] and optionally [reset, until, settled agents] or "
                            "None, with agents as indices of the run")
        forget, fwd, back = watch[:3]
        if forget:
            self._fwd[:] = False
            self._back[:] = False
        self._fwd[fwd] = True
        self._back[back] = True
        if forget or settled is None or settled[0]:
            self._settled[:] = False
        if settled is None:
            self.settled_until = -2
        else:
            self._settled[settled[2]] = True
            self.settled_until = settled[1]

    def _watching(self) -> bool:
        return bool(self._fwd.any() or self._back.any())

    def instant(self, batches: list[list[Message]]) -> None:
        """Follow one instant's delivered batches (in wake order); keep their rows.

        Parameters
        ----------
        batches:
            every batch delivered at one instant, each to one receiver.
        """
        if self._watching():
            msgs = list(chain.from_iterable(batches))
            n, idx = len(msgs), self.index
            try:
                kind = np.fromiter(map(_KIND, msgs), dtype=np.int64, count=n)
            except (OverflowError, TypeError):  # a rule's own kind past int64: never a row
                kind = np.array([k if k in (FORWARD, DELTA) else -1
                                 for k in map(_KIND, msgs)], dtype=np.int64)
            src = np.fromiter(map(idx.__getitem__, map(_SRC, msgs)), dtype=np.int64, count=n)
            at = np.flatnonzero(self._may_matter(kind, src))
            if len(at):
                sub = list(map(msgs.__getitem__, at.tolist()))
                dst = np.fromiter(map(idx.__getitem__, map(_DST, sub)), dtype=np.int64,
                                  count=len(sub))
                try:
                    t_sent = np.fromiter(map(_T_SENT, sub), dtype=np.int64, count=len(sub))
                    seq = np.fromiter(map(_SEQ, sub), dtype=np.int64, count=len(sub))
                except OverflowError:
                    raise ValueError("a latency-trace row holds a time or sequence number "
                                     "past int64") from None
                self._follow(batches[0][0][4], kind[at], src[at], dst, t_sent, seq)
        if not self.inputs.isdisjoint(map(_DST, map(_FIRST, batches))):
            self._inputs([m for b in batches if b[0][2] in self.inputs for m in b])

    def sends(self, captured: Captured, table: np.ndarray | None) -> bool:
        """:meth:`instant` from the instant's sends, as the log's capture has them.

        Parameters
        ----------
        captured:
            the instant, with its sends (:class:`~asyncnet.capture.Captured`).
        table:
            its :func:`~asyncnet.capture.send_table`, or None.

        Returns
        -------
        False, with nothing done, if the sends are not plain (a kind or key
        out of range): the caller then gives the delivered batches to :meth:`instant`.
        """
        if table is None:
            return False
        got = send_bounds(table, captured)
        if got is not None:
            lo, hi, keys_known = got  # (src, t_sent, seq before, kind, key)
            if lo[0] < 0 or hi[0] >= captured.agents or not keys_known:
                return False
        kind, src = table[:, 3], table[:, 0]
        ctl = kind == CONTROL
        # a send's messages may matter (or are control ones): only those are expanded
        at = np.flatnonzero(self._may_matter(kind, src) | ctl) if self._watching() \
            else np.flatnonzero(ctl)
        if not len(at):
            return True
        sub = table[at]
        # (receivers another partition runs get theirs there)
        send, pos, dst = local_receivers(sub, captured.table)
        kind, src = sub[send, 3], sub[send, 0]
        seq = sub[send, 2] + pos + 1
        rest = kind != CONTROL
        self._follow(captured.t, kind[rest], src[rest], dst[rest], sub[send, 1][rest], seq[rest])
        c = np.flatnonzero(~rest & self._is_input[dst])
        if len(c):  # in the log's order, as delivered: few (one a source's period)
            c = c[np.lexsort((seq[c], src[c], dst[c]))]
            names, pays = self.names, captured.sends[1]
            self._inputs([Message(CONTROL, names[s], names[d], ts, captured.t, q, pays[p])
                          for s, d, ts, q, p in zip(
                              src[c].tolist(), dst[c].tolist(), sub[send[c], 1].tolist(),
                              seq[c].tolist(), at[send[c]].tolist(), strict=True)])
        return True

    def _may_matter(self, kind: np.ndarray, src: np.ndarray) -> np.ndarray:
        """Which messages (or sends) are from a sender watched for their kind."""
        return ((kind == FORWARD) & self._fwd[src]) | ((kind == DELTA) & self._back[src])

    def _follow(self, t: int, kind: np.ndarray, src: np.ndarray, dst: np.ndarray,
                t_sent: np.ndarray, seq: np.ndarray) -> None:
        """Rows of forward and delta messages from senders watched for their kind
        (:meth:`_may_matter`, the callers' choice), but forward ones to settled
        agents while those may be left out; grow the sets."""
        fw = kind == FORWARD
        until = self.settled_until
        if until == -1 or until >= t:  # in every open cone already: no row can change one
            at = np.flatnonzero(~(fw & self._settled[dst]))
        else:
            at = np.arange(len(kind))
        if not len(at):
            return
        rows = np.empty((len(at), TRACE_COLS), dtype=np.int64)
        rows[:, 0] = t
        rows[:, 1] = dst[at]
        rows[:, 2] = kind[at]
        rows[:, 3] = src[at]
        rows[:, 4] = seq[at]
        rows[:, 5] = t_sent[at]
        self.rows.append(rows)
        self._n += len(at)
        reached = dst[at[fw[at]]]
        self._fwd[reached] = True
        self._back[reached[self._is_output[reached]]] = True
        self._back[dst[at[~fw[at]]]] = True

    def _inputs(self, msgs: list[Message]) -> None:
        """Rows of the control messages to inputs; a changed (or unseen) value starts a cone."""
        seen, idx = self.seen, self.index
        for m in msgs:
            if m[0] != CONTROL:
                continue
            d = m[2]
            self.control.append(self._n)
            self.rows.append(np.array([[m[4], idx[d], m[0], idx[m[1]], m[5], m[3]]],
                                      dtype=np.int64))
            self._n += 1
            v = input_value(m[6])
            # the coordinator needs only the value the trace compares
            self.values.append(v if _LITTLE else
                               np.frombuffer(v, dtype=float).astype("<f8").tobytes())
            if seen.get(d) != v:  # changed, or not seen here before
                self._fwd[idx[d]] = True
                # a cone may open here holding no settled agent: rows for
                # all until the coordinator speaks again
                self.settled_until = -2
            seen[d] = v

    def take(self) -> bytes:
        """The rows kept since the last call, as one frame (:func:`trace_frame`)."""
        rows, control, values = self.rows, self.control, self.values
        self.rows, self.control, self.values, self._n = [], [], [], 0
        return trace_frame(np.concatenate(rows).ravel() if rows else [], control, values)


def trace_frame(rows: list[int] | np.ndarray, control: list[int], values: list[bytes]) -> bytes:
    """Trace rows as the coordinator takes them (:func:`read_trace_frame`).

    Parameters
    ----------
    rows:
        :data:`TRACE_COLS` integers a row, back to back (a list, or int64).
    control:
        the places of the control rows, increasing.
    values:
        each control row's value: float64 bytes, little-endian.

    Returns
    -------
    ``b""`` for no rows; else a msgpack array of four binaries: the rows as
    int64 columns side by side (little-endian), the control rows' places
    (int64), their values back to back, and where each value ends (int64).
    """
    if not len(rows):
        return b""
    cols = rows if isinstance(rows, np.ndarray) else int64s(rows)
    if cols is None:
        raise ValueError("a latency-trace row holds a time or sequence number past int64")
    ends = np.cumsum([len(v) for v in values], dtype=np.int64)
    # little-endian on the wire, as frames.pack_columns writes (no copy where native)
    return wire.pack([cols.astype("<i8", copy=False).tobytes(),
                      np.asarray(control, dtype="<i8").tobytes(), b"".join(values),
                      ends.astype("<i8", copy=False).tobytes()])


def read_trace_frame(frame: bytes, agents: int) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """A partition's trace frame (:func:`trace_frame`), checked.

    Parameters
    ----------
    frame:
        the frame, not empty.
    agents:
        how many agents the run has (every index is below it).

    Returns
    -------
    ``(rows, payloads)``: int64 ``(n, TRACE_COLS)`` (read-only, over the frame's
    bytes), and for each row its
    value as a float64 vector (control rows) or ``None``.

    Raises
    ------
    WireError
        the frame is not four binaries of consistent lengths, an agent index
        is out of range, a kind is not one of the engine's, or the control
        rows and their values do not match.
    """
    got = wire.unpack(frame)
    if not (isinstance(got, list) and len(got) == 4 and all(type(b) is bytes for b in got)):
        raise WireError("trace rows: expected four binaries")
    cols_b, control_b, values_b, ends_b = got
    if len(cols_b) % (8 * TRACE_COLS) or len(control_b) % 8 or len(ends_b) != len(control_b):
        raise WireError("trace rows: columns of a wrong length")
    rows = np.frombuffer(cols_b, dtype="<i8").reshape(-1, TRACE_COLS)
    control = np.frombuffer(control_b, dtype="<i8")
    ends = np.frombuffer(ends_b, dtype="<i8")
    n = len(rows)
    if n and (min(rows[:, 1].min(), rows[:, 3].min()) < 0
              or max(rows[:, 1].max(), rows[:, 3].max()) >= agents):
        raise WireError("trace rows: an agent index out of range")
    if n and (rows[:, 2].min() < min(FORWARD, DELTA, CONTROL)
              or rows[:, 2].max() > max(FORWARD, DELTA, CONTROL)):
        raise WireError("trace rows: a kind that is not a message kind")
    is_control = rows[:, 2] == CONTROL
    if len(control) != int(is_control.sum()) or (len(control) and (
            (np.diff(control) <= 0).any() or control[0] < 0 or control[-1] >= n
            or not is_control[control].all())):
        raise WireError("trace rows: the control rows do not match their places")
    starts = np.r_[0, ends[:-1]] if len(ends) else ends
    if len(ends) and ((ends - starts < 0).any() or ((ends - starts) % 8).any()
                      or ends[-1] != len(values_b)) or (not len(ends) and values_b):
        raise WireError("trace rows: the values do not match their ends")
    payloads: list[np.ndarray | None] = [None] * n
    for r, a, b in zip(control.tolist(), starts.tolist(), ends.tolist(), strict=True):
        payloads[r] = np.frombuffer(values_b[a:b], dtype="<f8")
    return rows, payloads


class ConeTeller:
    """What the coordinator tells the partitions of its open cones, window by window.

    Parameters
    ----------
    index:
        agent name -> index.
    """

    def __init__(self, index: dict[str, int]):
        self.index = index
        self.fwd: set[str] = set()  # told so far, since the last time all was forgotten
        self.back: set[str] = set()
        self.settled: set[str] = set()  # told so far, for the cones in ``among``
        self.among: set[tuple] = set()  # the cones the settled agents are in
        self.open: set[tuple] = set()  # the cones open when last told

    def watch(self, cones: list[dict], horizon: int = 0) -> list:
        """``[forget, forward senders, delta senders, settled]`` for the next window.

        Parameters
        ----------
        cones:
            the trace's open cones (:attr:`asyncnet.metrics.Traffic.cones`).
        horizon:
            the trace's horizon (quanta; 0: none), :attr:`~asyncnet.metrics.Traffic.horizon`.

        Returns
        -------
        With no cone open, forget everything (a partition's own guesses
        included). Otherwise every agent of a cone not told yet, by index,
        sorted; or, when a cone closed since the last word, forget and every
        agent of the open cones (the union shrank: the partitions would
        otherwise go on sending rows for the closed cone's agents, and for
        all the agents its credit reached after it closed: on the 24-unit L
        run 659,160 delta rows of which 5 changed a cone). ``settled`` is
        None while a cone has not found its first update (every forward row
        may count); else ``[reset, until, agents]``: the agents in every
        open cone not told yet (``reset``: forget those told before, when a
        cone opened since), and the last instant before a cone reaches its
        horizon (-1: none).
        """
        # a cone is known by when and where it began (its first agent): an id()
        # could be a closed cone's again
        ids = {(c["t0"], next(iter(c["reach"]))) for c in cones}
        whole = not cones or not self.open <= ids  # none open, or one closed since
        self.open = ids
        if whole:
            self.fwd.clear()
            self.back.clear()
            self.settled.clear()
            self.among.clear()
        if not cones:
            return [True, [], [], None]
        new_f: set[str] = set()
        new_b: set[str] = set()
        for c in cones:
            new_f |= c["reach"].keys() - self.fwd
            new_b |= c["back"].keys() - self.back
        self.fwd |= new_f
        self.back |= new_b
        idx = self.index
        told = [whole, sorted(idx[n] for n in new_f), sorted(idx[n] for n in new_b), None]
        if any(c["fwd"] is None for c in cones):
            # the partitions forget their settled agents on None: so does the teller
            self.settled.clear()
            self.among.clear()
            return told
        reset = not ids <= self.among  # a cone opened since: the intersection shrank
        if reset:
            self.settled.clear()
        self.among = ids
        every = set(cones[0]["reach"]).intersection(*(c["reach"] for c in cones[1:]))
        new_s = every - self.settled
        self.settled |= new_s
        until = min(c["t0"] for c in cones) + horizon if horizon else -1
        told[3] = [reset, until, sorted(idx[n] for n in new_s)]
        return told
