"""The event log's format: constants, errors, and the digest seal.

Shared by the writer (:mod:`asyncnet.eventlog`) and the reader
(:mod:`asyncnet.logfile`); see :mod:`asyncnet.eventlog` for the layout.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgpack

from .messages import encode_payload

FORMAT = "asyncnet-eventlog"
VERSION = 2
"""Version 2: the digest covers every byte (header, checkpoints, footer);
version 1 covered the records only and is refused."""
CHECKPOINT = 100_000
MAX_ITEM = 64 * 1024 * 1024
CHUNK = 1 << 20
"""Bytes read at a time when streaming a log."""
_DIGEST_LEN = 34
"""Packed size of a digest value: a 32-character msgpack str8."""
HEADER_KEYS: dict[str, type | tuple[type, ...]] = {
    "format": str, "version": int, "quanta": int, "scenario": str, "scenario_path": str,
    "seed": int, "agents": list}


class LogError(ValueError):
    """The event log is unreadable, altered, or not an asyncnet event log."""


class LogWriteError(LogError):
    """The event log could not be written (a full disk, a vanished directory)."""


def _packer() -> msgpack.Packer:
    return msgpack.Packer(default=encode_payload, use_bin_type=True)


def array_items(packed: bytes) -> memoryview:
    """A packed msgpack array's items, without the array's header: records as
    the log holds them (fixarray 1 byte, array 16 three, array 32 five)."""
    h = packed[0]
    return memoryview(packed)[1 if h < 0xDC else 3 if h == 0xDC else 5:]


def unpack_records(data: bytes | memoryview) -> list:
    """Packed records back as lists, arrays as their ``msgpack.ExtType`` (the
    same bytes once packed again)."""
    up = msgpack.Unpacker(raw=False, ext_hook=msgpack.ExtType, strict_map_key=False,
                          max_buffer_size=max(len(data), 1 << 20))
    up.feed(data)
    return list(up)


def record_key(rec: list) -> tuple:
    """Canonical order of records: (t_arrive, dst, kind, src, seq)."""
    return (rec[0], rec[3], rec[1], rec[2], rec[5])


def _new_hash() -> Any:
    return hashlib.blake2b(digest_size=16)


def _sealed(item: dict, h: Any) -> bytes:
    """``item`` packed with its last key ``digest`` = hash of everything before."""
    body = _packer().pack({**item, "digest": "0" * 32})
    prefix = body[:-_DIGEST_LEN]
    h2 = h.copy()
    h2.update(prefix)
    return prefix + _packer().pack(h2.hexdigest())
