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
from collections import deque

import msgpack
import numpy as np

from . import ids
from .agents import Outbox
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

    The log is streamed: the lone agent advances every ``STEP`` records and
    its messages are compared with the log's as both come, so memory does
    not grow with the log.

    Parameters
    ----------
    path:
        the event log.
    node:
        the agent (``h1``, ``h0->h1``, ``src:in``).
    until:
        stop at this time (default: the log's end, its last whole instant
        if it was cut short).

    Returns
    -------
    ``{"node", "kind", "until", "horizon", "truncated", "interrupted",
    "log_verified", "log_altered", "records", "verified_records", "inputs",
    "state", "compared", "identical", "divergence", ...}``; ``state`` is the
    model's ``state()`` at ``until``; ``log_altered`` says which digest did
    not match, if one did.

    Raises
    ------
    InspectError
        an unknown agent, a time outside the log, or messages the agent
        cannot process.
    """
    log = open_log(path, strict=False)
    sc = scenario_of(log)
    if node not in log.agents:
        raise InspectError(f"{path}: no agent {node!r} ({len(log.agents)} agents, "
                           f"e.g. {_examples(log.agents)})")
    sent = Outbox({n: i for i, n in enumerate(log.agents)})
    eng, _, _ = engine_of(log, sc, local=[node], remote=sent)
    if node not in eng.agents:
        raise InspectError(f"{path}: no agent {node!r} ({len(eng.names)} agents, "
                           f"e.g. {_examples(eng.names)})")
    me = log.agents.index(node)
    if until is not None and not (math.isfinite(until) and until >= 0):
        raise InspectError(f"--until {until}: not a finite time inside the log")
    if until is not None and until > sc.duration:  # (1e308 overflowed into quanta)
        raise InspectError(f"--until {until:g} is outside the log (its run lasts up to "
                           f"t={sc.duration:g})")
    # where the lone agent stops, if known now (else: at the log's last whole instant)
    end = to_quanta(until) if until is not None else to_quanta(sc.duration)
    names = log.agents
    match = _Matcher(log.agents)
    fed = fed_last = 0  # inputs fed; those at the latest instant read
    t_last = -1
    since = 0

    def advance(to: int) -> None:
        """Run the agent up to ``to`` (at most ``end``); compare what arrives before."""
        try:
            eng.run_quanta(min(to, end))
        except (ValueError, TypeError, IndexError, KeyError, ArithmeticError) as e:
            # the digest matched, so the records were crafted with care: still one line
            raise InspectError(f"{path}: agent {node!r} cannot process the log's messages "
                               f"to it ({type(e).__name__}: {e})") from None
        match.take(*sent.take(), end)
        match.settle(to)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for rec, packed in log.raw():
            t = rec[0]
            if t != t_last:
                if since >= STEP:  # every record before t has been read: advance
                    advance(t)
                    since = 0
                t_last, fed_last = t, 0
            since += 1
            if rec[3] == me and t < end:
                eng.inject(Message(rec[1], names[rec[2]], names[rec[3]], rec[4], t, rec[5],
                                   rec[6]))
                fed += 1
                fed_last += 1
            if rec[2] == me and rec[4] < end:
                match.logged(rec, packed)
    for w in caught:  # re-issue the truncation warning as the caller's own
        warnings.warn(str(w.message), stacklevel=2)
    # A truncated log may end inside an instant: keep only the whole ones.
    horizon = (max(t_last, 0) if log.truncated or log.interrupted
               else to_quanta(sc.duration))
    if until is None:
        if end > horizon:  # the last instant read may be partial: not fed
            end = horizon
            fed -= fed_last if t_last >= horizon else 0
    elif end > horizon:
        raise InspectError(f"--until {until:g} is outside the log "
                           f"(whole instants up to t={to_time(horizon):g})")
    advance(horizon)
    return {"node": node, "kind": kind_of(node), "scenario": sc.name, "rule": sc.rule_name,
            "seed": sc.seed, "until": to_time(end), "horizon": to_time(horizon),
            "truncated": log.truncated, "interrupted": log.interrupted,
            "log_verified": log.verified, "log_altered": log.altered,
            "records": log.count, "verified_records": log.verified_count, "inputs": fed,
            "state": eng.state(node), **match.result(horizon)}


STEP = 20_000
"""Records read between two advances of the lone agent (bounds what is held)."""


class _Matcher:
    """The lone agent's messages against the log's, byte for byte, as both stream.

    Only messages sent before the end and arriving before the log's horizon
    can be compared (the log records a message when it is delivered). Items
    are compared in canonical order once every item before a time bound is
    known on both sides; at the first difference both heads are kept for the
    message and nothing more is held.
    """

    def __init__(self, agents: list[str]):
        self.agents = agents
        self.pk = _packer()
        self.staged: list[list] = []  # the agent's, not yet in order
        self.mine: deque[tuple[list, bytes]] = deque()
        self.theirs: deque[tuple[list, bytes]] = deque()
        self.n = 0
        self.diverged = False

    def take(self, numbers: list, payloads: list, end: int) -> None:
        """Stage the agent's messages sent before ``end`` (an :class:`Outbox`'s
        ``kind, src, dst, t_sent, t_arrive, seq`` a message, and its payload)."""
        for (kind, src, dst, t_sent, t_arrive, seq), payload in zip(
                zip(*[iter(numbers)] * 6, strict=True), payloads, strict=True):
            if t_sent < end:
                self.staged.append([t_arrive, kind, src, dst, t_sent, seq, payload])

    def logged(self, rec: list, packed: bytes) -> None:
        """One of the log's records from the agent."""
        if not (self.diverged and self.theirs):
            self.theirs.append((rec, packed))

    def settle(self, bound: int) -> None:
        """Compare everything that arrives before ``bound`` (known on both sides)."""
        ready = sorted((r for r in self.staged if r[0] < bound), key=record_key)
        self.staged = [r for r in self.staged if r[0] >= bound]
        for r in ready:
            if not (self.diverged and self.mine):
                self.mine.append((r, self.pk.pack(r)))
        while not self.diverged:
            a = self.mine[0] if self.mine and self.mine[0][0][0] < bound else None
            b = self.theirs[0] if self.theirs and self.theirs[0][0][0] < bound else None
            if a is None and b is None:
                return
            if a is not None and b is not None and a[1] == b[1]:
                self.mine.popleft()
                self.theirs.popleft()
                self.n += 1
                continue
            self.diverged = True
            while len(self.mine) > 1:
                self.mine.pop()
            while len(self.theirs) > 1:
                self.theirs.pop()

    def result(self, horizon: int) -> dict:
        """``identical``, ``compared`` and the first ``divergence`` (or ``None``)."""
        a = self.mine[0][0] if self.mine and self.mine[0][0][0] < horizon else None
        b = self.theirs[0] if self.theirs and self.theirs[0][0][0] < horizon else None
        if not self.diverged or (a is None and b is None):
            return {"identical": True, "compared": self.n, "divergence": None}
        ag = self.agents
        if a is not None and b is not None:
            what = (f"log has {_fmt(b[0], ag)}, isolated agent sends "
                    f"{_fmt(_roundtrip(a), ag)}")
        elif b is not None:
            what = f"log has {_fmt(b[0], ag)}, isolated agent sends nothing more"
        else:
            what = f"isolated agent sends {_fmt(_roundtrip(a), ag)}, log has no more"
        return {"identical": False, "compared": self.n,
                "divergence": f"message {self.n}: {what}"}


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
        n = r["compared"]
        lines.append(f"outputs identical: {n:,} message{'' if n == 1 else 's'}")
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
