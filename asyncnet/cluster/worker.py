"""A worker: one partition of the agents on its own engine, driven in windows.

The worker connects (DEALER) to the coordinator's ROUTER, says HELLO, gets
its partition (INIT), and then runs window after window: inject the
messages other partitions sent it, advance its engine to the window's end,
and answer with the records it delivered and one frame of outgoing messages
per peer. A second socket in a small thread sends heartbeats, so a worker
that is busy with a long window is never mistaken for a dead one, and a
stopped or vanished worker is noticed by their absence.
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

from .._version import __version__
from ..checkpoint import capture_agent, restore_partition
from ..messages import CONTROL, LocalityError, Message
from ..scenario import load
from ..simulation import analyses_of, build_engine, context, final_state
from . import wire
from .security import client_setup

HEARTBEAT = 0.25
"""Seconds between heartbeats, both ways."""
LOST_GRACE = 1.5
"""Seconds a worker whose coordinator closed the connection (it exited or was
killed) gives its main thread to notice, before the process ends itself."""


PARENT_ENV = "ASYNCNET_COORDINATOR_PID"
"""Set by the coordinator for the local workers it starts: its process id."""


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
        self.stats = {"windows": 0, "delivered": 0, "cut_sent": 0, "cut_received": 0,
                      "wait_seconds": 0.0, "busy_seconds": 0.0}

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
        s.connect(self.connect)
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
            msg = sock.recv_multipart()
            if msg[0] != b"HB":
                return msg

    # -- the run ------------------------------------------------------------
    def run(self) -> int:
        """Serve one distributed run; return the exit status."""
        ctx = zmq.Context()
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(ctx, stop), daemon=True)
        sock, _ = self._socket(ctx, self.ident)
        try:
            beat.start()
            sock.send_multipart([b"HELLO", wire.pack({
                "version": __version__, "host": socket.gethostname(), "pid": os.getpid(),
                "token": self.token})])
            msg = self._recv(sock, self.wait)
            if msg[0] == b"STOP":
                return 0
            if msg[0] != b"INIT":
                raise WorkerFailed(f"expected INIT, got {msg[0][:16]!r}")
            try:
                self._setup(wire.as_map(wire.unpack(msg[1]), "INIT"))
                # the partition lives as long as the run: keep it out of every
                # collection the window's short-lived messages trigger
                gc.freeze()
                sock.send_multipart([b"READY", wire.pack({"next_t": self._next()})])
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
            sock.close(0)
            ctx.term()

    def _setup(self, init: dict) -> None:
        self.part = int(init["part"])
        self.timeout = float(init["timeout"])
        self.log = bool(init["log"])
        sc = load(init["path"], text=init["scenario"])
        owner = list(init["owner"])
        self.owner_of = owner
        agents = list(init["agents"])
        mine = [n for n, p in zip(agents, owner, strict=True) if p == self.part]
        eng, net, stream = build_engine(sc, local=mine, remote=self._remote)
        names = eng.names
        if names != agents:
            raise WorkerFailed("this worker builds a different network from the scenario "
                               "(different asyncnet versions?)")
        if "resume" in init:  # the checkpoint's state of this partition's agents
            restore_partition(eng, init["resume"])
        self.eng, self.net, self.names, self.stream = eng, net, names, stream
        self.index = {n: i for i, n in enumerate(names)}
        self.packer = wire.packer()
        self.rows: list[list] = []
        self.out: dict[int, list[bytes]] = {}
        self.out_min: dict[int, int] = {}
        eng.sinks.append(self._record)
        # probes run at the coordinator (it asks for states); monitors run here
        ctx = context(sc, eng, net, stream)
        self.parts = [a.share(ctx) for a in analyses_of(sc) if a.monitors]

    def _next(self) -> int | None:
        t = self.eng.env.peek()
        return None if t == float("inf") else int(t)

    def _remote(self, m: Message) -> None:
        # packed now: the peer gets the payload as it was when it was sent
        idx = self.index
        peer = self.owner_of[idx[m.dst]]
        self.out.setdefault(peer, []).append(self.packer.pack(
            [m.kind, idx[m.src], idx[m.dst], m.t_sent, m.t_arrive, m.seq, m.payload]))
        if m.t_arrive < self.out_min.get(peer, m.t_arrive + 1):
            self.out_min[peer] = m.t_arrive

    def _record(self, batch: list[Message]) -> None:
        idx, rows, log, pk = self.index, self.rows, self.log, self.packer
        for m in batch:
            s, d = idx[m.src], idx[m.dst]
            if log:
                x = pk.pack([m.t_arrive, m.kind, s, d, m.t_sent, m.seq, m.payload])
            else:
                x = m.payload if m.kind == CONTROL else None
            rows.append([m.t_arrive, d, m.kind, s, m.seq, m.t_sent, x])
        self.stats["delivered"] += len(batch)

    def _inject(self, frame: bytes) -> None:
        names, links = self.names, self.eng.links
        items = wire.unpack(frame)
        if not isinstance(items, list):
            raise wire.WireError("a message frame must be an array")
        for it in items:
            if not isinstance(it, list) or len(it) != 7:
                raise wire.WireError("malformed message in a frame")
            kind, s, d, t_sent, t_arrive, seq, payload = it
            src, dst = names[s], names[d]
            if dst not in self.eng.agents or links[dst].get(src) != t_arrive - t_sent:
                raise LocalityError(f"message {src} -> {dst} does not match a link here")
            self.eng.inject(Message(kind, src, dst, t_sent, t_arrive, seq, payload))
        self.stats["cut_received"] += len(items)

    def _serve(self, sock: zmq.Socket) -> int:
        while True:
            msg = self._recv(sock, self.timeout)
            op = msg[0]
            if op == b"RUN":
                t0 = time.perf_counter()
                head = wire.as_map(wire.unpack(msg[1]), "RUN")
                for frame in msg[2:]:
                    self._inject(frame)
                self.eng.run_quanta(int(head["end"]))
                sock.send_multipart(self._done())
                self.stats["windows"] += 1
                self.stats["busy_seconds"] += time.perf_counter() - t0
            elif op == b"CKPT":  # the messages in flight to us, then our agents' states
                for frame in msg[2:]:
                    self._inject(frame)
                shared = [self.eng.rule, self.net, self.stream]
                sock.send_multipart([b"CKSTATE", wire.pack({
                    "next_t": self._next(), "agents": [[n, capture_agent(a, shared)] for n, a
                                                       in self.eng.agents.items()]})])
            elif op == b"STATE":
                head = wire.as_map(wire.unpack(msg[1]), "STATE")
                sock.send_multipart([b"STATES", wire.pack(self._states(head))])
            elif op == b"FINISH":
                head = wire.as_map(wire.unpack(msg[1]), "FINISH")
                sock.send_multipart([b"RESULT", wire.pack(self._results(head))])
            elif op == b"STOP":
                return 0
            else:
                raise WorkerFailed(f"unexpected message {op[:16]!r}")

    def _done(self) -> list[bytes]:
        peers = sorted(self.out)
        head = {"next_t": self._next(),
                "peers": [[p, len(self.out[p]), self.out_min[p]] for p in peers]}
        frames = [b"DONE", wire.pack(head), self.packer.pack(self.rows)]
        for p in peers:
            frames.append(wire.join_packed(self.out[p]))
            self.stats["cut_sent"] += len(self.out[p])
        self.rows, self.out, self.out_min = [], {}, {}
        return frames

    def _results(self, head: dict) -> dict[str, Any]:
        res: dict[str, Any] = {"stats": {**self.stats, "agents": len(self.eng.agents),
                                         "part": self.part}}
        for part in self.parts:
            res.update(part())
        if head.get("state"):
            res["state"] = [[k, v] for k, v in final_state(self.eng).items()]
        return res

    def _states(self, head: dict) -> list[list]:
        agents = self.eng.agents
        out = []
        for name in head["agents"]:
            if name not in agents:
                raise WorkerFailed(f"asked for the state of {name!r}, not in this partition")
            out.append([name, agents[name].model.state()])
        return out


def main(connect: str, token: str | None, wait: float, keys: str | None) -> int:
    """``asyncnet worker``: serve one run, then exit."""
    try:
        return Worker(connect, token=token, wait=wait, keys=keys).run()
    except WorkerFailed as e:
        print(f"asyncnet: error: worker: {e}", file=sys.stderr)
        return 2
