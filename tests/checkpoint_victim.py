"""A run that kills itself (SIGKILL), for the checkpoint tests — not a test module.

    python tests/checkpoint_victim.py --at T  asyncnet run ARGS...     # at simulated time T
    python tests/checkpoint_victim.py --write K MODE asyncnet run ...  # in checkpoint write K

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


def kill_in_write(k: int, mode: str) -> None:
    orig, calls = ckp.write, [0]

    def write(directory, body):
        calls[0] += 1
        if calls[0] < k:
            return orig(directory, body)
        if mode == "half":
            os.makedirs(directory, exist_ok=True)
            with open(os.path.join(directory, f".tmp-{os.getpid()}-x.ckpt"), "wb") as f:
                f.write(b"\x89ASYNCNET-CKPT\r\n" + b"\0" * 100)
                f.flush()
                os.fsync(f.fileno())
            die()
        path = orig(directory, body)
        die()
        return path

    ckp.write = write


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[0] == "--at":
        kill_at(float(argv[1]))
        argv = argv[2:]
    elif argv[0] == "--write":
        kill_in_write(int(argv[1]), argv[2])
        argv = argv[3:]
    assert argv[0] == "asyncnet"
    sys.exit(main(argv[1:]))
