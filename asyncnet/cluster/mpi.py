"""The MPI backend: ``mpiexec -n N asyncnet run SCENARIO --mpi``.

Rank 0 is the coordinator (it partitions, drives the windows, merges the
log segments and writes the log: the same :mod:`.coordinator` code as the
ZeroMQ runtime); ranks 1..N-1 are the workers, one partition each, running
the same :class:`~.part.PartRunner`. Control messages (INIT, RUN, DONE, ...)
go between rank 0 and a worker with tag ``CTRL``; messages that cross the
cut go straight from worker to worker with tag ``PEER`` — MPI keeps the
messages of one sender and tag in order, so a worker reads exactly one frame
per neighbour per window. Every multipart message travels as one msgpack
array of byte strings (no pickle). Waits poll with a short sleep rather than
spin, so ranks that share cores with other work leave them free.

``mpi4py`` and an MPI library come from the ``mpi`` extra (``pip install
'asyncnet[mpi]'`` installs ``mpi4py`` and MPICH's ``mpiexec``).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import msgpack

from ..numerics import numeric_stack
from . import wire
from .errors import ClusterError
from .part import PartError, PartRunner

CTRL, PEER = 1, 2
"""MPI tags: coordinator <-> worker control, worker -> worker messages."""


class MPIUnavailable(ClusterError):
    """mpi4py (or an MPI library) is not installed, or the job is too small."""


def comm_world():
    """``MPI.COMM_WORLD``; a clear error if mpi4py or MPI is missing."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise MPIUnavailable(f"--mpi needs mpi4py and an MPI library ({e}); install them "
                             f"with: pip install 'asyncnet[mpi]'") from None
    return MPI.COMM_WORLD


def _join(frames: list[bytes]) -> bytes:
    return msgpack.packb([bytes(f) for f in frames], use_bin_type=True)


def _split(buf: bytes) -> list[bytes]:
    got = wire.unpack(buf)
    if not isinstance(got, list) or not all(isinstance(f, bytes) for f in got):
        raise wire.WireError("an MPI message must be an array of byte strings")
    return got


class _Wait:
    """Polls ``ready()``: spinning for ``SPIN`` seconds (answers within a window
    come fast), then sleeping, longer and longer up to 1 ms, between tries.

    Each pause is a quarter longer than the last, so a wait overshoots what it
    waits for by about a quarter, not by as long again: with pauses doubling, a
    small scenario's windows (an instant each) took 3.4 ms each on 3 ranks, a
    wait or three a window each sleeping twice what it needed; with a quarter,
    1.0 ms, and the ranks' CPU time fell too (the quickstart: 27.7 → 8.3 s,
    16.5 → 9.7 CPU-s).
    """

    SPIN = 0.0

    def __init__(self):
        self.since: float | None = None
        self.pause = 5e-5

    def __call__(self, ready) -> bool:
        if ready():
            self.since = None
            self.pause = 5e-5
            return True
        now = time.perf_counter()
        if self.since is None:
            self.since = now
        elif now - self.since > self.SPIN:
            time.sleep(self.pause)
            self.pause = min(1e-3, self.pause * 1.25)
        return False


class _Link:
    """Sending and receiving whole multipart messages on one communicator."""

    def __init__(self, comm):
        from mpi4py import MPI
        self.MPI = MPI
        self.comm = comm
        self.pending: list = []  # (buffer, request) of sends not yet complete
        self.status = MPI.Status()

    def send(self, data: bytes, dest: int, tag: int) -> None:
        req = self.comm.Isend([data, self.MPI.BYTE], dest=dest, tag=tag)
        self.pending.append((data, req))
        if len(self.pending) > 64:
            self.reap()

    def reap(self) -> None:
        self.pending = [(d, r) for d, r in self.pending if not r.Test()]

    def flush(self) -> None:
        for _, r in self.pending:
            r.Wait()
        self.pending = []

    def poll(self, source: int, tag: int) -> bool:
        self.reap()
        return self.comm.Iprobe(source=source, tag=tag, status=self.status)

    def recv(self, source: int, tag: int) -> tuple[int, bytes]:
        """The message ``poll`` found: (its source, its bytes)."""
        st = self.status
        src = st.Get_source() if source == self.MPI.ANY_SOURCE else source
        buf = bytearray(st.Get_count(self.MPI.BYTE))
        self.comm.Recv([buf, self.MPI.BYTE], source=src, tag=tag)
        return src, bytes(buf)


@dataclass
class _Member:
    part: int
    rank: int
    host: str = "?"
    pid: int = 0
    peer: str | None = None


class MPICluster:
    """The coordinator's side on rank 0, with the interface of ``transport.Cluster``.

    Parameters
    ----------
    workers:
        The number of workers: the job's size less one.
    step_timeout:
        Seconds without an answer from a worker before the run stops.
    """

    def __init__(self, workers: int, step_timeout: float = 600.0):
        comm = comm_world()
        size = comm.Get_size()
        if size < 2:
            raise MPIUnavailable("--mpi needs at least 2 MPI ranks (rank 0 coordinates, the "
                                 "others are workers): mpiexec -n N asyncnet run ... --mpi")
        if workers != size - 1:
            raise ClusterError(f"{workers} workers asked for, but the MPI job has "
                               f"{size - 1} worker ranks")
        self.link = _Link(comm)
        MPICluster.took_workers = True  # from here on, __exit__ stops them
        self.n = self.local = workers
        self.timeout = 5.0
        self.step_timeout = step_timeout
        self.endpoint = f"mpi:{size}"
        self.members = [_Member(part=r - 1, rank=r) for r in range(1, size)]
        self.by_rank = {m.rank: m for m in self.members}
        self.where = "starting"
        self.describe_part = lambda k: f"partition {k}"

    took_workers = False
    """Whether this process made an MPICluster (which stops the workers when it ends)."""

    def __enter__(self) -> MPICluster:
        return self

    def __exit__(self, typ, *exc) -> None:
        for m in self.members:  # the workers leave on STOP, after a failure too
            self.link.send(_join([b"STOP"]), m.rank, CTRL)
        self.link.flush()

    def spawn(self) -> None:
        """Nothing to start: mpiexec started the workers."""

    def join(self) -> list[_Member]:
        """The workers are the other ranks; nothing to wait for."""
        return self.members

    def send(self, m: _Member, frames: list[bytes]) -> None:
        """Send a multipart message to one worker.

        Parameters
        ----------
        m:
            the worker.
        frames:
            the message's parts.
        """
        self.link.send(_join(frames), m.rank, CTRL)

    def collect(self, expect: list[_Member], op: bytes) -> dict[int, list[bytes]]:
        """Wait for one message from each of some workers.

        Parameters
        ----------
        expect:
            the workers to hear from.
        op:
            the message they must send (anything else stops the run).

        Returns
        -------
        ``{partition: frames after op}``.
        """
        want = {m.rank for m in expect}
        got: dict[int, list[bytes]] = {}
        deadline = time.monotonic() + self.step_timeout
        wait = _Wait()
        any_source = self.link.MPI.ANY_SOURCE
        while len(got) < len(want):
            if not wait(lambda: self.link.poll(any_source, CTRL)):
                if time.monotonic() > deadline:
                    late = next(m for m in expect if m.part not in got)
                    raise ClusterError(self.name(late) + f" has not answered for "
                                       f"{self.step_timeout:g} s while {self.where}")
                continue
            src, buf = self.link.recv(any_source, CTRL)
            m = self.by_rank.get(src)
            frames = _split(buf)
            if m is None or not frames:
                raise ClusterError(f"rank {src} sent a malformed message while {self.where}")
            if frames[0] == b"ERROR":
                e = wire.as_map(wire.unpack(frames[1], 1 << 20), "ERROR")
                raise ClusterError(self.name(m) + f" failed while {self.where}: "
                                   f"{e.get('type')}: {e.get('message')}")
            if frames[0] != op or src not in want or m.part in got:
                raise ClusterError(self.name(m) + f" sent {frames[0][:16]!r} while "
                                   f"{self.where} (expected {op!r})")
            if op == b"READY":
                hello = wire.as_map(wire.unpack(frames[1]), "READY")
                m.host, m.pid = str(hello.get("host", "?")), int(hello.get("pid", 0))
            got[m.part] = frames[1:]
        return got

    def name(self, m: _Member) -> str:
        """How errors name a worker.

        Parameters
        ----------
        m:
            the worker.

        Returns
        -------
        Its number, MPI rank, host and partition, in words.
        """
        return f"worker {m.part} (MPI rank {m.rank} on {m.host}, {self.describe_part(m.part)})"


@contextmanager
def workers_released() -> Iterator[None]:
    """Around rank 0's command: if it fails before an :class:`MPICluster` took the
    workers (a bad checkpoint, an output that cannot be written), they are told to
    stop, so the job ends with rank 0's error instead of waiting forever."""
    try:
        yield
    except BaseException:
        if not MPICluster.took_workers:
            stop_workers()
        raise


def stop_workers() -> None:
    """Rank 0, before any run took the workers: tell every worker rank to leave.

    (``comm.Abort`` would end the job too, but may kill it before the error that
    rank 0 printed has been forwarded: the user would see nothing.)
    """
    comm = comm_world()
    link = _Link(comm)
    for rank in range(1, comm.Get_size()):
        link.send(_join([b"STOP"]), rank, CTRL)
    link.flush()


def serve_worker() -> int:
    """Ranks 1..N-1: serve the run that rank 0 coordinates; return the exit status."""
    comm = comm_world()
    link = _Link(comm)
    wait = _Wait()

    def recv_ctrl() -> list[bytes]:
        while not wait(lambda: link.poll(0, CTRL)):
            pass
        return _split(link.recv(0, CTRL)[1])

    def send_ctrl(frames: list[bytes]) -> None:
        link.send(_join(frames), 0, CTRL)

    def take(core: PartRunner, window: int) -> list[bytes]:
        # the neighbours' frames of a window, one per neighbour, in order (once)
        if not core.wants_frames(window):
            return []
        t0 = time.perf_counter()
        frames = []
        for p in core.peers:
            while not wait(lambda p=p: link.poll(p + 1, PEER)):
                pass
            frames.append(link.recv(p + 1, PEER)[1])
        core.stats["wait_seconds"] += time.perf_counter() - t0
        core.taken = window
        return frames

    core = None
    finished = False
    try:
        msg = recv_ctrl()
        if msg[0] == b"STOP":
            return 0
        if msg[0] != b"INIT":
            raise PartError(f"expected INIT, got {msg[0][:16]!r}")
        core = PartRunner(wire.as_map(wire.unpack(msg[1]), "INIT"))
        send_ctrl([b"READY", wire.pack({"next_t": core.next_t(), "host": socket.gethostname(),
                                        "pid": os.getpid(), "numerics": numeric_stack()})])
        while True:
            msg = recv_ctrl()
            op = msg[0]
            if op == b"RUN":
                head = wire.as_map(wire.unpack(msg[1]), "RUN")
                w = int(head["w"])
                frames = take(core, w - 1)
                t0 = time.perf_counter()
                done, segment, out = core.run_window(int(head["end"]), int(head["trace"]),
                                                     frames, head.get("watch"))
                for p, frame in out.items():
                    link.send(frame, p + 1, PEER)
                send_ctrl([b"DONE", wire.pack(done), *segment])
                core.stats["busy_seconds"] += time.perf_counter() - t0
            elif op == b"CKPT":  # the messages in flight to us, then our agents' states
                head = wire.as_map(wire.unpack(msg[1]), "CKPT")
                send_ctrl([b"CKSTATE", wire.pack(core.checkpoint(take(core, int(head["w"]) - 1)))])
            elif op == b"STATE":
                head = wire.as_map(wire.unpack(msg[1]), "STATE")
                send_ctrl([b"STATES", wire.pack(core.states(list(head["agents"])))])
            elif op == b"FINISH":
                head = wire.as_map(wire.unpack(msg[1]), "FINISH")
                # the last window's frames (arriving after the end) are read and
                # dropped, so no send is left waiting for its receiver
                take(core, core.stats["windows"] - 1)
                send_ctrl([b"RESULT", wire.pack(core.results(bool(head.get("state"))))])
                finished = True
            elif op == b"STOP":
                return 0
            else:
                raise PartError(f"unexpected message {op[:16]!r}")
    except Exception as e:  # reported to rank 0, which names this worker and stops the run
        text = str(e) if not isinstance(e, OSError) else f"{e.filename}: {e.strerror}"
        send_ctrl([b"ERROR", wire.pack({"type": type(e).__name__, "message": text})])
        # wait for the coordinator's STOP so the job ends in order
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if wait(lambda: link.poll(0, CTRL)) and _split(link.recv(0, CTRL)[1])[0] == b"STOP":
                break
        print(f"asyncnet: error: MPI worker rank {comm.Get_rank()}: {text}", file=sys.stderr)
        return 1
    finally:
        if finished:
            link.flush()
        else:  # stopped early: a peer may never read what we sent
            for _, r in link.pending:
                r.Cancel()
            link.pending = []
