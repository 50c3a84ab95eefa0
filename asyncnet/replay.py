"""Replay a log: re-run the scenario it embeds and compare every message."""

from __future__ import annotations

import warnings

import msgpack

from .eventlog import EventLog, RecordEncoder
from .messages import KIND_NAMES, QUANTA, decode_ext
from .scenario import load
from .simulation import build_engine


class _Diverged(Exception):
    pass


def verify(path: str, progress=None) -> dict:
    """Re-run the log's scenario; compare record by record.

    Returns ``{"identical": bool, "compared": n, "truncated": bool,
    "digest_ok": bool, "divergence": str | None}``.
    """
    log = EventLog(path)
    sc = load(log.header.get("scenario_path", path), text=log.header["scenario"])
    eng, _, _ = build_engine(sc)
    if eng.names != log.agents:
        return {"identical": False, "compared": 0, "truncated": False, "digest_ok": False,
                "divergence": "the log's agent table differs from the scenario's network"}
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
                                    f"replay gives {_fmt(mine, log.agents)}")
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
        # drain the reader so truncation and footer are known
        for _ in theirs:
            pass
    truncated = log.truncated
    if state["exhausted"] and not truncated and state["div"] is None:
        state["div"] = f"record {state['n']}: replay has more messages than the log"
    ok_digest, _ = log.verify_digest() if not truncated else (False, 0)
    identical = state["div"] is None
    if identical and not truncated and not ok_digest:
        identical = False
        state["div"] = "the records match but the footer's digest does not"
    return {"identical": identical, "compared": state["n"], "truncated": truncated,
            "digest_ok": ok_digest, "divergence": state["div"]}


def _fmt(rec: list, agents: list[str]) -> str:
    t, kind, s, d, ts, seq, payload = rec
    name = KIND_NAMES[kind] if 0 <= kind < 3 else kind
    src = agents[s] if 0 <= s < len(agents) else s
    dst = agents[d] if 0 <= d < len(agents) else d
    return (f"{name} {src} -> {dst} sent {ts / QUANTA:g} arrives {t / QUANTA:g} "
            f"seq {seq} payload {payload!r}")
