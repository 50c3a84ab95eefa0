"""The wire format between coordinator and workers: bounded msgpack frames.

Every frame is msgpack with numpy arrays as the event log's extension type
(``messages.encode_payload`` / ``decode_ext``): exact, no pickle, and the
decoder refuses oversized items before allocating them. Messages that cross
the cut are packed when they are sent (a snapshot of the payload), and all
messages for one peer in one window go out as one frame: an array header
followed by the packed messages.
"""

from __future__ import annotations

from typing import Any

import msgpack

from ..messages import decode_ext, encode_payload

MAX_FRAME = 1 << 30
"""Largest frame accepted from a peer (bytes)."""
MAX_ITEMS = 50_000_000
"""Largest array (e.g. messages in one window) accepted from a peer."""


class WireError(ValueError):
    """A peer sent a malformed or oversized frame."""


def packer() -> msgpack.Packer:
    """A packer that writes arrays the way the event log does."""
    return msgpack.Packer(default=encode_payload, use_bin_type=True)


def pack(obj: Any) -> bytes:
    """One object as one frame."""
    return packer().pack(obj)


def unpack(data: bytes, max_size: int = MAX_FRAME) -> Any:
    """Decode one frame with every size bounded; never executes code."""
    if len(data) > max_size:
        raise WireError(f"frame of {len(data)} bytes exceeds the limit of {max_size}")
    try:
        return msgpack.unpackb(
            data, raw=False, ext_hook=decode_ext, strict_map_key=True, use_list=True,
            max_str_len=max_size, max_bin_len=max_size, max_array_len=MAX_ITEMS,
            max_map_len=1_000_000, max_ext_len=max_size)
    except Exception as e:  # msgpack raises several types; all mean "bad frame"
        raise WireError(f"malformed frame ({type(e).__name__}: {e})") from None


def join_packed(items: list[bytes]) -> bytes:
    """A frame holding already-packed items as one msgpack array."""
    head = msgpack.Packer().pack_array_header(len(items))
    return head + b"".join(items)


def as_map(obj: Any, what: str) -> dict:
    """Check that a decoded header is a map (peers may be hostile)."""
    if not isinstance(obj, dict):
        raise WireError(f"{what}: expected a map, got {type(obj).__name__}")
    return obj
