"""The coordinator's side of the wire: one ROUTER, its workers, their health.

``Cluster`` binds (127.0.0.1 unless told otherwise), starts the local
worker processes, waits for every worker to say HELLO, and then exchanges
messages with them. Every wait polls with a short tick and checks, at each
tick, that local processes are alive and that every worker has been heard
from (a heartbeat counts) within ``timeout`` seconds; a worker that fails
either check stops the run with a ``ClusterError`` naming it. ``close``
releases every socket, thread and process, whatever happened before.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import zmq

from .._version import __version__
from . import wire
from .errors import ClusterError, WorkerLost
from .security import server_setup
from .sockets import NOBLOCK, has_input, recv_frames, send_frames
from .worker import HEARTBEAT, PARENT_ENV

TICK_MS = 100
CHECK_EVERY = 0.05
"""Seconds between looks at the workers' processes while their answers come."""


@dataclass
class Member:
    """One worker as the coordinator knows it."""

    ident: bytes
    host: str
    pid: int
    part: int = -1
    peer: str | None = None  # where the other workers send it messages
    proc: subprocess.Popen | None = None
    last_seen: float = field(default_factory=time.monotonic)


class Cluster:
    """Sockets and processes of one distributed run (a context manager)."""

    def __init__(self, n: int, *, local: int | None = None, bind: str | None = None,
                 timeout: float = 5.0, join_timeout: float = 60.0,
                 keys: str | None = None, step_timeout: float = 600.0):
        self.n = n
        self.local = n if local is None else local
        self.bind = bind or "tcp://127.0.0.1:0"
        self.timeout = timeout
        self.join_timeout = join_timeout
        self.step_timeout = step_timeout  # a heartbeating worker stuck in one step
        self.keys = keys
        self.members: list[Member] = []
        self.by_ident: dict[bytes, Member] = {}
        self.procs: list[tuple[subprocess.Popen, object]] = []
        self.where = "joining"  # what the run is doing, for error messages
        self.describe_part = lambda k: f"partition {k}"
        self._last_beat = 0.0
        self._last_check = 0.0
        self.failed = False
        self.ctx = zmq.Context()
        self.auth = None
        self.sock = None
        try:
            self.sock = self.ctx.socket(zmq.ROUTER)
            self.sock.setsockopt(zmq.LINGER, 0)
            self.sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
            if keys:
                self.auth = server_setup(self.ctx, self.sock, keys)
            host, _, port = self.bind.rpartition(":")
            if port != "*" and not (port.isdigit() and int(port) <= 65535):
                # ZeroMQ takes 99999 and listens elsewhere (the port modulo 2^16)
                raise ClusterError(f"bind address {self.bind}: port {port!r} is not a TCP "
                                   f"port (0-65535, or 0 or * for any free one); expected "
                                   f"tcp://HOST:PORT")
            try:
                if port in ("0", "*"):
                    self.sock.bind_to_random_port(host)
                else:
                    self.sock.bind(self.bind)
            except zmq.ZMQError as e:
                why = str(e.strerror).split(" (addr=")[0]
                raise ClusterError(f"bind address {self.bind}: cannot listen there ({why}); "
                                   f"expected tcp://HOST:PORT with a local HOST and a free "
                                   f"PORT") from None
            self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        except BaseException:
            self.close()
            raise

    # -- life cycle ---------------------------------------------------------
    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, typ, *exc) -> None:
        self.failed = typ is not None
        self.close()

    def spawn(self) -> None:
        """Start the local worker processes (``python -m asyncnet worker``)."""
        local_ep = self.endpoint.replace("0.0.0.0", "127.0.0.1").replace("[::]", "[::1]")
        env = dict(os.environ)
        # the workers import the same asyncnet as this process, wherever it lives
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"]
                                    if env.get("PYTHONPATH") else "")
        env[PARENT_ENV] = str(os.getpid())  # a worker whose parent is gone leaves
        for k in range(self.local):
            # -P: no working directory ahead of PYTHONPATH (run from a directory
            # that holds another asyncnet, the workers would import that one)
            cmd = [sys.executable, "-P", "-m", "asyncnet", "worker", "--connect", local_ep,
                   "--token", str(k), "--wait", str(max(self.join_timeout, 10.0))]
            if self.keys:
                cmd += ["--keys", self.keys]
            err = tempfile.TemporaryFile()
            try:
                p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=err, env=env)
            except BaseException:
                err.close()
                raise
            self.procs.append((p, err))

    def join(self) -> list[Member]:
        """Wait until ``n`` workers said HELLO; local ones first, by token."""
        deadline = time.monotonic() + self.join_timeout
        pending: list[tuple[tuple[int, int], Member]] = []
        while len(pending) < self.n:
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"only {len(pending)} of {self.n} workers joined within "
                    f"{self.join_timeout:g} s (coordinator at {self.endpoint})")
            for p, err in self.procs:
                if p.poll() is not None:
                    raise ClusterError(f"local worker pid {p.pid} exited with status "
                                       f"{p.returncode} before joining{_tail(err)}")
            if not self.sock.poll(TICK_MS):
                continue
            ident, *frames = self.sock.recv_multipart()
            if ident.endswith(b"/hb") or not frames or frames[0] != b"HELLO":
                continue
            hello = wire.as_map(wire.unpack(frames[1], 1 << 16), "HELLO")
            if ident in self.by_ident:
                continue  # said HELLO twice
            if hello.get("version") != __version__:
                self.sock.send_multipart([ident, b"STOP"])
                raise ClusterError(f"worker pid {hello.get('pid')} on {hello.get('host')} "
                                   f"runs asyncnet {hello.get('version')}, the coordinator "
                                   f"{__version__}")
            peer = hello.get("peer")
            m = Member(ident, str(hello.get("host")), int(hello.get("pid", 0)),
                       peer=peer if isinstance(peer, str) else None)
            tok = str(hello.get("token"))
            if m.host == socket.gethostname():
                m.proc = next((p for p, _ in self.procs if p.pid == m.pid), None)
            order = (0, int(tok)) if m.proc is not None and tok.isdigit() else (1, len(pending))
            pending.append((order, m))
            self.by_ident[ident] = m
        pending.sort(key=lambda om: om[0])
        for k, (_, m) in enumerate(pending):
            m.part = k
            m.last_seen = time.monotonic()
        pending = [m for _, m in pending]
        self.members = pending
        return pending

    def close(self) -> None:
        """Stop the workers, reap the processes, release every socket."""
        if self.sock is not None:
            for m in self.members:
                try:
                    self.sock.send_multipart([m.ident, b"STOP"], zmq.NOBLOCK)
                except zmq.ZMQError:
                    pass
        # a healthy worker leaves at once on STOP; after a failure do not wait long
        # (one deadline for them all, not one each); one that never joined was told
        # nothing (the run failed while it started) and goes at once
        joined = {m.pid for m in self.members if m.proc is not None}
        end = time.monotonic() + (0.5 if self.failed else 3)
        for p, err in self.procs:
            reap(p, max(0.0, end - time.monotonic()) if p.pid in joined else 0.0)
            err.close()
        self.procs = []
        if self.auth is not None:
            self.auth.stop()
            self.auth = None
        if self.sock is not None:
            self.sock.close(0)
            self.sock = None
        if self.ctx is not None:
            self.ctx.term()
            self.ctx = None

    # -- messages -----------------------------------------------------------
    def send(self, m: Member, frames: list[bytes]) -> None:
        """Send a multipart message to one worker."""
        send_frames(self.sock, [m.ident, *frames], copy=False)

    def collect(self, expect: list[Member], op: bytes) -> dict[int, list[bytes]]:
        """Wait for ``op`` from each member of ``expect``; return frames by part."""
        want = {m.ident for m in expect}
        got: dict[int, list[bytes]] = {}
        deadline = time.monotonic() + self.step_timeout
        while len(got) < len(want):
            if time.monotonic() > deadline:
                late = next(m for m in expect if m.part not in got)
                raise ClusterError(self.name(late) + f" is alive but has not answered for "
                                   f"{self.step_timeout:g} s while {self.where} (stuck?)")
            ready = self.sock.poll(TICK_MS)
            if ready:
                # (asking the socket whether more waits costs less than the
                # zmq.Again that ends the loop otherwise, once a window)
                while has_input(self.sock):
                    try:
                        ident, *frames = recv_frames(self.sock, NOBLOCK)
                    except zmq.Again:
                        break
                    hb = ident.endswith(b"/hb")
                    m = self.by_ident.get(ident[:-3] if hb else ident)
                    if m is None:
                        continue  # a stranger: not part of this run
                    m.last_seen = time.monotonic()
                    if hb or not frames or frames[0] == b"HB":
                        continue
                    if frames[0] == b"ERROR":
                        e = wire.as_map(wire.unpack(frames[1], 1 << 20), "ERROR")
                        raise ClusterError(self.name(m) + f" failed while {self.where}: "
                                           f"{e.get('type')}: {e.get('message')}")
                    if frames[0] != op or ident not in want or m.part in got:
                        raise ClusterError(self.name(m) + f" sent {frames[0][:16]!r} "
                                           f"while {self.where} (expected {op!r})")
                    got[m.part] = frames[1:]
            # the workers' processes polled at most every CHECK_EVERY s while answers
            # come (a small scenario's windows come every millisecond or so)
            if not ready or time.monotonic() - self._last_check >= CHECK_EVERY:
                self.check()
        return got

    def check(self) -> None:
        """Fail if a worker died or went silent; send our own heartbeat."""
        now = self._last_check = time.monotonic()
        for m in self.members:
            if m.proc is not None and m.proc.poll() is not None:
                err = next((e for p, e in self.procs if p is m.proc), None)
                raise WorkerLost(self.name(m) + f" died (exit status {m.proc.returncode}) "
                                   f"while {self.where}{_tail(err)}")
            if now - m.last_seen > self.timeout:
                raise WorkerLost(self.name(m) + f" stopped answering (silent for "
                                   f"{now - m.last_seen:.1f} s) while {self.where}")
        if now - self._last_beat > HEARTBEAT:
            self._last_beat = now
            for m in self.members:
                try:
                    self.sock.send_multipart([m.ident, b"HB"], zmq.NOBLOCK)
                except zmq.ZMQError:
                    pass

    def name(self, m: Member) -> str:
        """How errors name a worker: number, process, host and partition."""
        return (f"worker {m.part} (pid {m.pid} on {m.host}, "
                f"{self.describe_part(m.part)})")


def reap(p: subprocess.Popen, timeout: float) -> None:
    """Wait up to ``timeout`` s for ``p`` to end, then kill it and reap it.

    Past ``Popen.wait``: a Ctrl-C that lands inside ``Popen.poll`` (the
    coordinator polls its workers while it waits) can leave Popen's internal
    lock taken, and every later ``wait`` then times out on a process long
    gone. Here the child is reaped with ``os.waitpid`` itself.

    Parameters
    ----------
    p:
        a worker process this process started.
    timeout:
        how long it may take to leave by itself.
    """
    try:
        p.wait(timeout=timeout)
        return
    except subprocess.TimeoutExpired:
        pass
    if p.returncode is None:
        try:
            os.kill(p.pid, signal.SIGKILL)  # (Popen.kill would poll first, under that lock)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while p.returncode is None and time.monotonic() < deadline:
        try:
            pid, status = os.waitpid(p.pid, os.WNOHANG)
        except ChildProcessError:  # reaped already, by Popen or by us
            return
        if pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            return
        time.sleep(0.02)


def _tail(err) -> str:
    if err is None:
        return ""
    try:
        err.seek(0)
        lines = err.read().decode(errors="replace").strip().splitlines()
    except (OSError, ValueError):
        return ""
    return f": {lines[-1]}" if lines else ""
