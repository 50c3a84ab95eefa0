"""The engine's scheduling state as a checkpoint reads and restores it.

What is in flight to each agent (:meth:`SchedulingState.inbox`,
:meth:`SchedulingState.set_inbox`) and when each is woken
(:meth:`SchedulingState.schedule`, :meth:`SchedulingState.clear_schedule`):
methods of :class:`asyncnet.engine.Engine`, kept here because only a
checkpoint's save and restore use them, not a running engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import simpy

from .agents import Agent
from .messages import Message


class SchedulingState:
    """The engine's in-flight messages and wake-ups, for checkpoints (a mixin of ``Engine``)."""

    env: simpy.Environment
    _due: dict[int, list[int]]
    _probes: dict[int, list]
    _scheduled: dict[int, set[int]]
    _boxes: dict[int, dict[int, Any]]
    _offroute: dict[int, list | None]
    _box_now: dict[int, Any]
    _quiet: bytearray | None
    _sends: dict[int, Any] | None
    _odd: set[int]

    _wake_at: Callable[[Agent, int], None]

    def schedule(self, agent: Agent, t: int) -> None:
        """Make sure ``agent`` is woken at instant ``t`` (quanta; not in the past).

        For restoring a checkpoint: an agent already due at ``t`` (a
        message in its inbox for ``t``, or its timer) is not added twice.

        Parameters
        ----------
        agent:
            an agent of this engine.
        t:
            the instant, in quanta, ``>= now``.
        """
        if t < self.env.now:
            raise ValueError(f"{agent.name}: cannot schedule a wake-up in the past ({t})")
        seen = self._scheduled.get(t)
        if seen is None:  # made once an instant: a restore schedules every agent
            seen = self._scheduled[t] = set(self._due.get(t, ()))
        if agent.idx not in seen:
            seen.add(agent.idx)
            self._wake_at(agent, t)

    def clear_schedule(self, now: int) -> None:
        """Forget every pending wake-up and probe; the clock restarts at ``now``.

        For restoring a checkpoint: a fresh engine has every agent due at 0
        (those with nothing to start are skipped there);
        clear that, set the agents' state, then :meth:`schedule` what is due.

        Parameters
        ----------
        now:
            the instant to restart from, in quanta.
        """
        self.env = simpy.Environment(initial_time=now)
        self._quiet = None  # a restored engine is past its first instant
        self._due.clear()
        self._probes.clear()
        self._scheduled.clear()

    def inbox(self, agent: Agent) -> dict[int, list[Message]]:
        """The messages in flight to ``agent``, by arrival instant (a new table).

        Parameters
        ----------
        agent:
            an agent of this engine.

        Returns
        -------
        ``{instant (quanta): [messages, in the order they came]}``, instants ascending.
        """
        out: dict[int, list[Message]] = {}
        # the table of an instant under way (or stopped by an error) first
        for t, box in [(int(self.env.now), self._box_now), *sorted(self._boxes.items())]:
            held = box.get(agent.idx)
            if held is not None:
                out.setdefault(t, []).extend(held if type(held) is list else [held])
        return out

    def set_inbox(self, agent: Agent, inbox: dict[int, list[Message]]) -> None:
        """Replace the messages in flight to ``agent`` (restoring a checkpoint).

        Nothing is scheduled: :meth:`schedule` the agent at each instant.

        Parameters
        ----------
        agent:
            an agent of this engine.
        inbox:
            ``{instant (quanta): [messages]}``, as :meth:`inbox` gives it.
        """
        idx = agent.idx
        for t, box in self._boxes.items():
            if box.pop(idx, None) is not None:
                self._offroute[t] = None  # its notes may name a message taken out
                if self._sends is not None:
                    self._odd.add(t)
        for t, msgs in inbox.items():
            if self._sends is not None:
                self._odd.add(t)
            self._offroute[t] = None  # whether each came along a link is not known
            if msgs:
                self._boxes.setdefault(t, {})[idx] = list(msgs) if len(msgs) > 1 else msgs[0]
