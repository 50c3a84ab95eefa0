"""The event log: an append-only msgpack stream of every delivered message.

Layout: one header map, then one array per delivered message
``[t_arrive, kind, src, dst, t_sent, seq, payload]`` (agent names as indices
into the header's ``agents`` table, times in quanta), a checkpoint map every
``CHECKPOINT`` records, and a footer map with counts and a digest. Records
are written in canonical order ``(t_arrive, dst, kind, src, seq)``, so a run
gives the same bytes whatever the scheduler or the number of workers did.
Decoding never executes code and bounds every size; a truncated file is
read up to its last whole record.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Iterator
from typing import Any, BinaryIO

import msgpack

from .messages import QUANTA, Message, decode_ext, encode_payload

FORMAT = "asyncnet-eventlog"
VERSION = 1
CHECKPOINT = 100_000
MAX_ITEM = 64 * 1024 * 1024


class LogError(ValueError):
    """The event log is unreadable or not an asyncnet event log."""


def _packer() -> msgpack.Packer:
    return msgpack.Packer(default=encode_payload, use_bin_type=True)


def record_key(rec: list) -> tuple:
    """Canonical order of records: (t_arrive, dst, kind, src, seq)."""
    return (rec[0], rec[3], rec[1], rec[2], rec[5])


class RecordEncoder:
    """Turns messages into packed canonical records and keeps the digest."""

    def __init__(self, agents: list[str]):
        self.index = {n: i for i, n in enumerate(agents)}
        self.packer = _packer()
        self.digest = hashlib.blake2b(digest_size=16)
        self.count = 0
        self.by_kind = [0, 0, 0]
        self.t_last = 0
        self._pending: list[list] = []
        self._t_pending: int | None = None

    def add(self, batch: list[Message]) -> list[bytes]:
        """Buffer one agent's batch; return packed records of closed instants."""
        out: list[bytes] = []
        t = batch[0].t_arrive
        if self._t_pending is not None and t != self._t_pending:
            out = self.flush()
        self._t_pending = t
        idx = self.index
        for m in batch:
            self._pending.append([m.t_arrive, m.kind, idx[m.src], idx[m.dst], m.t_sent,
                                  m.seq, m.payload])
        return out

    def flush(self) -> list[bytes]:
        """Pack the buffered instant in canonical order."""
        recs = sorted(self._pending, key=record_key)
        self._pending = []
        self._t_pending = None
        return [self.pack(r) for r in recs]

    def pack(self, rec: list) -> bytes:
        """Pack one record, counting it into the digest."""
        b = self.packer.pack(rec)
        self.account(rec[0], rec[1], b)
        return b

    def account(self, t_arrive: int, kind: int, packed: bytes) -> None:
        """Count one record packed elsewhere (e.g. by a cluster worker)."""
        self.digest.update(packed)
        self.count += 1
        self.by_kind[kind] += 1
        self.t_last = t_arrive


class EventLogWriter:
    """Write a log: header now, records as instants close, footer at the end."""

    def __init__(self, path: str | os.PathLike, header: dict[str, Any]):
        self.path = os.fspath(path)
        d = os.path.dirname(self.path)
        if d:
            os.makedirs(d, exist_ok=True)
        self.f: BinaryIO = open(self.path, "wb")
        self.enc = RecordEncoder(header["agents"])
        head = {"format": FORMAT, "version": VERSION, "quanta": QUANTA, **header}
        self.f.write(_packer().pack(head))
        self._next_ck = CHECKPOINT

    def __call__(self, batch: list[Message]) -> None:
        """Engine sink: take one delivered batch."""
        self._write(self.enc.add(batch))

    def _write(self, packed: list[bytes]) -> None:
        # ``packed`` is whole instants, already counted into the digest, so a
        # checkpoint goes after them: its count and digest then describe
        # exactly the records before it, and a reader can check them there.
        self.f.write(b"".join(packed))
        if self.enc.count >= self._next_ck:
            self.f.write(_packer().pack({"checkpoint": self.enc.count,
                                         "t": self.enc.t_last,
                                         "digest": self.enc.digest.hexdigest()}))
            while self._next_ck <= self.enc.count:
                self._next_ck += CHECKPOINT

    def write_instant(self, records: list[tuple[int, int, bytes]]) -> None:
        """Write one instant's ``(t_arrive, kind, packed)`` records, already in
        canonical order — what ``__call__`` does for records packed elsewhere."""
        for t, kind, b in records:
            self.enc.account(t, kind, b)
        self._write([b for _, _, b in records])

    def close(self, complete: bool = True, extra: dict | None = None) -> dict:
        """Flush records; write the footer only if the run completed."""
        self._write(self.enc.flush())
        footer = {"footer": True, "count": self.enc.count, "by_kind": self.enc.by_kind,
                  "digest": self.enc.digest.hexdigest(), **(extra or {})}
        if complete:
            self.f.write(_packer().pack(footer))
        self.f.close()
        return footer


class EventLog:
    """A log read back: its header, its records and its footer (if any).

    ``records()`` yields raw records ``[t_arrive, kind, src, dst, t_sent,
    seq, payload]``; ``messages()`` yields them as ``Message``s with names.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise LogError(f"{self.path}: no such file")
        self.size = os.path.getsize(self.path)
        self.footer: dict | None = None
        self.truncated = False
        self.checkpoints: list[dict] = []
        with open(self.path, "rb") as f:
            up = self._unpacker(f)
            try:
                head = next(up)
            except StopIteration:
                raise LogError(f"{self.path}: empty or truncated before the header") from None
            except Exception as e:
                raise LogError(f"{self.path}: not an asyncnet event log ({e})") from None
        if not isinstance(head, dict) or head.get("format") != FORMAT:
            raise LogError(f"{self.path}: not an asyncnet event log")
        if head.get("version") != VERSION:
            raise LogError(f"{self.path}: log format version {head.get('version')} "
                           f"is not supported (this asyncnet reads {VERSION})")
        self.header = head
        self.agents: list[str] = list(head["agents"])

    def _unpacker(self, f: BinaryIO) -> msgpack.Unpacker:
        return msgpack.Unpacker(
            f, raw=False, ext_hook=decode_ext, max_buffer_size=MAX_ITEM,
            max_str_len=MAX_ITEM, max_bin_len=MAX_ITEM, max_array_len=1_000_000,
            max_map_len=10_000, max_ext_len=MAX_ITEM, strict_map_key=True,
            use_list=True)

    def raw(self) -> Iterator[tuple[list, bytes]]:
        """Yield ``(record, packed bytes)`` for every record, in file order.

        Each checkpoint is checked against the records before it (count and
        digest): an altered record is refused at the next checkpoint.
        """
        with open(self.path, "rb") as f:
            data = f.read()
        up = self._unpacker(io.BytesIO(data))
        digest = hashlib.blake2b(digest_size=16)
        pos = 0
        n = 0
        try:
            head = next(up)
            pos = up.tell()
            del head
            for obj in up:
                end = up.tell()
                if isinstance(obj, list):
                    if len(obj) != 7:
                        raise LogError(f"{self.path}: record {n} at byte {pos} is malformed")
                    n += 1
                    digest.update(data[pos:end])
                    yield obj, data[pos:end]
                elif isinstance(obj, dict) and obj.get("footer"):
                    self.footer = obj
                elif isinstance(obj, dict) and "checkpoint" in obj:
                    if obj["checkpoint"] != n or obj.get("digest") != digest.hexdigest():
                        raise LogError(f"{self.path}: the checkpoint at byte {pos} does not "
                                       f"match the {n} records before it (the log was altered)")
                    self.checkpoints.append(obj)
                else:
                    raise LogError(f"{self.path}: unexpected item at byte {pos}")
                pos = end
        except LogError:
            raise
        except Exception as e:
            raise LogError(f"{self.path}: corrupt at byte {pos}, after {n} records ({e})") from None
        if pos < len(data) or self.footer is None:
            self.truncated = True
            warnings.warn(f"{self.path}: truncated after {n} whole records "
                          f"({len(data) - pos} trailing bytes); read up to there",
                          stacklevel=2)

    def records(self) -> Iterator[list]:
        """Every record, in file order."""
        for rec, _ in self.raw():
            yield rec

    def messages(self) -> Iterator[Message]:
        """Every record as a ``Message`` with agent names."""
        names = self.agents
        for r in self.records():
            yield Message(r[1], names[r[2]], names[r[3]], r[4], r[0], r[5], r[6])

    def verify_digest(self) -> tuple[bool, int]:
        """Recompute the digest over the records; compare with the footer."""
        h = hashlib.blake2b(digest_size=16)
        n = 0
        for _, b in self.raw():
            h.update(b)
            n += 1
        ok = self.footer is not None and self.footer.get("digest") == h.hexdigest()
        return ok, n
