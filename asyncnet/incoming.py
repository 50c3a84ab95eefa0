"""Messages that reach an engine from outside its own sends (a mixin of ``Engine``).

A cluster worker's engine takes its neighbours' frames (:meth:`Incoming.inject_columns`,
:meth:`Incoming.inject`); a lone agent re-run against a log takes the log's
records (:mod:`asyncnet.isolate`). Each message is put in flight as a send of
the engine's own would be, and noted for the recorders as a send to its one
receiver.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import simpy

from .agents import Agent, Outbox
from .messages import LocalityError, Message

_new_tuple = tuple.__new__


class Incoming:
    """Injection of messages from outside, and the agent table it uses."""

    env: simpy.Environment
    names: list[str]
    agents: dict[str, Agent]
    remote: Outbox | None
    _by_idx: list[Agent | None]
    _running: int | None
    _sends: dict[int, Any] | None

    _put: Callable[[Agent, Message], None]
    _boxes: dict[int, dict[int, Any]]
    _due: dict[int, list[int]]
    _new_instant: Callable[[int], None]
    _note: Callable[[int, Message], None]
    _note_columns: Callable[[Any, list], None]
    _name_index: Callable[[], dict[str, int]]

    def _route(self, m: Message) -> None:
        agent = self.agents.get(m.dst)
        if agent is None:
            if self.remote is None:
                raise LocalityError(f"{m.dst} is not an agent of this engine")
            self.remote(m)
        else:
            self._deliver(agent, m)

    def _deliver(self, agent: Agent, m: Message) -> None:
        """Put ``m`` in flight to ``agent``, noted for the recorders (not a send of
        this engine: a send to one)."""
        if self._sends is not None:
            self._note(agent.idx, m)
        self._put(agent, m)

    def inject(self, m: Message) -> None:
        """Accept a message sent by an agent of another partition."""
        if m.t_arrive < self.env.now or m.t_arrive == self._running:
            raise RuntimeError(f"message from {m.src} to {m.dst} arrived in the past "
                               "(or at the instant being run)")
        self._route(m)

    def inject_columns(self, cols: np.ndarray, payloads: list) -> None:
        """:meth:`inject` for a peer's frame, given as columns, in one loop.

        Parameters
        ----------
        cols:
            int64 rows ``(kind, src, dst, t_sent, t_arrive, seq)``, agents as
            indices into ``names``, every receiver an agent of this engine,
            every message along a link with that link's delay and none
            arriving in the past (a checked frame's:
            :class:`asyncnet.cluster.frames.IncomingLinks`). So they are not
            noted off route (``Engine.offroute``).
        payloads:
            one a row.
        """
        if not len(payloads):
            return
        if int(cols[:, 4].min()) < self.env.now or self._running is not None:
            raise RuntimeError("a message arrived in the past (or while an instant runs)")
        if self._sends is not None:  # noted all at once, in a few numpy calls
            self._note_columns(cols, payloads)
        kind, src, dst, t_sent, t_arrive, seq = cols.T.tolist()
        # Engine._put_linked written out, its box and due list taken once an
        # arrival instant (a frame's messages mostly share one): a call, an
        # attribute and two look-ups less a message, 17% of this loop's CPU on
        # the two-partition L run (0.50 -> 0.42 s for 528k messages)
        names, by_idx, boxes, dues = self.names, self._by_idx, self._boxes, self._due
        at = box = due = None
        for k, s, d, ts, ta, q, p in zip(kind, src, dst, t_sent, t_arrive, seq, payloads,
                                         strict=True):
            if ta != at:
                at = ta
                box = boxes.get(ta)
                if box is None:
                    box = boxes[ta] = {}
                due = dues.get(ta)
            m = _new_tuple(Message, (k, names[s], names[d], ts, ta, q, p))
            held = box.get(d)  # an agent's idx is its place in names
            if held is None:
                box[d] = m
                if by_idx[d].timer_due != ta:  # else its timer wakes it then
                    if due is None:
                        due = dues[ta] = [d]
                        self._new_instant(ta)
                    else:
                        due.append(d)
            elif type(held) is list:
                held.append(m)
            else:
                box[d] = [held, m]

    def index_of(self, name: str) -> int:
        """``name``'s place in ``names``, the run's agent table (``KeyError``: none)."""
        return self._name_index()[name]

    @property
    def by_index(self) -> list[Agent | None]:
        """This engine's agents by their place in ``names`` (``None``: another partition's)."""
        return self._by_idx
