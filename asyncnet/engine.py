"""The SimPy engine: time, delivery and canonical batches — nothing of any scheme.

Each agent is an event-driven process on one ``simpy.Environment``, but the scheduler
holds one event per *instant*, not one per agent wake-up: the engine keeps, for every
future instant, the agents due then, and wakes them all in canonical order (their place in
the sorted ``names``) when the instant's event fires (DESIGN.md point 7). What is in
flight lives in one table per arrival instant (receiver's index -> its message, or a list
once a second one comes), not in a dictionary per agent: the messages of an instant and
their receivers' entries stay together in memory, which is what a large net waits for
(``tools/bench_engine.py``, L ÷ S). Only the first message for an agent at a new instant
adds it to that instant's due list (and only the first agent due at a new instant makes a
scheduler event). At its wake-up an agent gets everything that reached it then as one
batch in canonical order, then its local timer if due then.

Probes (:meth:`Engine.at`) keep the place among the wake-ups of their
instant that SimPy's insertion order gave them: a probe sees the agents
due before it was registered as already woken, the others not yet.

The scheduling state, for checkpoints: each agent's pending messages
(:meth:`Engine.inbox`, :meth:`Engine.set_inbox`: instant -> messages),
``timer_due``, ``started``, ``seq`` and ``rng`` (its random stream, a property: made at
first use, assignable); :meth:`Engine.schedule` ``(agent, t)`` makes sure ``agent`` is woken at
instant ``t`` (quanta); :meth:`Engine.clear_schedule` forgets every pending
wake-up (a fresh engine has every agent due at 0, and wakes there those with
something to do: an agent whose model has ``start = None`` and no timer is
started when it is made and first woken by a message, unless a monitor
watches the run).
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from operator import itemgetter
from typing import Any

import simpy

from .agents import Agent, LazyRng, Outbox, Source, UnmadeRng, check_model, emit_error, unknown_kind
from .capture import Captured, Recording
from .gcpause import collector_paused
from .ids import is_source, is_synapse, source_id, source_node, split_synapse
from .incoming import Incoming
from .messages import CONTROL, QUANTA, Message, to_quanta, to_time
from .network import Network
from .schedstate import SchedulingState
from .wiring import link_table, ports_of, wire

Monitor = Callable[[Agent, int], None]
YOUNG = 100_000
"""The collector's first-generation threshold while an engine runs (see ``Engine.run``)."""
_new_tuple = tuple.__new__  # a Message without its generated __new__'s Python frame
_KIND = itemgetter(0)
_NONE_OFF: tuple = ()  # an instant with no message off route (and "none noted yet")


class Engine(SchedulingState, Recording, Incoming):
    """Agents, links and the clockless delivery of messages between them.

    ``rule`` supplies the neuron and synapse physics; ``sources`` maps a
    population to a function ``t -> value or None`` (inputs and targets).
    ``local`` restricts which agents this engine runs (a partition, for the
    cluster); messages to others go to the :class:`~asyncnet.agents.Outbox`
    ``remote``.
    """

    @collector_paused()  # millions of long-lived objects: no collection walks them
    def __init__(
        self,
        net: Network,
        rule: Any,
        *,
        seed: int,
        sources: dict[str, Callable[[float], Any]] | None = None,
        source_period: float = 1.0,
        source_delay: float = 1.0,
        local: Iterable[str] | None = None,
        remote: Outbox | None = None,
    ):
        self.net = net
        self.rule = rule
        self.seed = seed
        self.env = simpy.Environment()
        self.monitors: list[Monitor] = []
        self.sinks: list[Callable[[list[Message]], None]] = []
        # sinks that take a whole instant's batches at its end, in wake order
        # (one call an instant, not one a batch: the event log's writer)
        self.instant_sinks: list[Callable[[list[list[Message]]], None]] = []
        self._batches: list[list[Message]] = []
        # recorders (Engine.record): each instant's sends by arrival instant,
        # the instants some message reached another way, and whether this
        # instant's delivered batches are kept (an instant sink, or such an instant)
        self.recorders: list[Callable[[Captured], None]] = []
        self._sends: dict[int, tuple[list[int], list[Any]]] | None = None
        self._odd: set[int] = set()
        self._index: dict[str, int] | None = None  # name -> index, made if a message comes in
        self._keep_batches = False
        self.delivered = [0, 0, 0]
        self.remote = remote
        self.links = link_table(net, sources or {}, source_delay)
        self.names = sorted(self.links)
        keep = None if local is None else set(local)
        self.agents: dict[str, Agent] = {}
        self._by_idx: list[Agent | None] = [None] * len(self.names)
        # instant (quanta) -> indices of the agents due then, in the order
        # they became due; and the probes of that instant with their place
        self._due: dict[int, list[int]] = {}
        self._probes: dict[int, list[tuple[int, Callable[[], None]]]] = {}
        self._scheduled: dict[int, set[int]] = {}  # schedule()'s own record
        # arrival instant (quanta) -> {receiver's index: its message, or a list
        # of them}: what is in flight; and the table of the instant being run
        self._boxes: dict[int, dict[int, Any]] = {}
        self._box_now: dict[int, Any] = {}
        # arrival instant -> the messages put in flight there other than along a
        # route (a source's, a post, one injected; None: any may be, a restored
        # inbox's). A route's delay is its link's, so every other message
        # delivered then travels one link with its delay: the traffic counter
        # looks only these up (a look-up a message was 12% of an L run)
        self._offroute: dict[int, list[Message] | None] = {}
        self.offroute: Sequence[Message] | None = _NONE_OFF
        """The instant being run's messages not sent along a route (see ``_offroute``)."""
        self._running: int | None = None  # the instant being run, if any
        # link delay -> (arrival instant, its table), made once an instant
        self._arrive: dict[int, tuple[int, dict[int, Any] | None, Any]] = {}
        route = self._route  # one bound method shared by every agent
        wiring: list[tuple[Agent, tuple[str, ...], tuple[str, ...]]] = []
        canon = {n: n for n in self.names}  # one string object per name
        unmade = UnmadeRng(seed)
        # agents with nothing to do at the first instant (``start = None``, no
        # timer): started now, while their objects are fresh in the cache,
        # and not woken at 0 unless a monitor watches (see _instant)
        quiet = bytearray(len(self.names))
        # what getrefcount says of a proxy only a local name holds (the count
        # of a name and of the call's own argument differs between Python
        # versions): one more means the rule kept it
        refs = getattr(sys, "getrefcount", None)
        probe = LazyRng(seed, "")
        alone = refs(probe) if refs is not None else -1
        del probe
        models: set[type] = set()
        for i, name in enumerate(self.names):
            if keep is not None and name not in keep:
                continue
            rng = LazyRng(seed, name)
            ports = ports_of(net, name, canon)
            if is_source(name):
                model = Source(sources[source_node(name)], source_period, source_delay)
            elif is_synapse(name):
                model = rule.synapse(net.projections[split_synapse(name)], ports, rng)
            else:
                src = source_id(name)
                if src in self.links[name]:  # data feeds it (an output's targets)
                    ports = replace(ports, source=src)
                model = rule.neuron(net.populations[name], ports, rng)
            if type(model) not in models:  # each class checked once (millions of agents)
                check_model(rule, name, model)
                models.add(type(model))
            # a proxy nobody kept and nothing drew from is not kept either (56 B
            # an agent); without refcounts (not CPython) every proxy is kept
            kept = rng.gen is not None or refs is None or refs(rng) > alone
            agent = Agent(name, model, self.links[name], rng if kept else unmade, i)
            agent.send = route
            if getattr(model, "start", None) is None and \
                    getattr(model, "next_interval", None) is None:
                agent.started = True
                quiet[i] = 1
            self.agents[name] = agent
            self._by_idx[i] = agent
            wiring.append((agent, ports.outputs, ports.inputs))
        self.receivers = wire(self.agents, wiring,
                              None if keep is None else self.index_of)
        self._quiet: bytearray | None = quiet if any(quiet) else None
        if self.agents:
            self._due[0] = [a.idx for a in self.agents.values()]
            self._new_instant(0)

    # -- scheduling -----------------------------------------------------------
    def _new_instant(self, t: int) -> None:
        """One scheduler event for instant ``t`` (its due list exists)."""
        ev = self.env.timeout(t - self.env.now)
        ev.callbacks.append(lambda _ev, t=t: self._instant(t))

    def _wake_at(self, agent: Agent, t: int) -> None:
        due = self._due.get(t)
        if due is None:
            self._due[t] = [agent.idx]
            self._new_instant(t)
        else:
            due.append(agent.idx)

    def _instant(self, t: int) -> None:
        """Wake every agent due at ``t`` in canonical order; probes in their place."""
        due = self._due.pop(t)
        probes = self._probes.pop(t, None)
        if self._scheduled:
            self._scheduled.pop(t, None)
        now = t / QUANTA  # one float an instant, shared by every rule woken then
        self._box_now = self._boxes.pop(t, {})
        self.offroute = self._offroute.pop(t, _NONE_OFF)
        self._running = t
        # link delay -> (arrival instant, its table, its sends noted): once a delay, not a message
        self._arrive = {}
        keep, sends, odd = bool(self.instant_sinks), None, False
        if self._sends is not None:  # recorders: this instant's sends, or its batches
            sends = self._sends.pop(t, None) or ([], [])
            if self._sends and min(self._sends) < t:  # sends to other partitions only:
                for past in [k for k in self._sends if k < t]:  # no instant ran here
                    del self._sends[past]
            if t in self._odd:
                self._odd.discard(t)
                keep = odd = True
        self._keep_batches = keep
        skip = None
        if self._quiet is not None:  # the first instant this engine runs
            # at 0 only (a resumed engine starts later), and a monitor sees
            # every wake-up: with one, the quiet agents are woken as before
            # (started already, so they only meet the monitors)
            if t == 0 and not self.monitors:
                skip = self._quiet
            self._quiet = None
        start = 0
        for pos, fn in probes or ():
            self._wake_segment(due[start:pos], t, now, skip)
            start = max(start, pos)
            fn()
        self._wake_segment(due[start:] if start else due, t, now, skip)
        # every entry was taken by its agent's wake: let the table go (dict.pop
        # never shrinks it, and a wave's table holds an entry per synapse)
        self._box_now = {}
        self._running = None
        batches, self._batches = self._batches, []
        if batches:
            for sink in self.instant_sinks:
                sink(batches)
        if sends is not None and (sends[1] or batches):
            got = Captured(t, None, batches, self.receivers, len(self.names)) if odd else \
                Captured(t, sends, None, self.receivers, len(self.names))
            for rec in self.recorders:
                rec(got)

    def _wake_segment(self, seg: list[int], t: int, now: float,
                      skip: bytearray | None) -> None:
        """Wake the agents of ``seg`` (indices, sorted here) but those ``skip`` marks
        (unless a message waits for one: none can at the first instant but injected)."""
        if skip is not None:
            box = self._box_now
            seg = [i for i in seg if not skip[i] or i in box]
        seg.sort()
        wake, by_idx = self._wake, self._by_idx
        for i in seg:
            wake(by_idx[i], t, now)

    # -- delivery -----------------------------------------------------------
    def _put(self, agent: Agent, m: Message) -> None:
        """Put ``m`` in flight to ``agent``; wake it then if nothing else does.

        ``m`` came another way than along a route: noted in ``offroute``."""
        off = self._offroute.get(m.t_arrive, _NONE_OFF)
        if off is _NONE_OFF:
            self._offroute[m.t_arrive] = [m]
        elif off is not None:
            off.append(m)
        self._put_linked(agent, m)

    def _put_linked(self, agent: Agent, m: Message) -> None:
        """:meth:`_put` for a message known to travel a link with its delay (a
        checked frame's)."""
        ta = m.t_arrive
        box = self._boxes.get(ta)
        if box is None:
            box = self._boxes[ta] = {}
        idx = agent.idx
        held = box.get(idx)
        if held is None:
            box[idx] = m
            if agent.timer_due != ta:
                self._wake_at(agent, ta)
        elif type(held) is list:
            held.append(m)
        else:
            box[idx] = [held, m]

    def _emit(self, agent: Agent, t: int, emits: list) -> None:
        """Send a rule's emits along the agent's routes (the hot path)."""
        name, seq = agent.name, agent.seq
        arrive, boxes, sends = self._arrive, self._boxes, self._sends
        try:  # no work a message; only the error path names what a rule got wrong
            for port, kind, payload in emits:
                if port == "out":
                    routes = agent.routes_out
                elif port == "in":
                    routes = agent.routes_in
                else:  # ('outs', ...) was dropped without a word: emit_error names it
                    raise ValueError(port)
                for delay, receivers, key in routes:
                    got = arrive.get(delay)
                    if got is None:
                        ta = t + delay
                        noted = None
                        if sends is not None:  # a recorder's: one entry a send, not one a message
                            noted = sends.get(ta)
                            if noted is None:
                                noted = sends[ta] = ([], [])
                        got = arrive[delay] = (ta, boxes.get(ta), noted)
                    ta, box, noted = got
                    if noted is not None and key is not None:  # None: every receiver elsewhere
                        # appended one by one: a tuple to extend with is made and freed
                        # (≈ 36 instructions a message more on the S net, valgrind)
                        numbers = noted[0]
                        numbers.append(agent.idx)
                        numbers.append(t)
                        numbers.append(seq)
                        numbers.append(kind)
                        numbers.append(key)
                        noted[1].append(payload)
                    for a in receivers:
                        seq += 1
                        idx = a.idx
                        if idx < 0:  # another partition's (Elsewhere)
                            agent.seq = seq
                            out = self.remote  # six numbers and the payload: no Message
                            out.numbers.extend((kind, agent.idx, -1 - idx, t, ta, seq))
                            out.payloads.append(payload)
                            continue
                        m = _new_tuple(Message, (kind, name, a.name, t, ta, seq, payload))
                        if box is None:  # made for a receiver here only (none for a remote one)
                            box = boxes.get(ta)
                            if box is None:
                                box = boxes[ta] = {}
                            arrive[delay] = (ta, box, noted)
                        held = box.get(idx)
                        if held is None:
                            box[idx] = m  # one message alone, no list: most synapses get one
                            if a.timer_due != ta:
                                due = self._due.get(ta)
                                if due is None:
                                    self._due[ta] = [idx]
                                    self._new_instant(ta)
                                else:
                                    due.append(idx)
                        elif type(held) is list:
                            held.append(m)
                        else:
                            box[idx] = [held, m]
        except (TypeError, ValueError) as e:
            raise emit_error(self.rule, name, emits, e) from None
        agent.seq = seq

    def _wake(self, agent: Agent, t: int, now: float) -> None:
        model = agent.model
        if not agent.started:
            agent.started = True
            start = getattr(model, "start", None)  # None: nothing to do then
            out = start(now) if start is not None else None
            if out:
                self._emit(agent, t, out)
            self._arm_timer(agent, t)
        batch = self._box_now.pop(agent.idx, None)
        if batch is not None:
            if type(batch) is not list:
                batch = [batch]
            n = len(batch)
            if n == 1:
                try:
                    self.delivered[batch[0][0]] += 1
                except (IndexError, TypeError):  # a rule's own kind (try: free until raised)
                    raise unknown_kind(batch[0]) from None
            else:
                # canonical order (kind, src, seq) as the tuples' own order: one
                # receiver and one instant, and a sender's seq grows with its
                # t_sent, so (kind, src, t_sent, seq) sorts the same, and no two
                # messages share src and seq (no key tuples to build)
                batch.sort()
                if n < 16:
                    delivered = self.delivered
                    try:
                        for m in batch:
                            delivered[m[0]] += 1
                    except (IndexError, TypeError):
                        raise unknown_kind(m) from None
                else:
                    self._count(batch, n)
            for sink in self.sinks:
                sink(batch)
            if self._keep_batches:
                self._batches.append(batch)
            out = model.react(now, batch)
            if out:
                self._emit(agent, t, out)
        if agent.timer_due == t and t > 0:
            out = model.on_timer(now)
            if out:
                self._emit(agent, t, out)
            self._arm_timer(agent, t)
        for mon in self.monitors:
            mon(agent, t)

    def _count(self, batch: list[Message], n: int) -> None:
        """Count a batch's messages by kind (in C: a neuron's batch can be hundreds)."""
        kinds = bytes(map(_KIND, batch))
        by = [kinds.count(0), kinds.count(1), kinds.count(2)]
        if by[0] + by[1] + by[2] != n:
            raise ValueError(f"{batch[0].dst}: a message of unknown kind "
                             f"{next(k for k in kinds if k > 2)}")
        d = self.delivered
        d[0] += by[0]
        d[1] += by[1]
        d[2] += by[2]

    def _arm_timer(self, agent: Agent, t: int) -> None:
        nxt = getattr(agent.model, "next_interval", None)
        if nxt is None:
            agent.timer_due = None
            return
        r = agent.proxy()
        # the proxy until the stream exists: a fixed period never makes it
        interval = nxt(r if r.gen is None else r.gen) if type(r) is LazyRng else nxt(r)
        if interval is None:
            agent.timer_due = None
            return
        dq = to_quanta(interval)
        if dq <= 0:
            raise ValueError(f"{agent.name}: timer interval must be positive, got {interval}")
        agent.timer_due = t + dq
        box = self._boxes.get(agent.timer_due)
        if box is None or agent.idx not in box:
            self._wake_at(agent, agent.timer_due)

    # -- running --------------------------------------------------------------
    @property
    def now(self) -> float:
        """Simulated time, in units."""
        return to_time(self.env.now)

    def run(self, until: float, progress: Callable[[float], None] | None = None,
            chunks: int = 50) -> None:
        """Advance to ``until`` (exclusive of events at ``until`` itself)."""
        end = to_quanta(until)
        step = max(1, (end - self.env.now) // chunks)
        # A run makes millions of short-lived messages, and each full garbage
        # collection would walk every agent of the network again: the network
        # is kept out of collections while it runs (per-neuron runs ~25% faster).
        froze = gc.isenabled() and gc.get_freeze_count() == 0
        if froze:
            gc.freeze()
        # and the young objects (messages, their lists and tables, nearly all freed by their
        # reference counts within an instant) are collected every YOUNG allocations, not
        # every 700: 10-15% of a large per-neuron run went to walking them; cyclic garbage
        # stays bounded by YOUNG
        before = gc.get_threshold()
        if before[0] and before[0] < YOUNG:
            gc.set_threshold(YOUNG, *before[1:])
        try:
            while self.env.now < end:
                self.run_quanta(min(end, self.env.now + step))
                if progress is not None:
                    progress(to_time(self.env.now))
        finally:
            if froze:
                # what the run made and still holds (the messages in flight: 58k at the end
                # of the L net's run) joins the oldest generation unvisited, as the network
                # did: restoring a threshold of 700 with them all young would make the next
                # allocation walk every one of them (17.8 ms after that net's 0.38 CPU-s
                # run), though nearly all die by their reference counts once the engine
                # runs on or is dropped
                gc.freeze()
            gc.set_threshold(*before)
            if froze:
                gc.unfreeze()

    def run_quanta(self, end: int) -> None:
        """Process every event strictly before ``end`` quanta."""
        if end > self.env.now:
            self.env.run(until=end)

    def at(self, t: float, fn: Callable[[Engine, float], None]) -> None:
        """Call ``fn(engine, t)`` at time ``t`` (a probe: it reads, never sends)."""
        q = to_quanta(t)
        due = self._due.get(q)
        if due is None:
            if q < self.env.now:
                raise ValueError(f"a probe at t={t:g} is in the past (now {self.now:g})")
            due = self._due[q] = []
            self._new_instant(q)
        # its place: after the agents already due then (SimPy's insertion order)
        self._probes.setdefault(q, []).append((len(due), lambda: fn(self, t)))

    def state(self, name: str) -> dict:
        """The state an agent's model exposes (for probes and --save-state)."""
        return self.agents[name].model.state()

    def messages(self) -> int:
        """Messages delivered so far."""
        return sum(self.delivered)


__all__ = ["Engine", "link_table", "ports_of", "CONTROL", "QUANTA"]
