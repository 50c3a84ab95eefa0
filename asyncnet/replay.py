"""Replay a log: re-run the scenario it embeds and compare every message."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import msgpack
import numpy as np

from .logencode import RecordEncoder
from .logfile import open_log
from .logtools import engine_of, scenario_of
from .messages import KIND_NAMES, QUANTA, decode_ext
from .numerics import numeric_stack


class _Diverged(Exception):
    pass


def verify(path: str, progress: Callable[[float], None] | None = None,
           make_progress: Callable[[float], Callable[[float], None]] | None = None) -> dict:
    """Re-run the log's scenario; compare record by record, then the digest.

    The log is streamed (memory does not grow with it). A log cut short (an
    interrupt, a crash) is compared as the prefix it is.

    Parameters
    ----------
    path:
        the event log.
    progress:
        called with the simulated time as the re-run advances.
    make_progress:
        alternatively, called once with the scenario's duration; returns
        the progress callable (so a caller need not load the scenario).

    Returns
    -------
    ``{"identical": bool, "compared": n, "truncated": bool, "interrupted":
    bool, "digest_ok": bool, "divergence": str | None}``.
    """
    log = open_log(path, strict=False)
    sc = scenario_of(log)
    eng, _, _ = engine_of(log, sc)
    if make_progress is not None:
        progress = make_progress(sc.duration)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = log.raw()
        enc = RecordEncoder(eng.names)
        state = {"n": 0, "div": None, "exhausted": False}

        def compare(packed: list[bytes]) -> None:
            for b in packed:
                try:
                    rec, expected = next(theirs)
                except StopIteration:
                    state["exhausted"] = True
                    raise _Diverged from None
                if b != expected:
                    mine = msgpack.unpackb(b, raw=False, ext_hook=decode_ext)
                    state["div"] = (f"record {state['n']}: log has {_fmt(rec, log.agents)}, "
                                    f"replay gives {_fmt(mine, log.agents)}"
                                    + _rounding(rec, mine))
                    raise _Diverged
                state["n"] += 1

        eng.sinks.append(lambda batch: compare(enc.add(batch)))
        try:
            eng.run(sc.duration, progress)
            compare(enc.flush())
            extra = next(theirs, None)
            if extra is not None:
                state["div"] = (f"record {state['n']}: log has {_fmt(extra[0], log.agents)}, "
                                "replay has no more messages")
        except _Diverged:
            pass
        # read the rest, so the footer, the digests and any truncation are known
        for _ in theirs:
            pass
    prefix = log.truncated or log.interrupted
    if state["exhausted"] and not prefix and state["div"] is None:
        state["div"] = f"record {state['n']}: replay has more messages than the log"
    identical = state["div"] is None
    if identical and log.altered is not None:
        identical = False
        state["div"] = f"the records match but {log.altered}"
    elif log.altered is not None:
        state["div"] += f"; and {log.altered}"
    return {"identical": identical, "compared": state["n"], "truncated": log.truncated,
            "interrupted": log.interrupted, "digest_ok": log.verified,
            "divergence": state["div"]}


def _rounding(theirs: list, mine: list) -> str:
    """Why two records that differ only in their payloads' last bits differ, or ''."""
    if list(theirs[:6]) != list(mine[:6]):
        return ""
    try:
        a = np.asarray(theirs[6], dtype=np.float64)
        b = np.asarray(mine[6], dtype=np.float64)
    except (TypeError, ValueError):
        return ""
    if a.shape != b.shape or not a.size or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return ""
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))))
    rel = float(np.max(np.abs(a - b))) / scale if scale else 0.0
    if rel > 1e-9:
        return ""
    return (f" — the payloads differ by {rel:.1e} (relative): rounding, not a different "
            f"computation. A re-run reproduces a log bit for bit only on the same numeric "
            f"stack; the BLAS kernels of other CPUs (or OPENBLAS_CORETYPE) sum in another "
            f"order ({numeric_stack()} here; docs/reproducibility.md)")


def _fmt(rec: list, agents: list[str]) -> str:
    t, kind, s, d, ts, seq, payload = rec
    name = KIND_NAMES[kind] if 0 <= kind < 3 else kind
    src = agents[s] if 0 <= s < len(agents) else s
    dst = agents[d] if 0 <= d < len(agents) else d
    return (f"{name} {src} -> {dst} sent {_time(ts)} arrives {_time(t)} "
            f"seq {seq} payload {_exact(payload)}")


def _time(q: int) -> str:
    """A time in quanta, every digit shown (``:g`` printed 201.500001 as 201.5, so a
    record that differed by one quantum read the same as the log's)."""
    if not isinstance(q, int):
        return repr(q)
    if q < 0:
        return "-" + _time(-q)
    whole, frac = divmod(q, QUANTA)
    return str(whole) if not frac else f"{whole}.{frac:0{len(str(QUANTA)) - 1}d}".rstrip("0")


def _exact(payload: object) -> str:
    """A payload with every digit of its floats (an array prints 8 by default)."""
    if isinstance(payload, np.ndarray) and payload.dtype.kind == "f":
        return f"array({payload.tolist()!r})"
    return repr(payload)
