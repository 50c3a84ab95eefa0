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
import stat
from typing import Any, BinaryIO

import msgpack

from .capture import Captured
from .logcapture import pack_instant as pack_captured
from .logencode import PayloadCodes, RecordEncoder, array_code
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
from .logsends import projected
from .messages import QUANTA, Message
from .outputs import lock_alone


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
        self.end: int | None = None
        """The run's last instant (quanta), where the caller knows it: the log's
        records are projected to it when the packing loop is chosen
        (:func:`asyncnet.logsends.projected`)."""

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
        got = pack_captured([captured], enc.index, enc.packer, enc.codes,
                            projected(self.count, captured.t, self.end))
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
                try:
                    f = open(self.path, "ab")  # not "wb": cut only once it is this run's
                except OSError as e:  # a path the checks let through (/proc/x: root may write)
                    self.failed = e
                    raise LogWriteError(f"{self.path}: cannot create the event log "
                                        f"({e.strerror or e}); the run stopped before "
                                        f"anything was written") from None
                try:
                    lock_alone(f)
                    if stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # not /dev/null, a pipe
                        f.truncate(0)
                except BlockingIOError as e:
                    f.close()
                    self.failed = e
                    raise LogWriteError(f"{self.path}: another asyncnet process is writing "
                                        f"this event log; this run stopped without touching "
                                        f"it (give it another log path)") from None
                except OSError:
                    f.close()
                    raise
                self.f = f
                self.f.write(self._head)
            self.f.write(data)
        except OSError as e:
            self.failed = e
            raise LogWriteError(f"{self.path}: cannot write the event log ({e.strerror or e}) "
                                f"{self._on_disk()}; the run stopped, what reached the file "
                                f"is readable up to its last whole record") from None
        self._account()

    def _on_disk(self) -> str:
        """What the file holds now, for a failed write's message: the records counted
        were buffered, not written (a full disk before the header: "after 74 records"
        of a file of 0 bytes)."""
        try:
            size = os.path.getsize(self.path)
        except OSError:
            return "with nothing written"
        if size < len(self._head):
            return f"with {size:,} bytes on disk (not even its header)"
        # the bytes accounted for before this write reached the file whole, if it holds them
        done = self._before[2] if size >= self._before[1] else None
        return (f"after {done:,} records ({size:,} bytes on disk)" if done is not None
                else f"with {size:,} bytes on disk")

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
