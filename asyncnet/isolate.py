"""``asyncnet inspect``: one agent rebuilt from the messages that reached it.

Locality as a checkable property: an agent's state is a function of its
inputs (and its own random stream) and of nothing else. ``isolate`` rebuilds
the network and rule from the scenario a log embeds, creates ONLY the named
agent, feeds it the log's records addressed to it (in the log's order), runs
it to ``until`` and compares every message it sends with the log's records
from it. Any hidden coupling between agents (shared objects, a global RNG, a
rule reading a neighbour) makes the isolated agent's outputs differ.
"""

from __future__ import annotations

import math
import sys
import warnings

import msgpack
import numpy as np

from . import ids
from .commands import command, finite_float
from .eventlog import _packer, record_key
from .jsonout import dumps
from .logfile import open_log
from .logtools import engine_of, scenario_of
from .messages import Message, decode_ext, to_quanta, to_time
from .replay import _fmt


class InspectError(ValueError):
    """The agent or time asked for cannot be inspected from this log."""


kind_of = ids.kind_of  # ``source``, ``synapse`` or ``neuron``, from an agent's id


def _examples(names: list[str]) -> str:
    picks: list[str] = []
    for k in ("neuron", "synapse", "source"):
        picks += [n for n in names if kind_of(n) == k][:2]
    return ", ".join(picks) + (", ..." if len(names) > len(picks) else "")


def isolate(path: str, node: str, until: float | None = None) -> dict:
    """Run agent ``node`` alone on the log's inputs to it, up to ``until``.

    Returns ``{"node", "kind", "until", "horizon", "truncated", "inputs",
    "state", "compared", "identical", "divergence", ...}``; ``state`` is the
    model's ``state()`` at ``until``. Raises ``InspectError`` for an unknown
    agent or a time past the log's end.
    """
    log = open_log(path, strict=False)
    sc = scenario_of(log)
    sent: list[Message] = []
    if node not in log.agents:
        raise InspectError(f"no agent {node!r} in {path} ({len(log.agents)} agents, "
                           f"e.g. {_examples(log.agents)})")
    eng, _, _ = engine_of(log, sc, local=[node], remote=sent.append)
    if node not in eng.agents:
        raise InspectError(f"no agent {node!r} in {path} ({len(eng.names)} agents, "
                           f"e.g. {_examples(eng.names)})")
    me = log.agents.index(node)
    inputs: list[list] = []
    outputs: list[tuple[list, bytes]] = []
    t_last = -1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for rec, packed in log.raw():
            t_last = rec[0]
            if rec[3] == me:
                inputs.append(rec)
            if rec[2] == me:
                outputs.append((rec, packed))
    for w in caught:  # re-issue the truncation warning as the caller's own
        warnings.warn(str(w.message), stacklevel=2)
    # A truncated log may end inside an instant: keep only the whole ones.
    horizon = (max(t_last, 0) if log.truncated or log.interrupted
               else to_quanta(sc.duration))
    if until is not None and not math.isfinite(until):
        raise InspectError(f"--until {until}: not a finite time")
    end = horizon if until is None else to_quanta(until)
    if end > horizon or end < 0:
        raise InspectError(f"--until {until:g} is outside the log "
                           f"(whole instants up to t={to_time(horizon):g})")
    names = log.agents
    fed = 0
    for r in inputs:
        if r[0] < end:
            eng.inject(Message(r[1], names[r[2]], names[r[3]], r[4], r[0], r[5], r[6]))
            fed += 1
    try:
        eng.run_quanta(end)
    except (ValueError, TypeError, IndexError, KeyError, ArithmeticError) as e:
        # the digest matched, so the records were crafted with care: still one line
        raise InspectError(f"{path}: agent {node!r} cannot process the log's messages to "
                           f"it ({type(e).__name__}: {e})") from None
    return {"node": node, "kind": kind_of(node), "scenario": sc.name, "rule": sc.rule_name,
            "seed": sc.seed, "until": to_time(end), "horizon": to_time(horizon),
            "truncated": log.truncated, "interrupted": log.interrupted,
            "log_verified": log.verified, "log_altered": log.altered,
            "records": log.count, "verified_records": log.verified_count, "inputs": fed,
            "state": eng.state(node),
            **_compare(sent, outputs, end, horizon, log.agents)}


def _compare(sent: list[Message], logged: list[tuple[list, bytes]], end: int,
             horizon: int, agents: list[str]) -> dict:
    """The isolated agent's messages against the log's, byte for byte.

    Only messages sent before ``end`` and arriving before ``horizon`` (the
    log records a message when it is delivered) can be compared.
    """
    idx = {n: i for i, n in enumerate(agents)}
    pk = _packer()
    mine = sorted(([m.t_arrive, m.kind, idx[m.src], idx[m.dst], m.t_sent, m.seq, m.payload]
                   for m in sent if m.t_sent < end and m.t_arrive < horizon), key=record_key)
    theirs = [(r, b) for r, b in logged if r[4] < end and r[0] < horizon]
    for n, (a, (rec, b)) in enumerate(zip(mine, theirs, strict=False)):
        if pk.pack(a) != b:
            return {"identical": False, "compared": n, "divergence":
                    f"message {n}: log has {_fmt(rec, agents)}, "
                    f"isolated agent sends {_fmt(_roundtrip(a), agents)}"}
    n = min(len(mine), len(theirs))
    if len(mine) != len(theirs):
        more = (f"log has {_fmt(theirs[n][0], agents)}, isolated agent sends nothing more"
                if len(theirs) > n else
                f"isolated agent sends {_fmt(_roundtrip(mine[n]), agents)}, log has no more")
        return {"identical": False, "compared": n, "divergence": f"message {n}: {more}"}
    return {"identical": True, "compared": n, "divergence": None}


def _roundtrip(rec: list) -> list:
    # the payload as the log would hold it (arrays decoded the same way)
    return msgpack.unpackb(_packer().pack(rec), raw=False, ext_hook=decode_ext)


# -- the command ------------------------------------------------------------
SMALL = 12
"""Arrays up to this many values are printed in full."""


def format_state(state: dict) -> list[str]:
    """One line per state entry: shape, and values when the array is small."""
    out = []
    width = max((len(k) for k in state), default=0)
    for key, val in state.items():
        a = np.asarray(val)
        if a.dtype.kind not in "biuf" or a.size == 0:
            out.append(f"  {key:<{width}}  {val!r}")
            continue
        shape = "scalar" if a.ndim == 0 else "x".join(map(str, a.shape))
        if a.size <= SMALL:
            vals = np.array2string(a.astype(float), precision=6, max_line_width=10_000,
                                   separator=" ").replace("\n", "")
            out.append(f"  {key:<{width}}  {shape:<7} {vals}")
        else:
            f = a.astype(float)
            out.append(f"  {key:<{width}}  {shape:<7} min {f.min():.6g}  max {f.max():.6g}  "
                       f"mean {f.mean():.6g}  norm {np.linalg.norm(f):.6g}")
    return out or ["  (no state)"]


def format_report(r: dict) -> str:
    """The human-readable ``inspect`` output."""
    tail = (" (log truncated: up to its last whole instant)" if r["truncated"] else
            " (log of an interrupted run: up to its end)" if r.get("interrupted") else "")
    lines = [f"agent     {r['node']} ({r['kind']}) of {r['scenario']}, rule {r['rule']}, "
             f"seed {r['seed']}",
             f"inputs    {r['inputs']:,} messages from the log, run alone to "
             f"t={r['until']:g}{tail}",
             "state"] + format_state(r["state"])
    if r.get("log_altered"):
        lines.append(f"log       ALTERED: {r['log_altered']}")
    if r["identical"]:
        lines.append(f"outputs identical: {r['compared']:,} messages")
    else:
        lines.append(f"outputs DIVERGED after {r['compared']:,} identical messages: "
                     f"{r['divergence']}")
    return "\n".join(lines)


@command("inspect", "one agent's state, rebuilt from the log's messages to it alone")
def cmd_inspect(args) -> int:
    """``asyncnet inspect LOG --node NAME [--until T] [--json]``."""
    try:
        r = isolate(args.log, args.node, args.until)
    except InspectError as e:
        print(f"asyncnet: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(dumps(r))
    else:
        print(format_report(r))
    return 0 if r["identical"] and not r["log_altered"] else 1


cmd_inspect.configure = lambda p: (
    p.add_argument("log", help="an event log"),
    p.add_argument("--node", required=True, metavar="NAME",
                   help="a neuron (l1), synapse (l0->l1) or source (src:l0)"),
    p.add_argument("--until", type=finite_float, metavar="T",
                   help="stop at T (default: the log's end)"),
    p.add_argument("--json", action="store_true", help="print everything as one JSON object"),
)

__all__ = ["isolate", "InspectError", "format_report", "format_state"]
