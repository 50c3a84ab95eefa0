"""Multipart messages on ZeroMQ sockets, with plain integer flags.

pyzmq's ``send_multipart`` and ``recv_multipart`` combine their flags as
``enum.IntFlag`` members (``SNDMORE | flags``, ``getsockopt(RCVMORE)``): on
Python 3.11 each such operation makes an enum member, and on a small
scenario, whose windows come every millisecond, that was a fifth of the
coordinator's CPU a window (cProfile: 184,709 enum constructions for 8,002
windows). These helpers send and receive the same frames with the flags as
ints.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import zmq

NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE = int(zmq.SNDMORE)
_RCVMORE = int(zmq.RCVMORE)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)


def send_frames(sock: zmq.Socket, frames: Sequence[Any], flags: int = 0,
                copy: bool = True) -> None:
    """Send ``frames`` as one multipart message (what ``send_multipart`` does).

    Parameters
    ----------
    sock:
        the socket.
    frames:
        bytes-like frames, at least one.
    flags:
        ``0`` or :data:`NOBLOCK`.
    copy:
        as ``send_multipart``'s (frames below the socket's copy threshold are
        copied anyway).
    """
    send = sock.send
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        send(frame, flags | _SNDMORE if i < last else flags, copy=copy)


def recv_frames(sock: zmq.Socket, flags: int = 0) -> list[bytes]:
    """The next multipart message's frames, as bytes (``zmq.Again`` with
    :data:`NOBLOCK` and none waiting).

    Parameters
    ----------
    sock:
        the socket.
    flags:
        ``0`` or :data:`NOBLOCK`.

    Returns
    -------
    The frames.
    """
    recv = sock.recv
    parts = [recv(flags)]
    while sock.getsockopt(_RCVMORE):
        parts.append(recv(flags))
    return parts


def has_input(sock: zmq.Socket) -> bool:
    """Whether a message waits on ``sock`` (without waiting for one).

    Parameters
    ----------
    sock:
        the socket.

    Returns
    -------
    True if a receive would not block.
    """
    return bool(sock.getsockopt(_EVENTS) & _POLLIN)
