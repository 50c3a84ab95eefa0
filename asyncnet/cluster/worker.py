"""A worker: one partition of the agents on its own engine, driven in windows.

The worker connects (DEALER) to the coordinator's ROUTER, says HELLO, gets
its partition (INIT), and then runs window after window: inject the
messages its neighbouring workers sent it straight over their own sockets
(:mod:`.peers`), advance its partition to the window's end
(:class:`~.part.PartRunner`), send each neighbour its frame, and answer the
coordinator with a small header and the window's packed log segment. A
second socket in a small thread sends heartbeats, so a worker that is busy
with a long window is never mistaken for a dead one, and a stopped or
vanished worker is noticed by their absence.
"""

from __future__ import annotations

import gc
import os
import socket
import sys
import threading
import time
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from .. import logsends
from .._version import __version__
from ..engine import YOUNG
from ..messages import LocalityError
from ..numerics import numeric_stack
from . import wire
from .errors import ClusterError
from .part import PartError, PartRunner
from .peers import PeerNet, local_address
from .security import client_setup
from .sockets import recv_frames, send_frames

HEARTBEAT = 0.25
"""Seconds between heartbeats, both ways."""
LOST_GRACE = 1.5
"""Seconds a worker whose coordinator closed the connection (it exited or was
killed) gives its main thread to notice, before the process ends itself."""


PARENT_ENV = "ASYNCNET_COORDINATOR_PID"
"""Set by the coordinator for the local workers it starts: its process id."""


WARM_ENV = "ASYNCNET_WARM_LOG"
"""Set to ``1`` in a worker's environment (the coordinator passes its own on to
the local workers it starts): the worker loads the log's compiled packing loop
before it joins, rather than when its records are on course to pay for it
(:func:`asyncnet.logsends.projected`). A benchmark's switch: the compiled loop
in every window, loaded outside them."""


class WorkerFailed(RuntimeError):
    """The worker cannot go on (coordinator lost, protocol broken)."""


class Worker:
    """The worker side of a distributed run (see the module docstring)."""

    def __init__(self, connect: str, *, token: str | None = None, wait: float = 60.0,
                 keys: str | None = None):
        self.connect = connect
        self.token = token
        self.wait = wait
        self.keys = keys
        self.ident = f"w{os.getpid()}-{os.urandom(4).hex()}".encode()
        self.timeout = wait
        self.lost = threading.Event()  # the coordinator's connection went away
        # a local worker (started by the coordinator) watches its parent: the
        # coordinator's pid comes in the environment, as it may die before we start
        pid = os.environ.get(PARENT_ENV, "")
        self.parent = int(pid) if pid.isdigit() else None
        self.stats: dict[str, Any] = {"wait_seconds": 0.0}
        self.peernet: PeerNet | None = None

    # -- plumbing -----------------------------------------------------------
    def _socket(self, ctx: zmq.Context, ident: bytes,
                monitor: bool = False) -> tuple[zmq.Socket, zmq.Socket | None]:
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.IDENTITY, ident)
        if self.keys:
            client_setup(s, self.keys)
        # the monitor is attached before connecting, so no event is missed
        mon = s.get_monitor_socket(zmq.EVENT_DISCONNECTED) if monitor else None
        port = self.connect.rpartition(":")[2]
        try:
            if not (port.isdigit() and 0 < int(port) <= 65535):  # ZeroMQ wraps 99999 around
                raise zmq.ZMQError(msg=f"port {port!r} is not a TCP port, 1-65535")
            s.connect(self.connect)
        except zmq.ZMQError as e:
            s.close(0)
            if mon is not None:
                mon.close(0)
            why = str(e.strerror).split(" (addr=")[0]
            raise ClusterError(f"--connect {self.connect}: cannot connect there ({why}); "
                               f"expected the coordinator's tcp://HOST:PORT") from None
        return s, mon

    def _heartbeat(self, ctx: zmq.Context, stop: threading.Event) -> None:
        # a coordinator that exits or is killed closes its TCP connections: the
        # monitor sees it at once; a local worker also sees its parent go (a
        # silent coordinator is caught by the timeouts)
        s, mon = self._socket(ctx, self.ident + b"/hb", monitor=True)
        assert mon is not None
        try:
            while not stop.wait(HEARTBEAT):
                gone = self.parent is not None and os.getppid() != self.parent
                while mon.poll(0):
                    if recv_monitor_message(mon)["event"] == zmq.EVENT_DISCONNECTED:
                        gone = True
                if gone:
                    self._coordinator_lost(stop)
                    return
                try:
                    s.send(b"HB", zmq.NOBLOCK)
                except zmq.Again:  # not connected (yet): nobody to tell
                    pass
        finally:
            s.disable_monitor()
            mon.close(0)
            s.close(0)

    def _coordinator_lost(self, stop: threading.Event) -> None:
        """The connection closed: let the main thread fail; if it is busy in a
        window and does not stop within ``LOST_GRACE``, end the process."""
        self.lost.set()
        if stop.wait(LOST_GRACE):
            return
        print(f"asyncnet: error: worker: the coordinator at {self.connect} closed the "
              f"connection (it exited or was killed); stopping", file=sys.stderr, flush=True)
        os._exit(2)

    def _recv(self, sock: zmq.Socket, timeout: float) -> list[bytes]:
        """The next non-heartbeat message; fail after ``timeout`` s of silence."""
        while True:
            t0 = time.perf_counter()
            deadline = time.monotonic() + timeout
            while not sock.poll(100):
                if self.lost.is_set():
                    raise WorkerFailed(f"the coordinator at {self.connect} closed the "
                                       f"connection (it exited or was killed)")
                if time.monotonic() > deadline:
                    raise WorkerFailed(f"no word from the coordinator at {self.connect} "
                                       f"for {timeout:g} s")
            self.stats["wait_seconds"] += time.perf_counter() - t0
            msg = recv_frames(sock)
            if msg[0] != b"HB":
                return msg

    # -- the run ------------------------------------------------------------
    def run(self) -> int:
        """Serve one distributed run; return the exit status."""
        ctx = zmq.Context()
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(ctx, stop), daemon=True)
        try:
            sock, _ = self._socket(ctx, self.ident)
        except ClusterError:
            ctx.term()
            raise
        try:
            beat.start()
            self.peernet = PeerNet(ctx, local_address(self.connect), self.keys)
            sock.send_multipart([b"HELLO", wire.pack({
                "version": __version__, "host": socket.gethostname(), "pid": os.getpid(),
                "token": self.token, "peer": self.peernet.endpoint})])
            msg = self._recv(sock, self.wait)
            if msg[0] == b"STOP":
                return 0
            if msg[0] != b"INIT":
                raise WorkerFailed(f"expected INIT, got {msg[0][:16]!r}")
            try:
                init = wire.as_map(wire.unpack(msg[1]), "INIT")
                self._setup(init)
                self._connect_peers(init)
                # the partition lives as long as the run: keep it out of every
                # collection the window's short-lived messages trigger, and
                # collect those less often (as Engine.run does)
                gc.freeze()
                if 0 < gc.get_threshold()[0] < YOUNG:
                    gc.set_threshold(YOUNG, *gc.get_threshold()[1:])
                sock.send_multipart([b"READY", wire.pack({"next_t": self.core.next_t(),
                                                          "numerics": numeric_stack()})])
                self.stats["wait_seconds"] = 0.0  # from here on: waits at barriers
                return self._serve(sock)
            except WorkerFailed:
                raise
            except Exception as e:  # report it to the coordinator, which names us
                text = str(e) if not isinstance(e, OSError) else f"{e.filename}: {e.strerror}"
                sock.send_multipart([b"ERROR", wire.pack({
                    "type": type(e).__name__, "message": text,
                    "locality": isinstance(e, LocalityError)})])
                sock.poll(2000)  # give the coordinator time to read it before we go
                return 1
        finally:
            stop.set()
            beat.join(timeout=2)
            if self.peernet is not None:
                self.peernet.close()
            sock.close(0)
            ctx.term()

    def _setup(self, init: dict) -> None:
        self.timeout = float(init["timeout"])
        try:
            self.core = PartRunner(init)
        except PartError as e:
            raise WorkerFailed(str(e)) from None
        self.stats = self.core.stats

    def _connect_peers(self, init: dict) -> None:
        eps = init.get("peers") or []
        want = {}
        for p in self.core.peers:
            ep = eps[p] if p < len(eps) else None
            if not isinstance(ep, str) or not ep.startswith("tcp://"):
                raise WorkerFailed(f"no peer endpoint for partition {p}")
            want[p] = ep
        nonce = init.get("nonce", b"")
        if not isinstance(nonce, bytes) or len(nonce) != 8:
            raise WorkerFailed("INIT: a run nonce of 8 bytes expected")
        self.peernet.connect(self.core.part, nonce, want)

    def _inject(self, frame: bytes) -> None:
        self.core.inject(frame)

    def _gather(self, sock: zmq.Socket, window: int) -> list[bytes] | None:
        """The frames every neighbour sent for ``window`` (None: told to stop)."""
        peers = self.core.peers
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self.peernet.sock, zmq.POLLIN)
        deadline = time.monotonic() + self.timeout
        while True:
            got = self.peernet.take(window, peers)
            if got is not None:
                return got
            ready = dict(poller.poll(100))
            if sock in ready:
                msg = sock.recv_multipart()
                if msg[0] == b"STOP":
                    return None
                if msg[0] != b"HB":
                    raise WorkerFailed(f"unexpected message {msg[0][:16]!r} while waiting "
                                       f"for the other workers")
                deadline = time.monotonic() + self.timeout  # the coordinator is alive
            if self.lost.is_set():
                raise WorkerFailed(f"the coordinator at {self.connect} closed the "
                                   f"connection (it exited or was killed)")
            if time.monotonic() > deadline:
                raise WorkerFailed(f"no word from the coordinator at {self.connect} "
                                   f"for {self.timeout:g} s")

    def _take(self, sock: zmq.Socket, window: int) -> list[bytes] | None:
        """The neighbours' frames of ``window`` if not taken yet, else none (None: stop)."""
        core = self.core
        if not core.wants_frames(window):
            return []
        t0 = time.perf_counter()
        frames = self._gather(sock, window)
        self.stats["wait_seconds"] += time.perf_counter() - t0
        core.taken = window
        return frames

    def _serve(self, sock: zmq.Socket) -> int:
        core = self.core
        while True:
            msg = self._recv(sock, self.timeout)
            op = msg[0]
            if op == b"RUN":
                head = wire.as_map(wire.unpack(msg[1]), "RUN")
                w = int(head["w"])
                frames = self._take(sock, w - 1)
                if frames is None:
                    return 0
                t0 = time.perf_counter()
                done, segment, out = core.run_window(int(head["end"]), int(head["trace"]),
                                                     frames, head.get("watch"))
                self.peernet.send(w, out)
                send_frames(sock, [b"DONE", wire.pack(done), *segment], copy=False)
                self.stats["busy_seconds"] += time.perf_counter() - t0
            elif op == b"CKPT":  # the messages in flight to us, then our agents' states
                head = wire.as_map(wire.unpack(msg[1]), "CKPT")
                frames = self._take(sock, int(head["w"]) - 1)
                if frames is None:
                    return 0
                sock.send_multipart([b"CKSTATE", wire.pack(core.checkpoint(frames))])
            elif op == b"STATE":
                head = wire.as_map(wire.unpack(msg[1]), "STATE")
                try:
                    states = core.states(list(head["agents"]))
                except PartError as e:
                    raise WorkerFailed(str(e)) from None
                sock.send_multipart([b"STATES", wire.pack(states)])
            elif op == b"FINISH":
                head = wire.as_map(wire.unpack(msg[1]), "FINISH")
                sock.send_multipart([b"RESULT", wire.pack(core.results(bool(head.get("state"))))])
            elif op == b"STOP":
                return 0
            else:
                raise WorkerFailed(f"unexpected message {op[:16]!r}")


def main(connect: str, token: str | None, wait: float, keys: str | None) -> int:
    """``asyncnet worker``: serve one run, then exit."""
    if os.environ.get(WARM_ENV) == "1":  # asked for: load it before joining
        try:
            logsends.warm(logsends.kernel(logsends.MIN_RECORDS))
        except Exception:  # only a head start: the log loads it again when its records
            # call for it, and a failure then is reported as the run's
            pass
    try:
        return Worker(connect, token=token, wait=wait, keys=keys).run()
    except WorkerFailed as e:
        print(f"asyncnet: error: worker: {e}", file=sys.stderr)
        return 2
