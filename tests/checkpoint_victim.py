"""A run that kills itself (SIGKILL), for the checkpoint tests — not a test module.

    python tests/checkpoint_victim.py --at T  asyncnet run ARGS...     # at simulated time T
    python tests/checkpoint_victim.py --write K MODE asyncnet run ...  # in checkpoint write K
    python tests/checkpoint_victim.py --kill-worker T K asyncnet run ... --workers N

``--at``: a probe at ``T`` kills the process between two events (the log's
last instant may be half written, as after a crash). ``--write``: the K-th
checkpoint write is killed ``half`` way through its temporary file, or
``renamed`` after the rename (before older checkpoints are removed).
"""

from __future__ import annotations

import os
import signal
import sys

import asyncnet.checkpoint as ckp
import asyncnet.simulation as sim
from asyncnet.cli import main


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_at(t: float) -> None:
    orig = sim.attach_analyses

    def attach(sc, ctx):
        out = orig(sc, ctx)
        ctx.engine.at(t, lambda e, tt: die())
        return out

    sim.attach_analyses = attach


def kill_worker_at(t: float, k: int) -> None:
    """At simulated time ``t`` (a coordinator probe), SIGKILL the ``k``-th worker."""
    import asyncnet.cluster.coordinator as coord
    orig = coord.attach_analyses

    done = []  # once only: a restarted run must not lose its worker again

    def kill(e, tt):
        if not done:
            done.append(tt)
            os.kill(_workers()[k], signal.SIGKILL)

    def attach(sc, ctx):
        out = orig(sc, ctx)
        ctx.engine.at(t, kill)
        return out

    coord.attach_analyses = attach


def _workers() -> list[int]:
    """Child processes of this one running ``asyncnet worker`` (by pid)."""
    me, out = str(os.getpid()), []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = f.read().rsplit(")", 1)[1].split()[1]
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if ppid == me and b"worker" in cmd:
            out.append(int(pid))
    return sorted(out)


def kill_in_write(k: int, mode: str) -> None:
    orig, calls = ckp.write, [0]

    def write(directory, body, replace=False):
        calls[0] += 1
        if calls[0] < k:
            return orig(directory, body, replace)
        if mode == "half":
            os.makedirs(directory, exist_ok=True)
            with open(os.path.join(directory, f".tmp-{os.getpid()}-x.ckpt"), "wb") as f:
                f.write(b"\x89ASYNCNET-CKPT\r\n" + b"\0" * 100)
                f.flush()
                os.fsync(f.fileno())
            die()
        path = orig(directory, body, replace)
        die()
        return path

    ckp.write = write


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[0] == "--at":
        kill_at(float(argv[1]))
        argv = argv[2:]
    elif argv[0] == "--kill-worker":
        kill_worker_at(float(argv[1]), int(argv[2]))
        argv = argv[3:]
    elif argv[0] == "--write":
        kill_in_write(int(argv[1]), argv[2])
        argv = argv[3:]
    assert argv[0] == "asyncnet"
    sys.exit(main(argv[1:]))
