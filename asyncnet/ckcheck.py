"""A checkpoint's fields checked on load, against each other and against its event log.

A checkpoint's digest proves it was not cut or damaged, not that its fields
make sense: one edited and its digest recomputed (or written by a buggy
tool) failed deep in the resumed run (``TypeError`` in the log check, "a
wake-up in the past") or, worse, went on into a log whose counts no longer
described its bytes. :func:`check_fields` refuses such a checkpoint with the
field it is about; :func:`check_log_counts` compares the log position's
counts with the records really in the log's prefix; :func:`completed` tells
a run that already reached its end, which a resume must not write again.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import numpy as np

from .ckfile import CheckpointError, instant_of
from .logformat import CHECKPOINT, LogError
from .messages import QUANTA, to_quanta
from .scenario_toml import MAX_DURATION


class RunComplete(CheckpointError):
    """The checkpointed run already reached its end: there is nothing to resume."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_time(v: Any) -> bool:  # (beyond MAX_DURATION its quanta overflowed)
    return _is_number(v) and 0 < v <= MAX_DURATION and to_quanta(v) > 0


def _opt_str(v: Any) -> bool:
    return v is None or isinstance(v, str)


def check_fields(path: str, ck: dict) -> None:
    """Refuse a checkpoint whose fields have the wrong types, ranges or disagree.

    Parameters
    ----------
    path:
        the checkpoint file (its name carries its instant), for messages.
    ck:
        its map, as :func:`asyncnet.ckfile.read` checked its top-level types.

    Raises
    ------
    CheckpointError
        ``<path>: malformed (<field>: <why>)``.
    """
    def bad(field: str, why: str) -> CheckpointError:
        return CheckpointError(f"{path}: malformed ({field}: {why})")

    t, m = ck["t"], ck["meta"]
    if os.path.basename(path).startswith("ck-") and instant_of(path) != t:
        raise bad("t", f"{t} quanta, not the instant its file name says "
                       f"({instant_of(path)} quanta)")
    for key, ok, what in (
            ("scenario_path", lambda v: isinstance(v, str), "a path"),
            ("scenario_text", lambda v: isinstance(v, str), "the scenario's text"),
            ("seed", _is_int, "an integer"),
            ("duration", _is_time, "a time of a run"),
            ("checkpoint_every", _is_time, "a time of a run"),
            ("checkpoint_dir", _opt_str, "a path or nil"),
            ("log", _opt_str, "a path or nil"), ("log_file", _opt_str, "a path or nil"),
            ("save_state", _opt_str, "a path or nil"),
            ("save_state_file", _opt_str, "a path or nil"),
            ("recorder", lambda v: v is None or isinstance(v, dict), "a map or nil")):
        if not ok(m.get(key)):
            raise bad(f"meta.{key}", f"{m.get(key)!r} is not {what}"[:200])
    if (m["log"] is None) != (m["log_file"] is None):
        raise bad("meta.log", "the log's path and its absolute path disagree")
    step = to_quanta(m["checkpoint_every"])
    if t <= 0 or t % step or t >= to_quanta(m["duration"]):
        raise bad("t", f"{t / QUANTA:g} is no checkpoint instant of a run of "
                       f"{m['duration']:g} checkpointed every {m['checkpoint_every']:g}")
    if not all(isinstance(k, str) and isinstance(v, bytes) for k, v in ck["agents"].items()):
        raise bad("agents", "not a map of agent names to packed states")
    if "wall" in ck and not (_is_number(ck["wall"]) and ck["wall"] >= 0):
        raise bad("wall", f"{ck['wall']!r} is not a number of seconds")
    pos = ck.get("log")
    if (pos is None) != (m["log_file"] is None):
        raise bad("log", "a log position without a log" if pos is not None
                  else "no log position, but the run wrote a log")
    if pos is not None:
        _check_position(pos, t, bad)


def _check_position(pos: Any, t: int, bad) -> None:
    """The log position's own consistency (its counts against the log: :func:`check_log_counts`)."""
    keys = ("pos", "count", "by_kind", "t_last", "next_ck", "digest")
    if not isinstance(pos, dict) or set(pos) != set(keys):
        raise bad("log", f"not a log position (keys {', '.join(keys)})")
    for key in ("pos", "count", "t_last", "next_ck"):
        if not _is_int(pos[key]) or pos[key] < 0:
            raise bad(f"log.{key}", f"{pos[key]!r} is not a count")
    bk = pos["by_kind"]
    if not (isinstance(bk, list) and len(bk) == 3 and all(_is_int(k) and k >= 0 for k in bk)
            and sum(bk) == pos["count"]):
        raise bad("log.by_kind", f"{bk!r} are not 3 counts adding up to log.count "
                                 f"{pos['count']}"[:200])
    if pos["t_last"] >= t or (pos["count"] == 0) != (pos["t_last"] == 0):
        raise bad("log.t_last", f"{pos['t_last'] / QUANTA:g} is not the time of the last "
                                f"record before the checkpoint's t={t / QUANTA:g}")
    # the writer seals its log every CHECKPOINT records: the next seal follows the count
    if pos["next_ck"] != CHECKPOINT * (pos["count"] // CHECKPOINT + 1):
        raise bad("log.next_ck", f"{pos['next_ck']} does not follow log.count "
                                 f"{pos['count']}")
    if not (isinstance(pos["digest"], str) and len(pos["digest"]) == 32
            and all(c in "0123456789abcdef" for c in pos["digest"])):
        raise bad("log.digest", "not a hex digest")


def prefix_counts(log_file: str, t: int) -> tuple[int, list[int], int] | None:
    """The records of a log before instant ``t``: what a checkpoint at ``t`` counted.

    A checkpoint is taken at an instant boundary with every earlier instant
    written whole, so its log prefix holds exactly the records that arrived
    before ``t``.

    Parameters
    ----------
    log_file:
        the event log (its prefix already checked against the checkpoint's digest).
    t:
        the checkpoint's instant, in quanta.

    Returns
    -------
    ``(count, by_kind, t_last)``, or ``None`` if the log cannot be read that far.
    """
    from .logcols import read_columns
    from .logfile import open_log
    count, by_kind, t_last = 0, np.zeros(3, dtype=np.int64), 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # as columns, payloads undecoded: ~3x the records a second of decoding each
            for block in read_columns(open_log(log_file, strict=False)):
                ts = block.t_arrive  # canonical order: times never go back
                k = int(np.searchsorted(ts, t, side="left"))
                if k:
                    count += k
                    by_kind += np.bincount(block.kind[:k], minlength=3)[:3]
                    t_last = int(ts[k - 1])
                if k < len(ts):
                    break
    except (LogError, OSError):
        return None
    return count, [int(x) for x in by_kind], t_last


def check_log_counts(path: str, ck: dict, log_file: str) -> None:
    """Refuse a checkpoint whose log counts are not those of the log's prefix.

    The digest of the prefix is checked elsewhere (``checkpoint.check_log``);
    the counts are not in it, and a resumed writer goes on from them: a
    wrong count made a log whose footer and seals described other records.

    Parameters
    ----------
    path:
        the checkpoint file, for messages.
    ck:
        its map (its ``log`` position checked by :func:`check_fields`).
    log_file:
        the event log it goes with.

    Raises
    ------
    CheckpointError
        the counts differ (naming both).
    """
    got = prefix_counts(log_file, ck["t"])
    if got is None:
        return  # unreadable past its checked prefix: the resume says so itself
    pos = ck["log"]
    want = (pos["count"], list(pos["by_kind"]), pos["t_last"])
    if tuple(got) != want:
        raise CheckpointError(f"{path}: its log position says {pos['count']:,} records "
                              f"{pos['by_kind']} up to t={pos['t_last'] / QUANTA:g}, but "
                              f"{log_file} has {got[0]:,} {got[1]} up to "
                              f"t={got[2] / QUANTA:g} before t={ck['t'] / QUANTA:g}")


def completed(log_file: str | None) -> bool:
    """Whether a checkpointed run's log says the run reached its end.

    Parameters
    ----------
    log_file:
        the run's event log (its prefix already matched to the checkpoint), or ``None``.

    Returns
    -------
    ``True`` if the log ends with a footer of a complete run and every
    digest in it matches.
    """
    if not log_file or not os.path.isfile(log_file):
        return False
    with open(log_file, "rb") as f:  # a footer near the end first: no full read for nothing
        f.seek(max(0, os.path.getsize(log_file) - (1 << 16)))
        if b"\xa8complete\xc3" not in f.read():
            return False
    from .logfile import open_log
    try:
        log = open_log(log_file, strict=False)
        verified, _ = log.verify_digest()
    except (LogError, OSError):
        return False
    return verified and log.complete
