"""An instant's deliveries as the engine hands them to a recorder: its sends.

A recorder (the event log's writer, ``Engine.record``) wants every message
delivered at an instant, in canonical order. Handing it the delivered
message tuples costs a Python object per message to take apart again
(~0.2 µs a message before any encoding). The engine instead notes each
*send* when it is made — sender, send time, sequence number, kind, the
route's receivers (a key into the engine's
:class:`~asyncnet.wiring.ReceiverTable`) and the payload — one entry for
a neuron's value to its 120 synapses. :func:`expand` turns an instant's
sends into the delivered messages' columns with numpy, in canonical order.

A message injected (a cluster peer's) is noted as a send to its one
receiver (a negative key, ``-1 - receiver``). One that entered another way
(restored from a checkpoint, in flight before the recorder came, a kind
or number of a rule's own) makes its instant go over as its delivered
batches instead (:attr:`Captured.batches`), which the recorder takes as
before.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from itertools import compress
from operator import countOf
from typing import Any, NamedTuple

import numpy as np

from .messages import Kind, Message
from .wiring import ReceiverTable

_KIND_TYPES = frozenset({int, Kind})


class Captured(NamedTuple):
    """One instant's deliveries, as a recorder is handed them.

    ``sends``: ``(numbers, payloads)``: for every send that arrives at
    ``t``, in the order they were made (a sender's in its ``seq`` order),
    five numbers in ``numbers`` (sender's index, t_sent, the sender's
    seq before the send, kind, receivers' key) and its payload in
    ``payloads``; or ``None`` when ``batches`` holds the instant's
    delivered batches instead (in wake order, each in canonical order).
    """

    t: int
    sends: tuple[list[Any], list[Any]] | None
    batches: list[list[Message]] | None
    table: ReceiverTable
    agents: int
    """How many agents the engine's ``names`` has (every index is below it)."""


class Columns(NamedTuple):
    """The delivered messages of :func:`expand`, in canonical order (int64 columns)."""

    dst: np.ndarray
    kind: np.ndarray
    src: np.ndarray
    t_sent: np.ndarray
    seq: np.ndarray
    send: np.ndarray
    """Each message's send: its place in the ``sends`` expanded."""


def send_table(sends: tuple[list[Any], list[Any]]) -> np.ndarray | None:
    """A :class:`Captured`'s send numbers as int64 rows ``(src, t_sent, seq, kind, key)``.

    Returns
    -------
    The ``(sends, 5)`` table (the same array for the same list, asked again
    while it has not grown: read it, do not write it), or ``None`` if a kind is not an ``int`` or a
    :class:`~asyncnet.messages.Kind` (a bool, say: msgpack packs it as
    ``true``; the caller takes the messages one by one). The kinds' values
    are the caller's to check (0, 1 or 2: one numpy pass over the column,
    where a set of ``Kind`` members costs a Python ``__hash__`` each).
    """
    numbers = sends[0]
    last = _last_table
    if last[0] is numbers and last[1] == len(numbers):  # the same instant's, asked again
        return last[2]
    kinds = numbers[3::5]
    # the engine's rules send Kind members: counted by identity first (a set's
    # look-up hashes each type)
    if countOf(map(type, kinds), Kind) != len(kinds) \
            and not _KIND_TYPES.issuperset(map(type, kinds)):
        return None
    got = int64s(numbers)
    table = None if got is None else got.reshape(-1, 5)
    _last_table[:] = [numbers, len(numbers), table]
    return table


# the last table made, by its numbers' list: the log's writer, the run summary's
# counter and a partition's trace rows each take an instant's table (≈ 9 ns a
# number to make); held until the next instant's (callers only read it)
_last_table: list = [None, -1, None]


def int64s(numbers: list[Any]) -> np.ndarray | None:
    """Python integers as one int64 array, or ``None`` (one past int64, or not an integer).

    ``struct.pack`` converts them in one C loop at ~9 ns an integer:
    ``array("q", ...)`` parses each with ``PyArg_Parse`` (~23 ns), numpy's
    own conversion first discovers the list's type (~40 ns).

    Parameters
    ----------
    numbers:
        integers (``int`` or its subclasses, as the engine makes them).

    Returns
    -------
    int64 ``(len(numbers),)``, or ``None`` where msgpack packs a number
    this path does not (past int64) or a number is no integer.
    """
    out = np.empty(len(numbers), dtype=np.int64)  # writable: the compiled loop takes
    try:  # this type (a read-only array would be another signature, compiled again)
        struct.pack_into(f"{len(numbers)}q", out, 0, *numbers)
    except struct.error:
        return None
    return out


def expand(table: np.ndarray, receivers: ReceiverTable) -> Columns:
    """The messages of a :func:`send_table`, in canonical order ``(dst, kind, src, seq)``.

    Parameters
    ----------
    table:
        the sends, as :func:`send_table` gives them (one arrival instant); a
        negative key is one receiver named outright, ``-key - 1``.
    receivers:
        the engine's receiver table.

    Returns
    -------
    The :class:`Columns` of the messages delivered here (not those to
    another partition's agents).
    """
    send, pos, dst = local_receivers(table, receivers)
    kind = table[send, 3]
    src = table[send, 0]
    seq = table[send, 2] + pos + 1
    order = np.lexsort((seq, src, kind, dst))
    send = send[order]
    return Columns(dst[order], kind[order], src[order], table[send, 1], seq[order], send)


def send_bounds(table: np.ndarray, part: Captured) -> tuple[list[int], list[int], bool] | None:
    """Each column's least and greatest value, and whether every key names
    receivers of ``part``'s table (or one of its agents outright).

    Parameters
    ----------
    table:
        a :func:`send_table` of ``part``'s sends.
    part:
        the instant they arrive at.

    Returns
    -------
    ``(lo, hi, keys known)``, the bounds as Python ints by column ``(src,
    t_sent, seq before, kind, key)``; ``None`` for no sends.
    """
    if not len(table):
        return None
    # two reductions over a column-major copy: along axis 0 of the rows numpy's
    # inner loop runs five long (≈ 0.4 G instructions on the L net's 24-unit run)
    cols = np.ascontiguousarray(table.T)
    lo, hi = cols.min(axis=1).tolist(), cols.max(axis=1).tolist()
    return lo, hi, hi[4] < len(part.table.arrays()[2]) and -1 - lo[4] < part.agents


def local_receivers(table: np.ndarray, receivers: ReceiverTable
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The messages of some sends that are delivered here, in no particular order.

    Parameters
    ----------
    table:
        sends as :func:`send_table` gives them, their keys checked (each a
        key of ``receivers``, or negative: one receiver named outright).
    receivers:
        the engine's receiver table.

    Returns
    -------
    ``(send, pos, dst)``: each message's row in ``table``, its place among
    its send's receivers (its seq is the send's seq before + ``pos`` + 1) and
    its receiver's index; not the messages to another partition's agents.
    """
    flat, start, length = receivers.arrays()
    key = table[:, 4]
    named = key < 0
    kk = np.where(named, 0, key)
    n = np.where(named, 1, length[kk] if len(length) else 1)
    send = np.repeat(np.arange(len(table)), n)
    pos = np.arange(len(send)) - (np.cumsum(n) - n)[send]
    if len(flat):
        dst = np.where(named[send], -1 - key[send], flat[start[kk][send] + pos])
    else:  # no routes: every message injected (named by its receiver)
        dst = -1 - key[send]
    here = dst >= 0
    return send[here], pos[here], dst[here]


class Recording:
    """How an engine notes what its recorders are handed (a mixin of ``Engine``).

    A send is noted in ``Engine._emit`` itself (the hot path); here are
    :meth:`record` and the notes of messages that came in from outside.
    """

    names: list[str]
    recorders: list[Callable[[Captured], None]]
    _sends: dict[int, tuple[list[Any], list[Any]]] | None
    _odd: set[int]
    _boxes: dict[int, dict[int, Any]]
    _index: dict[str, int] | None
    _arrive: dict[int, Any]

    def _note_columns(self, cols: Any, payloads: list) -> None:
        """:meth:`_note` for a frame's rows ``(kind, src, dst, t_sent, t_arrive, seq)``."""
        assert self._sends is not None
        if not len(cols):
            return
        notes = cols[:, [1, 3, 5, 0, 2]].copy()  # (src, t_sent, seq before, kind, key)
        notes[:, 2] -= 1
        notes[:, 4] = -1 - notes[:, 4]
        ta = cols[:, 4]
        for t in np.unique(ta).tolist():  # mostly one arrival instant a frame
            here = ta == t
            whole = bool(here.all())
            got = self._sends.get(t)
            if got is None:
                got = self._sends[t] = ([], [])
            got[0].extend((notes if whole else notes[here]).ravel().tolist())
            got[1].extend(payloads if whole else compress(payloads, here.tolist()))

    def _note(self, idx: int, m: Message) -> None:
        """Note a message that came in (injected: a cluster peer's) for the
        recorders, as a send to the one receiver ``idx`` (its key ``-1 - idx``)."""
        src = self._name_index().get(m.src)
        if src is None or type(m.kind) not in _KIND_TYPES or type(m.seq) is not int \
                or type(m.t_sent) is not int:  # the recorders take its instant's batches
            self._odd.add(m.t_arrive)
            return
        sends = self._sends
        assert sends is not None
        got = sends.get(m.t_arrive)
        if got is None:
            got = sends[m.t_arrive] = ([], [])
        got[0].extend((src, m.t_sent, m.seq - 1, m.kind, -1 - idx))
        got[1].append(m.payload)

    def _name_index(self) -> dict[str, int]:
        """Agent name -> its place in ``names``, made at the first message from outside."""
        if self._index is None:
            self._index = {n: i for i, n in enumerate(self.names)}
        return self._index

    def record(self, recorder: Callable[[Captured], None]) -> None:
        """Hand ``recorder`` each instant's deliveries at its end (the event log's writer).

        Parameters
        ----------
        recorder:
            called with a :class:`~asyncnet.capture.Captured` for every
            instant that delivered something: its sends (one entry a send,
            however many receivers; an injected message a send to one) or,
            where a message came another way (restored from a checkpoint, in
            flight before the recorder came), its delivered batches.
        """
        if self._sends is None:
            self._sends = {}
            self._odd.update(self._boxes)  # in flight already, never noted as sent
            self._arrive = {}  # the engine's per-delay cache holds no list to note sends in
        self.recorders.append(recorder)

