"""Messages to the event log's records: payload codes and the record encoder.

:class:`RecordEncoder` turns one instant's delivered messages into packed
canonical records ``[t_arrive, kind, src, dst, t_sent, seq, payload]`` (see
:mod:`asyncnet.eventlog` for the layout); :class:`PayloadCodes` makes each
array payload's msgpack extension once however many records carry it. The
writer (:class:`asyncnet.eventlog.EventLogWriter`), replay and the cluster's
workers share them.
"""

from __future__ import annotations

import struct
from operator import itemgetter
from typing import Any

import msgpack
import numpy as np

from .logformat import _packer, array_items, record_key, unpack_records
from .logpack import MIN_RECORDS, pack_batches
from .messages import Message, encode_payload

_NDARRAY = np.ndarray
_F8 = np.dtype("<f8")
_VEC = struct.Struct("<BI")
_ExtType = msgpack.ExtType
_new_tuple = tuple.__new__
_HEADS: dict[int, bytes] = {}  # packed array header by length
_kind_of = itemgetter(1)
_lt = int.__lt__


def array_code(p: np.ndarray) -> Any:
    """An array payload as the log's msgpack extension (what ``encode_payload`` gives).

    The common case, a float64 vector, is made here without the extension
    type's checking constructor (four times the cost, for checks that hold).

    Parameters
    ----------
    p:
        the array.

    Returns
    -------
    The ``msgpack.ExtType``.
    """
    if p.dtype is _F8 and p.ndim == 1:
        n = p.shape[0]
        head = _HEADS.get(n)
        if head is None:
            head = _HEADS[n] = _VEC.pack(1, n)
        return _new_tuple(_ExtType, (1, head + p.tobytes()))
    return encode_payload(p)


class PayloadCodes:
    """Array payloads' codes, each made once however many records carry it.

    ``codes(p)`` is ``p`` for a number and :func:`array_code` for an array,
    made at its first use since the last :meth:`clear` (the arrays are held
    till then, so their ids stay theirs).
    """

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget the codes made so far (and let their arrays go)."""
        self._codes: dict[int, Any] = {}
        self._keep: list[np.ndarray] = []
        self.known = self._codes.get
        """``known(id(array))``: the array's code if made already, else ``None``."""

    def make(self, p: np.ndarray) -> Any:
        """An array's code, made now and kept (see the class).

        Parameters
        ----------
        p:
            the array.

        Returns
        -------
        Its :func:`array_code`.
        """
        c = self._codes[id(p)] = array_code(p)
        self._keep.append(p)
        return c

    def __call__(self, p: Any) -> Any:
        """The payload's code (see the class)."""
        if type(p) is not _NDARRAY:
            return p
        return self.known(id(p)) or self.make(p)


class RecordEncoder:
    """Turns messages into packed canonical records, one instant at a time.

    The hot path (:meth:`add_batch`, :meth:`pack_instant`) encodes an array
    payload once however many records carry it (a neuron's value sent to
    all its synapses), and packs a whole instant with one msgpack call. The
    engine hands batches in canonical order (agents woken by their place in
    the sorted names, each batch sorted), so an instant is sorted only when
    its batches did not come in that order.
    """

    def __init__(self, agents: list[str]):
        self.index = {n: i for i, n in enumerate(agents)}
        self.packer = _packer()
        self._names_sorted = all(a < b for a, b in zip(agents, agents[1:], strict=False))
        self.drop()

    def add_batch(self, batch: list[Message]) -> None:
        """Buffer one agent's batch of the current instant (see :meth:`add_records`).

        Parameters
        ----------
        batch:
            the messages delivered to one agent at one instant (one
            receiver, one arrival instant: an engine sink's batch), in
            canonical order.
        """
        self.add_instant([batch])

    def add_instant(self, batches: list[list[Message]]) -> None:
        """Buffer a whole instant's batches at once (see :meth:`add_batch`).

        Parameters
        ----------
        batches:
            every batch delivered at one instant, in the order the agents
            were woken (an engine's instant sink).
        """
        if self._t_pending is None and self._names_sorted \
                and sum(map(len, batches)) >= MIN_RECORDS and self._pack_columns(batches):
            return
        if self._packed is not None:  # more of an instant packed already: back to records
            self._unpack_columns()
        idx, known, make = self.index, self.codes.known, self.codes.make
        ds = [idx[b[0].dst] for b in batches]
        if ds[0] <= self._last_dst or not all(map(_lt, ds, ds[1:])):
            self._in_order = False  # a probe split the instant's wake order
        self._last_dst = ds[-1]
        # tuples: cheaper to make than lists, and packed the same (msgpack arrays);
        # an array's code made once an instant however many records carry it
        self._pending += [(ta, k, idx[s], d, ts, q,
                           p if type(p) is not _NDARRAY else known(id(p)) or make(p))
                          for d, b in zip(ds, batches, strict=True) for k, s, _, ts, ta, q, p in b]
        self._t_pending = batches[0][0].t_arrive

    def _pack_columns(self, batches: list[list[Message]]) -> bool:
        """Pack a whole instant column-wise now (:mod:`asyncnet.logpack`); False if
        it cannot be, or its batches are not in canonical order (then sorted by record)."""
        got = pack_batches(batches, self.index)
        if got is None:
            return False
        data, ends, kinds, dst = got
        if len(batches) > 1:
            firsts = np.cumsum([len(b) for b in batches[:-1]])
            if not (dst[firsts] > dst[firsts - 1]).all():
                return False  # a probe split the wake order: the records are sorted
        self._packed = (data, len(ends), np.bincount(kinds, minlength=3).tolist(),
                        batches[0][0][4])
        self._t_pending = batches[0][0][4]
        self._last_dst = int(dst[-1])
        return True

    def _unpack_columns(self) -> None:
        """The packed instant back as pending records (the same bytes once repacked)."""
        assert self._packed is not None
        self._pending = unpack_records(self._packed[0])
        self._packed = None

    def pack_instant(self) -> tuple[bytes | memoryview, int, list[int], int]:
        """Pack the buffered instant in canonical order, in one call.

        Returns
        -------
        ``(data, records, counts by kind, t_arrive)``.
        """
        if self._packed is not None:
            out = self._packed
            self.drop()
            return out
        recs = self._pending
        if not (self._in_order and self._names_sorted):
            recs.sort(key=record_key)
        n = len(recs)
        t = self._t_pending if self._t_pending is not None else 0
        ks = bytes(map(_kind_of, recs))  # kinds are 0..2: counted in C, twice Counter's speed
        kinds = [ks.count(0), ks.count(1), ks.count(2)]
        packed = self.packer.pack(recs)
        self.drop()
        # the records as one msgpack array; the file holds them without its header
        return array_items(packed), n, kinds, t

    def pending(self) -> int | None:
        """Instant buffered (``t_arrive`` in quanta), or ``None``."""
        return self._t_pending

    def add_records(self, batch: list[Message]) -> list[tuple[int, int, bytes]]:
        """Buffer one agent's batch (all of one instant).

        Parameters
        ----------
        batch:
            the messages delivered to one agent at one instant.

        Returns
        -------
        ``(t_arrive, kind, packed)`` of the records of the instants this
        batch closed, in canonical order.
        """
        out: list[tuple[int, int, bytes]] = []
        t = batch[0].t_arrive
        if self._t_pending is not None and t != self._t_pending:
            out = self.flush_records()
        self.add_batch(batch)
        return out

    def flush_records(self) -> list[tuple[int, int, bytes]]:
        """Pack the buffered instant in canonical order, a record at a time."""
        if self._packed is not None:
            self._unpack_columns()
        recs = sorted(self._pending, key=record_key)
        self.drop()
        pack = self.packer.pack
        return [(r[0], r[1], pack(r)) for r in recs]

    def add(self, batch: list[Message]) -> list[bytes]:
        """Like :meth:`add_records`, packed bytes only."""
        return [b for _, _, b in self.add_records(batch)]

    def flush(self) -> list[bytes]:
        """Like :meth:`flush_records`, packed bytes only."""
        return [b for _, _, b in self.flush_records()]

    def drop(self) -> None:
        """Forget the buffered (unfinished) instant."""
        self._pending: list[tuple] = []
        self._t_pending: int | None = None
        self.codes = PayloadCodes()  # an array's code, kept till the instant is packed
        self._last_dst = -1
        self._in_order = True
        self._packed: tuple[bytes, int, list[int], int] | None = None
