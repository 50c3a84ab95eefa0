"""Multipart messages with integer flags (asyncnet/cluster/sockets.py) against
pyzmq's own ``send_multipart`` / ``recv_multipart``."""

from __future__ import annotations

import pytest
import zmq

from asyncnet.cluster.sockets import NOBLOCK, has_input, recv_frames, send_frames

MESSAGES = [[b"one"], [b"DONE", b"", b"x" * 100, b""], [b"big", bytes(range(256)) * 1024],
            [b"a", memoryview(b"view"), bytearray(b"array")]]


@pytest.fixture
def pair():
    ctx = zmq.Context()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.bind("inproc://sockets-test")
    b.connect("inproc://sockets-test")
    yield a, b
    a.close(0)
    b.close(0)
    ctx.term()


@pytest.mark.parametrize("copy", [True, False])
def test_frames_arrive_as_pyzmqs_multipart_sends_and_reads_them(pair, copy):
    a, b = pair
    for frames in MESSAGES:
        want = [bytes(f) for f in frames]
        send_frames(a, frames, copy=copy)  # ours -> pyzmq's reader
        assert b.recv_multipart() == want
        a.send_multipart(frames, copy=copy)  # pyzmq's -> ours
        assert b.poll(1000) and has_input(b)
        assert recv_frames(b, NOBLOCK) == want
        assert not has_input(b)


def test_nothing_waiting(pair):
    _, b = pair
    assert not has_input(b)
    with pytest.raises(zmq.Again):
        recv_frames(b, NOBLOCK)


def test_messages_stay_apart_and_in_order(pair):
    a, b = pair
    for frames in MESSAGES:
        send_frames(a, frames)
    got = [recv_frames(b) for _ in MESSAGES]
    assert got == [[bytes(f) for f in frames] for frames in MESSAGES]
