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
from typing import Any, BinaryIO, NamedTuple

import msgpack

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
    record_key,
)
from .messages import QUANTA, Message


class _Block(NamedTuple):
    """What a block written by :meth:`EventLogWriter.write_block` adds to the counts."""

    count: int
    by_kind: list[int]
    t_last: int


class RecordEncoder:
    """Turns messages into packed canonical records, one instant at a time."""

    def __init__(self, agents: list[str]):
        self.index = {n: i for i, n in enumerate(agents)}
        self.packer = _packer()
        self._pending: list[list] = []
        self._t_pending: int | None = None

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
        self._t_pending = t
        idx = self.index
        for m in batch:
            self._pending.append([m.t_arrive, m.kind, idx[m.src], idx[m.dst], m.t_sent,
                                  m.seq, m.payload])
        return out

    def flush_records(self) -> list[tuple[int, int, bytes]]:
        """Pack the buffered instant in canonical order."""
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
        self._pending = []
        self._t_pending = None


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

    def __call__(self, batch: list[Message]) -> None:
        """Engine sink: take one delivered batch."""
        self._write(self.enc.add_records(batch))

    def _emit(self, data: bytes, recs: list[tuple[int, int, bytes]]) -> None:
        """Write ``data`` (the packed ``recs``, or a checkpoint) and account for it."""
        if self.failed is not None:
            return
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
        if isinstance(recs, _Block):
            for k, n in enumerate(recs.by_kind):
                self.by_kind[k] += n
            if recs.count:
                self.t_last = recs.t_last
            self.count += recs.count
        else:
            for t, kind, _ in recs:
                self.by_kind[kind] += 1
                self.t_last = t
            self.count += len(recs)
        self._inflight = None

    def _write(self, recs: list[tuple[int, int, bytes]]) -> None:
        # ``recs`` is whole instants, so a checkpoint goes after them: its
        # count and digest then describe exactly the bytes before it.
        if recs:
            self._emit(b"".join([b for _, _, b in recs]), recs)
        self._checkpoint()

    def _checkpoint(self) -> None:
        if self.count >= self._next_ck:
            self._emit(_sealed({"checkpoint": self.count, "t": self.t_last}, self.digest), [])
            while self._next_ck <= self.count:
                self._next_ck += CHECKPOINT

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
        if count:
            self._emit(data, _Block(count, list(by_kind), t_last))
        self._checkpoint()

    def _settle(self) -> None:
        """After an interrupt: make the accounting describe the file exactly."""
        if self._inflight is None or self.f is None:
            return
        data, _ = self._inflight
        self.f.flush()
        at = self.f.tell()
        if at == self._pos + len(data):
            self._account()  # written, interrupted before it was counted
        else:
            if at != self._pos:  # cut inside the write
                self.f.truncate(self._pos)
                self.f.seek(self._pos)
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
                    self._write(self.enc.flush_records())
                else:
                    self.enc.drop()
                    self._settle()
                footer = {"footer": True, "complete": bool(complete), "count": self.count,
                          "by_kind": list(self.by_kind), **(extra or {})}
                sealed = _sealed(footer, self.digest)
                self._emit(sealed, [])
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


__all__ = ["EventLog", "EventLogWriter", "RecordEncoder", "LogError", "LogWriteError",
           "open_log", "record_key", "FORMAT", "VERSION", "CHECKPOINT", "CHUNK", "MAX_ITEM",
           "HEADER_KEYS", "_DIGEST_LEN", "_new_hash", "_packer", "_sealed"]
