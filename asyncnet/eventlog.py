"""The event log: an append-only msgpack stream of every delivered message.

Layout: one header map, then one array per delivered message
``[t_arrive, kind, src, dst, t_sent, seq, payload]`` (agent names as indices
into the header's ``agents`` table, times in quanta), a checkpoint map every
``CHECKPOINT`` records, and a footer map with counts and a digest. Records
are written in canonical order ``(t_arrive, dst, kind, src, seq)``, so a run
gives the same bytes whatever the scheduler or the number of workers did.

Integrity (format version 2): one BLAKE2b hash runs over every byte of the
file, the header included. A checkpoint's and the footer's ``digest`` (always
their last key) is that hash over every byte before the digest's own value,
so any altered byte anywhere — header, record, checkpoint or footer — is
caught at the next checkpoint or at the footer. A run that stops early (an
interrupt, an error) still closes its log with a footer marked
``complete = false`` after its last whole instant: a verified prefix.

Reading (:func:`open_log`) streams the file in chunks, so memory does not
grow with the log; decoding never executes code, bounds every size, and
checks every record's types and ranges. A file cut short is read up to its
last whole record (with a warning).
"""

from __future__ import annotations

import os
import struct
from operator import itemgetter
from typing import Any, BinaryIO

import msgpack
import numpy as np

from .capture import Captured
from .logcapture import pack_instant as pack_captured
from .logfile import EventLog, open_log
from .logformat import (
    _DIGEST_LEN,
    CHECKPOINT,
    CHUNK,
    FORMAT,
    HEADER_KEYS,
    MAX_ITEM,
    VERSION,
    LogError,
    LogWriteError,
    _new_hash,
    _packer,
    _sealed,
    array_items,
    record_key,
    unpack_records,
)
from .logpack import MIN_RECORDS, pack_batches
from .messages import QUANTA, Message, encode_payload

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


class EventLogWriter:
    """Write a log: header, records as instants close, footer at the end.

    The file is created at the first write (a run that fails before its
    first instant leaves nothing behind); a failed write (e.g. a full disk)
    raises :class:`LogWriteError` and leaves what was written readable. The
    digest and counts are taken as bytes are written, so a run stopped
    anywhere (an interrupt between two writes) closes with a footer that
    describes exactly the file.
    """

    def __init__(self, path: str | os.PathLike, header: dict[str, Any]):
        self.path = os.fspath(path)
        self.f: BinaryIO | None = None
        self.enc = RecordEncoder(header["agents"])
        head = {"format": FORMAT, "version": VERSION, "quanta": QUANTA, **header}
        self.digest = _new_hash()
        self.digest.update(_packer().pack(head))
        # a checkpoint of 0 records seals the header: a reader checks it first
        self._head = _packer().pack(head) + _sealed({"checkpoint": 0, "t": 0}, self.digest)
        self.digest = _new_hash()
        self.digest.update(self._head)
        self.count = 0
        self.by_kind = [0, 0, 0]
        self.t_last = 0
        self._pos = len(self._head)  # bytes accounted for (the header is written first)
        self._inflight: tuple[bytes, list] | None = None
        self._next_ck = CHECKPOINT
        self.failed: OSError | None = None
        # the last instant record() took, packed: written when a later one comes
        self._held: tuple[bytes | memoryview, int, list[int], int] | None = None

    def __call__(self, batch: list[Message]) -> None:
        """Engine sink: take one delivered batch."""
        enc = self.enc
        t = enc._t_pending
        if t is not None and batch[0].t_arrive != t:
            self._write_packed(*enc.pack_instant())
        enc.add_batch(batch)

    def instant(self, batches: list[list[Message]]) -> None:
        """Engine instant sink: take every batch of one instant at once.

        The same records as calling the writer with each batch in turn, for
        one call an instant (``Engine.instant_sinks``).

        Parameters
        ----------
        batches:
            one instant's batches, in wake order.
        """
        enc = self.enc
        t = enc._t_pending
        if t is not None and batches[0][0].t_arrive != t:
            self._write_packed(*enc.pack_instant())
        enc.add_instant(batches)

    def record(self, captured: Captured) -> None:
        """Engine recorder (``Engine.record``): take one instant as its sends.

        The same records as :meth:`instant` with the instant's delivered
        batches, made from one entry a send (:mod:`asyncnet.logcapture`).

        Parameters
        ----------
        captured:
            what the engine captured of one instant.
        """
        enc = self.enc
        if captured.agents != len(enc.index):  # sends carry the engine's indices
            raise ValueError(f"the log's agent table has {len(enc.index)} agents, the "
                             f"engine {captured.agents}: give the writer the engine's names")
        # packed now: a payload array may be changed in place once its instant is over
        got = pack_captured([captured], enc.index, enc.packer, enc.codes, self.count)
        enc.drop()  # the payload codes made for this instant
        held = self._held
        if held is not None:
            if held[3] == captured.t:  # a zero-delay link ran the instant again
                got = self._merge(held, got)
            else:
                self._write_packed(*held)
        self._held = got

    def flush_instant(self) -> None:
        """Write the instant held back (whole: called at an instant boundary), if any."""
        if self._held is not None:
            held, self._held = self._held, None
            self._write_packed(*held)
        else:
            self._write(self.enc.flush_records())

    def _merge(self, a: tuple, b: tuple) -> tuple[Any, int, list[int], int]:
        """Two packed parts of one instant as one, in canonical order (rare)."""
        recs = sorted(unpack_records(bytes(a[0]) + bytes(b[0])), key=record_key)
        return array_items(self.enc.packer.pack(recs)), len(recs), \
            [x + y for x, y in zip(a[2], b[2], strict=True)], a[3]

    def _emit(self, data: bytes | memoryview, recs: tuple[int, list[int], int] | None) -> None:
        """Write ``data`` (records, or a checkpoint) and account for it.

        ``recs`` is ``(records, counts by kind, last t_arrive)`` of the
        records in ``data``, or ``None``.
        """
        if self.failed is not None:
            return
        # the accounting before this write, so that an interrupt anywhere in it
        # (between the hash's update and the position's, say) is settled exactly
        self._before = (self.digest.copy(), self._pos, self.count, list(self.by_kind),
                        self.t_last)
        self._inflight = (data, recs)
        try:
            if self.f is None:
                d = os.path.dirname(self.path)
                if d:
                    os.makedirs(d, exist_ok=True)
                self.f = open(self.path, "wb")
                self.f.write(self._head)
            self.f.write(data)
        except OSError as e:
            self.failed = e
            raise LogWriteError(
                f"{self.path}: cannot write the event log ({e.strerror or e}) after "
                f"{self.count:,} records (t={self.t_last / QUANTA:g}); the run "
                f"stopped, what reached the file is readable up to its last whole "
                f"record") from None
        self._account()

    def _account(self) -> None:
        assert self._inflight is not None
        data, recs = self._inflight
        self.digest.update(data)
        self._pos += len(data)
        if recs is not None:
            n, kinds, t = recs
            if n:
                bk = self.by_kind
                for k in range(3):
                    bk[k] += kinds[k]
                self.t_last = t
                self.count += n
        self._inflight = None

    def _write_packed(self, data: bytes | memoryview, n: int, kinds: list[int],
                      t: int) -> None:
        # ``data`` is whole instants, so a checkpoint goes after them: its
        # count and digest then describe exactly the bytes before it.
        if n:
            self._emit(data, (n, kinds, t))
        self._checkpoint()

    def _checkpoint(self) -> None:
        if self.count >= self._next_ck:
            self._emit(_sealed({"checkpoint": self.count, "t": self.t_last}, self.digest), None)
            while self._next_ck <= self.count:
                self._next_ck += CHECKPOINT

    def _write(self, recs: list[tuple[int, int, bytes]]) -> None:
        kinds = [0, 0, 0]
        for _, k, _ in recs:
            kinds[k] += 1
        self._write_packed(b"".join([b for _, _, b in recs]), len(recs), kinds,
                           recs[-1][0] if recs else 0)

    def write_instant(self, records: list[tuple[int, int, bytes]]) -> None:
        """Write one instant's records packed elsewhere (a cluster's workers).

        Parameters
        ----------
        records:
            ``(t_arrive, kind, packed)`` of one whole instant, already in
            canonical order.
        """
        self._write(records)

    @property
    def next_checkpoint(self) -> int:
        """The record count at which the next checkpoint is due: it is written
        after the first whole instant that brings the count to it or past it."""
        return self._next_ck

    def write_block(self, data: bytes, count: int, by_kind: list[int], t_last: int) -> None:
        """Write whole instants of records packed and ordered elsewhere (a
        cluster's merge), without a Python object per record.

        Parameters
        ----------
        data:
            the packed records, in canonical order, of whole instants; the
            caller cuts blocks so that only the block's last instant may
            reach :attr:`next_checkpoint`.
        count:
            records in ``data``.
        by_kind:
            records in ``data`` by kind.
        t_last:
            the arrival time of the last record.
        """
        self._write_packed(data, count, list(by_kind), t_last)

    def _settle(self) -> None:
        """After an interrupt: make the accounting describe the file exactly."""
        if self._inflight is None or self.f is None:
            return
        data, recs = self._inflight
        # back to the accounting before the write (the interrupt may have come
        # inside _account), then forward again if the bytes are all there
        digest, pos, count, by_kind, t_last = self._before
        self.digest, self._pos, self.count, self.by_kind, self.t_last = \
            digest.copy(), pos, count, list(by_kind), t_last
        self.f.flush()
        at = self.f.tell()
        if at == pos + len(data):
            self._account()  # written, interrupted before it was counted
        else:
            if at != pos:  # cut inside the write
                self.f.truncate(pos)
                self.f.seek(pos)
            self._inflight = None

    def close(self, complete: bool = True, extra: dict | None = None) -> dict:
        """Write the footer and close the file.

        Parameters
        ----------
        complete:
            whether the run reached its end. If not (an interrupt, an error),
            the unfinished last instant is dropped and the footer says
            ``complete = false``: the log is a verified prefix of the run.
        extra:
            more footer entries (e.g. per-worker figures).

        Returns
        -------
        The footer (counts by kind and the digest).
        """
        footer: dict[str, Any] = {"footer": True, "count": self.count,
                                  "by_kind": list(self.by_kind)}
        try:
            if self.failed is None:
                if complete:
                    if self.enc.pending() is not None:
                        self._write_packed(*self.enc.pack_instant())
                    if self._held is not None:
                        self._write_packed(*self._held)
                else:
                    self.enc.drop()
                    self._settle()
                self._held = None
                footer = {"footer": True, "complete": bool(complete), "count": self.count,
                          "by_kind": list(self.by_kind), **(extra or {})}
                sealed = _sealed(footer, self.digest)
                self._emit(sealed, None)
                footer["digest"] = msgpack.unpackb(sealed[-_DIGEST_LEN:])
        finally:
            self._close_file()
        return footer

    def _close_file(self) -> None:
        if self.f is None:
            return
        try:
            self.f.close()
        except OSError as e:  # the buffer's last bytes did not fit
            if self.failed is None:
                self.failed = e
                raise LogWriteError(f"{self.path}: cannot write the event log "
                                    f"({e.strerror or e})") from None
        finally:
            self.f = None


__all__ = ["EventLog", "EventLogWriter", "RecordEncoder", "PayloadCodes", "array_code",
           "LogError", "LogWriteError",
           "open_log", "record_key", "FORMAT", "VERSION", "CHECKPOINT", "CHUNK", "MAX_ITEM",
           "HEADER_KEYS", "_DIGEST_LEN", "_new_hash", "_packer", "_sealed"]
