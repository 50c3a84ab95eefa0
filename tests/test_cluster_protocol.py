"""The coordinator against fake workers: errors, wrong versions, hostile frames.

Each fake worker is a plain DEALER socket in a thread that speaks (or
breaks) the protocol; the coordinator must stop with a ``ClusterError``
that names the worker — never hang, never a traceback from a decoder.
"""

from __future__ import annotations

import os
import threading

import msgpack
import pytest
import zmq

from asyncnet import __version__
from asyncnet.cluster import simulate_distributed, wire
from asyncnet.cluster.errors import ClusterError

from .helpers import free_port
from .test_cluster import ROOT, shortened

QUICK = os.path.join(ROOT, "scenarios", "quickstart.toml")


def fake_worker(endpoint: str, script) -> threading.Thread:
    """Run ``script(sock)`` against the coordinator at ``endpoint`` in a thread."""
    def main():
        ctx = zmq.Context()
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
        try:
            script(s)
        finally:
            s.close(0)
            ctx.term()

    t = threading.Thread(target=main, daemon=True)
    t.start()
    return t


def hello(s, version=__version__):
    s.send_multipart([b"HELLO", wire.pack({"version": version, "host": "fake", "pid": 1,
                                           "token": None})])


def until(s, op: bytes):
    while True:
        if not s.poll(20000):
            return None
        msg = s.recv_multipart()
        if msg[0] == op:
            return msg


def run_against(script, tmp_path, **kw):
    port = free_port()
    ep = f"tcp://127.0.0.1:{port}"
    t = fake_worker(ep, script)
    try:
        with pytest.raises(ClusterError) as ei:
            simulate_distributed(shortened(QUICK, 10.0), workers=1, local=0, bind=ep,
                                 timeout=2.0, join_timeout=20.0,
                                 log_path=str(tmp_path / "x.log"), **kw)
    finally:
        t.join(timeout=30)
    return str(ei.value)


def test_worker_error_is_reported_with_its_partition(tmp_path):
    def script(s):
        hello(s)
        until(s, b"INIT")
        s.send_multipart([b"ERROR", wire.pack({"type": "ValueError", "message": "boom"})])
        until(s, b"STOP")

    msg = run_against(script, tmp_path)
    assert "worker 0 (pid 1 on fake, partition 0" in msg
    assert "ValueError: boom" in msg and "building its partition" in msg


def test_worker_of_another_version_is_refused(tmp_path):
    msg = run_against(lambda s: (hello(s, "0.0.0-other"), until(s, b"STOP")), tmp_path)
    assert "runs asyncnet 0.0.0-other" in msg


@pytest.mark.parametrize("reply", [
    [b"READY", b"\xc1"],                                   # not msgpack at all
    [b"READY", b"\xdd\xff\xff\xff\xff"],                   # a 4-billion-item array, no items
    [b"READY", msgpack.packb([1, 2])],                     # a list where a map belongs
    [b"READY", msgpack.packb({"nothing": 1})],             # a map without next_t
    [b"DONE", msgpack.packb({})],                          # the wrong step
])
def test_hostile_frames_stop_the_run_cleanly(tmp_path, reply):
    def script(s):
        hello(s)
        until(s, b"INIT")
        s.send_multipart(reply)
        until(s, b"STOP")

    msg = run_against(script, tmp_path)
    assert "worker 0" in msg or "malformed" in msg


def test_silent_worker_is_noticed(tmp_path):
    def script(s):
        hello(s)
        until(s, b"INIT")
        until(s, b"STOP")  # listens, but never answers and never beats

    msg = run_against(script, tmp_path)
    assert "stopped answering" in msg and "building its partition" in msg


def test_beating_but_stuck_worker_is_noticed(tmp_path):
    def script(s):
        hello(s)
        until(s, b"INIT")
        for _ in range(200):  # beats (as its heartbeat thread would), never answers
            s.send(b"HB")
            if s.poll(50) and s.recv_multipart()[0] == b"STOP":
                return

    msg = run_against(script, tmp_path, step_timeout=1.0)
    assert "alive but has not answered for 1 s" in msg
