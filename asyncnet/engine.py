"""The SimPy engine: time, delivery and canonical batches — nothing of any scheme.

Each agent is an event-driven process on one ``simpy.Environment``. Sending a
message costs one list append; the first message for an agent at a new
instant schedules that agent's single wake-up event for the instant
(DESIGN.md point 7). At the wake-up the agent gets everything that reached it
then as one batch in canonical order, then its local timer if due then.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from typing import Any

import simpy

from .agents import Agent, Source
from .api import Ports
from .ids import is_source, is_synapse, source_id, source_node, split_synapse, synapse_id
from .messages import CONTROL, QUANTA, Message, canonical_key, to_quanta, to_time
from .network import Network, agent_rng

Monitor = Callable[[Agent, int], None]


class Engine:
    """Agents, links and the clockless delivery of messages between them.

    ``rule`` supplies the neuron and synapse physics; ``sources`` maps a
    population to a function ``t -> value or None`` (inputs and targets).
    ``local`` restricts which agents this engine runs (a partition, for the
    cluster); messages to others go to ``remote(msg)``.
    """

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
        remote: Callable[[Message], None] | None = None,
    ):
        self.net = net
        self.rule = rule
        self.seed = seed
        self.env = simpy.Environment()
        self.monitors: list[Monitor] = []
        self.sinks: list[Callable[[list[Message]], None]] = []
        self.delivered = [0, 0, 0]
        self.remote = remote
        self.links = link_table(net, sources or {}, source_delay)
        self.names = sorted(self.links)
        keep = set(self.names) if local is None else set(local)
        self.agents: dict[str, Agent] = {}
        for name in self.names:
            if name not in keep:
                continue
            rng = agent_rng(seed, name)
            ports = ports_of(net, name)
            if is_source(name):
                model = Source(sources[source_node(name)], source_period, source_delay)
            elif is_synapse(name):
                model = rule.synapse(net.projections[split_synapse(name)], ports, rng)
            else:
                model = rule.neuron(net.populations[name], ports, rng)
            agent = Agent(name, model, ports.as_dict(), self.links[name], rng)
            agent.send = self._route
            self.agents[name] = agent
            self._wake_at(agent, 0)

    # -- delivery -----------------------------------------------------------
    def _route(self, m: Message) -> None:
        agent = self.agents.get(m.dst)
        if agent is None:
            self.remote(m)
            return
        bucket = agent.inbox.get(m.t_arrive)
        if bucket is None:
            agent.inbox[m.t_arrive] = [m]
            if agent.timer_due != m.t_arrive:
                self._wake_at(agent, m.t_arrive)
        else:
            bucket.append(m)

    def inject(self, m: Message) -> None:
        """Accept a message sent by an agent of another partition."""
        if m.t_arrive < self.env.now:
            raise RuntimeError(f"message from {m.src} to {m.dst} arrived in the past")
        self._route(m)

    def _wake_at(self, agent: Agent, t: int) -> None:
        ev = self.env.timeout(t - self.env.now)
        ev.callbacks.append(lambda _ev, a=agent, t=t: self._wake(a, t))

    def _wake(self, agent: Agent, t: int) -> None:
        now = to_time(t)
        model = agent.model
        if not agent.started:
            agent.started = True
            agent.emit(t, model.start(now))
            self._arm_timer(agent, t)
        batch = agent.inbox.pop(t, None)
        if batch:
            batch.sort(key=canonical_key)
            for m in batch:
                self.delivered[m.kind] += 1
            for sink in self.sinks:
                sink(batch)
            agent.emit(t, model.react(now, batch))
        if agent.timer_due == t and t > 0:
            agent.emit(t, model.on_timer(now))
            self._arm_timer(agent, t)
        for mon in self.monitors:
            mon(agent, t)

    def _arm_timer(self, agent: Agent, t: int) -> None:
        nxt = getattr(agent.model, "next_interval", None)
        interval = nxt(agent.rng) if nxt is not None else None
        if interval is None:
            agent.timer_due = None
            return
        dq = to_quanta(interval)
        if dq <= 0:
            raise ValueError(f"{agent.name}: timer interval must be positive, got {interval}")
        agent.timer_due = t + dq
        if agent.timer_due not in agent.inbox:
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
        try:
            while self.env.now < end:
                self.run_quanta(min(end, self.env.now + step))
                if progress is not None:
                    progress(to_time(self.env.now))
        finally:
            if froze:
                gc.unfreeze()

    def run_quanta(self, end: int) -> None:
        """Process every event strictly before ``end`` quanta."""
        if end > self.env.now:
            self.env.run(until=end)

    def at(self, t: float, fn: Callable[[Engine, float], None]) -> None:
        """Call ``fn(engine, t)`` at time ``t`` (a probe: it reads, never sends)."""
        ev = self.env.timeout(to_quanta(t) - self.env.now)
        ev.callbacks.append(lambda _ev: fn(self, t))

    def state(self, name: str) -> dict:
        """The state an agent's model exposes (for probes and --save-state)."""
        return self.agents[name].model.state()

    def messages(self) -> int:
        """Messages delivered so far."""
        return sum(self.delivered)


def ports_of(net: Network, name: str) -> Ports:
    """What agent ``name`` may address (its graph neighbours), by port."""
    if is_source(name):
        return Ports(name, outputs=(source_node(name),))
    if is_synapse(name):
        pre, post = split_synapse(name)
        return Ports(name, inputs=(pre,), outputs=(post,),
                     roles={pre: net.populations[pre].role, post: net.populations[post].role})
    return Ports(name, inputs=tuple(synapse_id(u, name) for u in net.pre(name)),
                 outputs=tuple(synapse_id(name, v) for v in net.post(name)),
                 fan_in=sum(net.populations[u].size for u in net.pre(name)))


def link_table(net: Network, sources: dict, source_delay: float) -> dict[str, dict[str, int]]:
    """Every agent's neighbours and link delays (quanta): the locality graph."""
    links: dict[str, dict[str, int]] = {n: {} for n in net.populations}
    for (u, v), pr in net.projections.items():
        first, second = pr.legs
        links[pr.name] = {u: first, v: second}
        links[u][pr.name] = first
        links[v][pr.name] = second
    for node in sources:
        if node not in net.populations:
            raise ValueError(f"data source for unknown population {node!r}")
        dq = to_quanta(source_delay)
        links[source_id(node)] = {node: dq}
        links[node][source_id(node)] = dq
    return links


__all__ = ["Engine", "link_table", "ports_of", "CONTROL", "QUANTA"]
