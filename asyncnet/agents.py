"""Agent shells: the plumbing between a rule's local physics and the router.

An agent owns a *model* (the rule's neuron or synapse physics), its links
(neighbour -> delay), its per-sender sequence counter and its inbox of
messages waiting for a future instant. It never reads another agent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .messages import CONTROL, LocalityError, Message


class Agent:
    """One neuron, synapse or source, as the engine sees it.

    ``ports`` maps a port name (``"out"``, ``"in"``) to the neighbours a
    rule's emit on that port goes to; ``links`` maps every neighbour to the
    link delay in quanta. Sending anywhere else raises ``LocalityError``.
    """

    __slots__ = ("name", "model", "ports", "links", "seq", "inbox", "rng",
                 "timer_due", "started", "send")

    def __init__(self, name: str, model: Any, ports: dict[str, list[str]],
                 links: dict[str, int], rng: np.random.Generator):
        self.name = name
        self.model = model
        self.ports = ports
        self.links = links
        self.seq = 0
        self.inbox: dict[int, list[Message]] = {}
        self.rng = rng
        self.timer_due: int | None = None
        self.started = False
        self.send: Callable[[Message], None] | None = None  # set by the engine

    def send_to(self, now: int, dst: str, kind: int, payload: Any) -> Message:
        """Send one message to neighbour ``dst``; refuse non-neighbours."""
        delay = self.links.get(dst)
        if delay is None:
            raise LocalityError(f"{self.name} cannot address {dst}: not a neighbour")
        self.seq += 1
        m = Message(kind, self.name, dst, now, now + delay, self.seq, payload)
        self.send(m)
        return m

    def emit(self, now: int, emits: list) -> None:
        """Send a rule's ``(port, kind, payload)`` emits to their neighbours."""
        # send_to, inlined: this loop is the per-message hot path
        links, route, name, seq = self.links, self.send, self.name, self.seq
        for port, kind, payload in emits:
            for dst in self.ports.get(port, ()):
                delay = links.get(dst)
                if delay is None:
                    self.seq = seq
                    raise LocalityError(f"{name} cannot address {dst}: not a neighbour")
                seq += 1
                route(Message(kind, name, dst, now, now + delay, seq, payload))
        self.seq = seq


class Source:
    """The physics of a data source: control values on a fixed period.

    At t = 0, p, 2p, ... it sends to its population the value the stream
    has at the instant the message will arrive (``t + delay``).
    """

    def __init__(self, value: Callable[[float], np.ndarray | None], period: float,
                 delay: float):
        self.value = value
        self.period = period
        self.delay = delay

    def start(self, t: float) -> list:
        """The first control value is sent at t = 0."""
        return self.on_timer(t)

    def react(self, t: float, batch: list) -> list:
        """Sources receive nothing."""
        return []

    def next_interval(self, rng: np.random.Generator) -> float:
        """A fixed period."""
        return self.period

    def on_timer(self, t: float) -> list:
        """Send the stream's value at arrival time, if it has one."""
        v = self.value(t + self.delay)
        return [] if v is None else [("out", CONTROL, v)]

    def state(self) -> dict:
        """Sources carry no state of their own."""
        return {}
