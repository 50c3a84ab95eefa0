"""Checkpoint files: written atomically, read back with every check, the newest found.

A file is ``MAGIC``, a msgpack map (format, version, scenario id, ``t``, the
run's options, the agents' packed states, the rest) and a 32-byte BLAKE2b
digest of everything before it. A file cut anywhere, with any byte changed,
or of another scenario is refused with the reason. Writes go to a temporary
file, are fsynced and renamed, so a checkpoint is whole or absent; the last
``KEEP`` are kept. What goes into the map is :mod:`asyncnet.checkpoint`'s.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import msgpack

from .ckstate import StateError
from .outputs import OutputError, lock_alone, write_whole

FORMAT = "asyncnet-checkpoint"
VERSION = 1
MAGIC = b"\x89ASYNCNET-CKPT\r\n"
KEEP = 2
"""Complete checkpoints kept in a directory (older ones are removed)."""
_DIGEST = 32
_MAX_FILE = 1 << 36


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, altered, or of another run."""


def file_name(t: int) -> str:
    """The checkpoint file for instant ``t``: names sort by time.

    Parameters
    ----------
    t:
        the instant, in quanta.

    Returns
    -------
    The file name.
    """
    return f"ck-{t:020d}.ckpt"


def instant_of(path: str) -> int:
    """The instant (quanta) a checkpoint file is of, read from its name (:func:`file_name`).

    Parameters
    ----------
    path:
        a checkpoint file's path.

    Returns
    -------
    The instant, in quanta.
    """
    return int(os.path.basename(path)[len("ck-"):-len(".ckpt")])


def write(directory: str, body: dict, replace: bool = False) -> str:
    """Write a checkpoint atomically; keep the newest ``KEEP`` up to its instant.

    Checkpoints of later instants are removed: they belong to another
    timeline (a run resumed from an older checkpoint, or an earlier run).

    Parameters
    ----------
    directory:
        the checkpoint directory (created if missing).
    body:
        the checkpoint's map (``t`` among its keys).
    replace:
        remove every other checkpoint of the directory (a new run's first).

    Returns
    -------
    The file's path.
    """
    os.makedirs(directory, exist_ok=True)
    _hold(directory)
    data = MAGIC + msgpack.packb({"format": FORMAT, "version": VERSION, **body},
                                 use_bin_type=True)
    data += hashlib.blake2b(data, digest_size=_DIGEST).digest()
    path = os.path.join(directory, file_name(body["t"]))
    tmp = os.path.join(directory, f".tmp-{os.getpid()}-{file_name(body['t'])}")
    try:
        write_whole(path, lambda f: f.write(data), "the checkpoint", tmp)
    except OutputError as e:  # a full disk: the checkpoints before it are whole
        done = [p for p in candidates(directory) if os.path.basename(p) < file_name(body["t"])]
        then = (f"the last whole checkpoint is {os.path.basename(done[0])}: make room, then "
                f"`asyncnet resume {directory}`") if done else "no checkpoint was written"
        raise CheckpointError(f"{e}; the run stopped, {then}") from None
    keep = [p for p in candidates(directory) if os.path.basename(p) <= file_name(body["t"])]
    for old in set(candidates(directory)) - set(keep[:1 if replace else KEEP]):
        os.remove(old)
    for stale in glob.glob(os.path.join(directory, ".tmp-*")):
        if not stale.startswith(os.path.join(directory, f".tmp-{os.getpid()}-")):
            with contextlib.suppress(OSError):
                os.remove(stale)
    return path


_HELD: dict[str, BinaryIO] = {}
"""Checkpoint directories this process writes into: each one's lock file, open."""


def _hold(directory: str) -> None:
    """Lock ``directory`` for this process's run: another run checkpointing into it
    would remove this run's checkpoints (a new run's first replaces the others)."""
    key = os.path.realpath(directory)
    if key in _HELD:
        return
    f = open(os.path.join(directory, ".lock"), "ab")
    try:
        lock_alone(f)
    except BlockingIOError:
        f.close()
        raise CheckpointError(f"{directory}: another asyncnet process writes its checkpoints "
                              f"here; this run stopped without touching them (give it "
                              f"another checkpoint directory)") from None
    _HELD[key] = f


@contextlib.contextmanager
def held(directory: str | None) -> Iterator[None]:
    """Hold ``directory``'s lock for a run from before it opens its log to its end.

    The lock was first taken at the run's first checkpoint, after its event
    log had been cut and rewritten: a run refused for a directory another
    run holds had already destroyed the log it was given. Taken here, the
    refusal comes before any output is touched. A directory that does not
    exist yet is taken at its first checkpoint, as before (nothing of
    another run's is in it to lose).

    Parameters
    ----------
    directory:
        the run's checkpoint directory (``None``: no checkpoints, nothing held).

    Returns
    -------
    A context manager; the lock is released when it exits.
    """
    if directory and os.path.isdir(directory):
        _hold(directory)
    try:
        yield
    finally:
        release(directory)


def release(directory: str | None) -> None:
    """Let another process write checkpoints into ``directory`` (the run is over).

    Parameters
    ----------
    directory:
        a directory :func:`write` wrote into (``None`` or another: nothing happens).
    """
    f = _HELD.pop(os.path.realpath(directory), None) if directory else None
    if f is not None:
        f.close()  # closing drops the lock


def candidates(directory: str) -> list[str]:
    """The checkpoint files of a directory, newest first.

    Parameters
    ----------
    directory:
        the checkpoint directory.

    Returns
    -------
    Their paths.
    """
    return sorted(glob.glob(os.path.join(directory, "ck-*.ckpt")), reverse=True)


def read(path: str, expect_id: str | None = None) -> dict:
    """Read and check one checkpoint file.

    Parameters
    ----------
    path:
        the file.
    expect_id:
        the scenario id it must carry (``None``: any).

    Returns
    -------
    The checkpoint's map (agents' states still packed).

    Raises
    ------
    CheckpointError
        cut short, altered, not a checkpoint, of another version or scenario.
    """
    size = os.path.getsize(path)
    if size > _MAX_FILE:
        raise CheckpointError(f"{path}: {size:,} bytes, larger than any checkpoint")
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(MAGIC):
        raise CheckpointError(f"{path}: not an asyncnet checkpoint" if len(data) >= len(MAGIC)
                              else f"{path}: cut short ({len(data)} bytes)")
    if len(data) < len(MAGIC) + _DIGEST + 1:
        raise CheckpointError(f"{path}: cut short ({len(data)} bytes)")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.blake2b(body, digest_size=_DIGEST).digest() != digest:
        raise CheckpointError(f"{path}: cut short or altered (its digest does not match)")
    n = len(body)
    try:
        ck = msgpack.unpackb(body[len(MAGIC):], raw=False, max_bin_len=n, max_str_len=n,
                             max_array_len=n, max_map_len=n, max_ext_len=0)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
        raise CheckpointError(f"{path}: malformed ({e})") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an asyncnet checkpoint")
    if ck.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {ck.get('version')!r} "
                              f"(this asyncnet reads version {VERSION})")
    for key, typ in (("t", int), ("scenario_id", str), ("meta", dict), ("agents", dict),
                     ("global", bytes)):
        if not isinstance(ck.get(key), typ):
            raise CheckpointError(f"{path}: malformed (its {key!r})")
    if expect_id is not None and ck["scenario_id"] != expect_id:
        raise CheckpointError(f"{path}: a checkpoint of another scenario or seed "
                              f"({ck['meta'].get('scenario_path', '?')})")
    return ck


@dataclass
class Found:
    """The checkpoint a resume starts from, and what was refused on the way."""

    path: str
    ck: dict
    refused: list[str]


def latest(directory: str, expect_id: str | None = None,
           accept: Callable[[str, dict], None] | None = None) -> Found:
    """The newest complete checkpoint of ``directory``; older ones as fall-backs.

    Parameters
    ----------
    directory:
        the checkpoint directory.
    expect_id:
        the scenario id the checkpoint must carry.
    accept:
        a further check of a file's map (e.g. the log's prefix), given the
        file's path and the map; raises ``CheckpointError``.

    Returns
    -------
    The :class:`Found` checkpoint, with the reasons newer ones were refused.
    """
    if not os.path.isdir(directory):
        raise CheckpointError(f"{directory}: no such checkpoint directory")
    files = candidates(directory)
    if not files:
        raise CheckpointError(f"{directory}: no checkpoint in it (the run wrote none "
                              f"before it stopped: run it again)")
    refused = []
    for p in files:
        try:
            ck = read(p, expect_id)
            if accept is not None:
                accept(p, ck)
            return Found(p, ck, refused)
        except (CheckpointError, StateError, OSError) as e:
            refused.append(str(e))
    # one reason once (a missing log refuses every checkpoint alike), in the order met
    raise CheckpointError("no usable checkpoint: " + "; ".join(dict.fromkeys(refused)))
