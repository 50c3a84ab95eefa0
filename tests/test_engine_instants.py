"""The engine's scheduling: one scheduler event per instant, agents woken in
canonical order, probes in the place SimPy's insertion order gave them, and
random streams made only when an agent draws.
"""

from __future__ import annotations

import numpy as np

from asyncnet.agents import Outbox
from asyncnet.engine import Engine
from asyncnet.messages import QUANTA
from asyncnet.network import Network, agent_rng, expand_to_neurons, layered
from asyncnet.schemes.diffusion import Diffusion


def _engine(sizes=(2, 3, 2), delay=3.0, fine=False, init="random"):
    net = Network.from_graph(layered(list(sizes), delay=delay), seed=0)
    if fine:
        net = Network.from_graph(expand_to_neurons(net), seed=0)
    src = {n: (lambda t, k=p.size: np.full(k, np.sin(t))) for n, p in net.populations.items()
           if n.startswith("l0")}
    return Engine(net, Diffusion(eta=0.01, init_state=init), seed=3, sources=src)


def _inject(eng: Engine, msgs: list, columns: bool) -> None:
    """Put ``msgs`` in flight as a peer's frame does (``inject_columns``) or one by one."""
    if columns:
        eng.inject_columns(np.array([[m.kind, eng.index_of(m.src), eng.index_of(m.dst),
                                      m.t_sent, m.t_arrive, m.seq] for m in msgs]),
                           [m.payload for m in msgs])
    else:
        for m in msgs:
            eng.inject(m)


def _ticking_synapses(fired: list | None = None, got: list | None = None) -> Diffusion:
    """Diffusion whose synapses are timers of period 2 with nothing to start: each
    firing's time goes to ``fired``, each wake-up's ``(t, seqs delivered)`` to ``got``."""

    class Ticker:
        start = None

        def next_interval(self, rng):
            return 2.0

        def on_timer(self, t):
            if fired is not None:
                fired.append(t)
            return []

        def react(self, t, batch):
            if got is not None:
                got.append((t, [m.seq for m in batch]))
            return []

        def state(self):
            return {}

    class Rule(Diffusion):
        def synapse(self, proj, ports, rng):
            return Ticker()

    return Rule()


def test_one_scheduler_event_per_instant_and_canonical_order():
    eng = _engine(fine=True)
    made = []
    timeout = eng.env.timeout

    def counting(delay, value=None):
        made.append(eng.env.now + delay)
        return timeout(delay, value)

    eng.env.timeout = counting
    woken: list[tuple[int, str]] = []
    eng.monitors.append(lambda a, t: woken.append((t, a.name)))
    eng.run(12)
    instants = sorted({t for t, _ in woken})
    assert len(instants) > 10
    # one event per instant: none made twice for an instant, and every instant
    # with a wake-up had one (instant 0 was made before the counter)
    assert len(made) == len(set(made))
    assert set(made) | {0} >= set(instants)
    for t in instants:
        names = [n for tt, n in woken if tt == t]
        assert names == sorted(names), t  # canonical: the order of engine.names
        assert len(names) == len(set(names))  # one wake per agent and instant


def test_probes_keep_their_place_among_the_wake_ups():
    """A probe runs after the agents due at its instant when it was registered,
    before those that became due later — what SimPy's insertion order gave.
    Which agents were due at t = 5 when the probe at t = 2 registered the
    probe at 5 is read off the messages: those sent before t = 2 (diffusion
    agents have no timers; the sources' timers are armed at their wake)."""
    eng = _engine(delay=8.0)  # links of 4: a message sent at 1 arrives at 5
    seq: list = []
    sent: list = []
    eng.sinks.append(lambda batch: sent.extend(batch))
    eng.monitors.append(lambda a, t: seq.append((t, a.name)))
    eng.at(0.0, lambda e, t: seq.append((0, "probe0")))
    eng.at(2.0, lambda e, t: (seq.append((2 * QUANTA, "probe2")),
                              e.at(5.0, lambda e2, t2: seq.append((5 * QUANTA, "probe5")))))
    eng.run(8)
    at = {t: [n for tt, n in seq if tt == t] for t in (0, 2 * QUANTA, 5 * QUANTA)}
    assert at[0][-1] == "probe0" and len(at[0]) > 1      # after every wake at 0
    assert at[2 * QUANTA][0] == "probe2"                 # before every wake at 2
    early = sorted({m.dst for m in sent if m.t_arrive == 5 * QUANTA and m.t_sent < 2 * QUANTA})
    i = at[5 * QUANTA].index("probe5")
    assert early and at[5 * QUANTA][:i] == early
    assert len(at[5 * QUANTA]) > i + 1


def test_random_streams_are_made_only_when_drawn_and_draw_the_same():
    eng = _engine(fine=True, init="zero")  # nothing draws
    eng.run(5)
    assert all(getattr(a._rng, "gen", None) is None for a in eng.agents.values())
    # a synapse's rule kept no proxy: the agent keeps none either, only the seed
    syn = next(a for n2, a in eng.agents.items() if "->" in n2)
    assert not hasattr(syn._rng, "gen")
    assert syn.rng.random() == agent_rng(3, syn.name).random()  # made when asked
    eng = _engine(fine=True, init="random")  # neurons draw their initial state
    made = {n for n, a in eng.agents.items() if getattr(a._rng, "gen", None) is not None}
    assert made and all("->" not in n and not n.startswith("src:") for n in made)
    # a hidden neuron: an output no target reaches keeps a zero delta (diffusion)
    name = min(n for n in made if n.startswith("l1"))
    # the stream went on from where the neuron's two draws left it
    ref = agent_rng(3, name)
    n = eng.net.populations[name].size
    a0, d0 = ref.standard_normal(n), ref.standard_normal(n)
    st = eng.state(name)
    assert np.array_equal(st["preact"], a0) and np.array_equal(st["delta"], d0)
    assert eng.agents[name].rng.random() == ref.random()
    # a stream set from outside (a checkpoint) is the one the agent draws from
    syn = next(a for n2, a in eng.agents.items() if "->" in n2)
    g = np.random.default_rng(7)
    syn.rng = g
    assert syn.rng is g and syn._rng.gen is g


def test_clear_schedule_then_schedule_wakes_only_what_was_scheduled():
    eng = _engine()
    woken: list = []
    eng.monitors.append(lambda a, t: woken.append((t, a.name)))
    eng.clear_schedule(4 * QUANTA)
    a = eng.agents["l1"]
    a.started = True
    eng.schedule(a, 5 * QUANTA)
    eng.schedule(a, 5 * QUANTA)  # once is enough
    eng.schedule(eng.agents["l0"], 6 * QUANTA)
    eng.run(7)
    assert woken == [(5 * QUANTA, "l1"), (6 * QUANTA, "l0")]
    with np.testing.assert_raises(ValueError):
        eng.schedule(a, 2 * QUANTA)


class _Keeper:
    """A rule whose synapses keep their stream and draw from it only later."""

    def __init__(self):
        self.inner = Diffusion(eta=0.01)
        self.kept = {}

    def neuron(self, pop, ports, rng):
        return self.inner.neuron(pop, ports, rng)

    def synapse(self, proj, ports, rng):
        model = self.inner.synapse(proj, ports, rng)
        self.kept[proj.name] = rng  # held, nothing drawn yet
        return model


def test_a_stream_the_rule_kept_is_the_agent_s_own():
    """A proxy the rule holds is never dropped: the agent and the rule draw
    from one stream, the one ``(seed, name)`` gives."""
    net = Network.from_graph(expand_to_neurons(
        Network.from_graph(layered([2, 2]), seed=0)), seed=0)
    rule = _Keeper()
    eng = Engine(net, rule, seed=4)
    name, rng = next(iter(rule.kept.items()))
    ref = agent_rng(4, name)
    assert rng.random() == ref.random()  # the rule draws first ...
    assert eng.agents[name].rng.random() == ref.random()  # ... the agent goes on from there


def test_a_run_collects_young_objects_less_often_and_restores_the_collector():
    import gc

    from asyncnet.engine import YOUNG
    before = gc.get_threshold()
    seen = []
    eng = _engine()
    eng.at(1.0, lambda e, t: seen.append(gc.get_threshold()))
    eng.run(3)
    assert seen and seen[0][0] == max(before[0], YOUNG) and seen[0][1:] == before[1:]
    assert gc.get_threshold() == before


def test_a_partition_keeps_no_table_for_messages_that_leave_it():
    """An engine that runs part of a network hands messages to other agents to
    its outbox; it keeps nothing for their arrival instants, so what it holds
    does not grow with the run's length (only instants with a message for one
    of its own agents have a table, and none of them is empty)."""
    net = Network.from_graph(expand_to_neurons(Network.from_graph(layered([2, 3, 2]), seed=0)),
                             seed=0)
    inputs = ["l0_0", "l0_1"]  # the input neurons and their data, none of their synapses
    src = {n: (lambda t: np.full(1, np.sin(t))) for n in inputs}
    left = Outbox({})
    eng = Engine(net, Diffusion(eta=0.01), seed=3, sources=src, remote=left,
                 local=inputs + [f"src:{n}" for n in inputs])
    eng.run(200)
    assert len(left) > 1000  # it sent, every time unit
    numbers, _ = left.take()  # each message sent by one of its agents to one elsewhere
    mine = {eng.index_of(n) for n in eng.agents}
    assert all(s in mine and d not in mine for s, d in zip(numbers[1::6], numbers[2::6],
                                                             strict=True))
    tables = eng._boxes  # the engine's tables by arrival instant (private: no other view)
    assert all(tables.values()) and len(tables) <= 2


def test_nothing_is_injected_into_the_instant_being_run():
    """A message for the instant under way would miss the agents woken already:
    it is refused, as one in the past is."""
    import pytest

    from asyncnet.messages import Message

    eng = _engine(fine=True)
    got: list = []

    def probe(e, t):
        m = Message(0, "l0_0->l1_0", "l1_0", e.env.now - 1, e.env.now, 10**6, np.zeros(1))
        for inject in (e.inject, lambda m: e.inject_columns(
                np.array([[m.kind, e.index_of(m.src), e.index_of(m.dst), m.t_sent,
                           m.t_arrive, m.seq]]), [m.payload])):
            with pytest.raises(RuntimeError, match="instant being run|while an instant runs"):
                inject(m)
        got.append(t)

    eng.at(2.0, probe)
    eng.run(3)
    assert got == [2.0]


def test_inbox_shows_what_waits_at_the_instant_under_way():
    """A probe registered before anything was due at its instant runs before
    every wake-up there: ``Engine.inbox`` then shows each agent's messages of
    that instant — exactly the batch the agent is handed next (the delivered
    batches, collected by a sink, are the reference)."""
    eng = _engine(fine=True, delay=2.0)
    seen: dict = {}

    def probe(e, t):
        q = int(e.env.now)
        for name, a in e.agents.items():
            waiting = e.inbox(a).get(q)
            if waiting:
                seen[name] = sorted(waiting)

    eng.at(5.0, probe)
    delivered: dict = {}
    eng.sinks.append(lambda b: delivered.setdefault(b[0].dst, b)
                     if b[0].t_arrive == 5 * QUANTA else None)
    eng.run(6)
    assert seen and seen == {d: sorted(b) for d, b in delivered.items()}


def _run_log(eng, until=12.0):
    """Every delivered batch of a run, and the weights after it."""
    seen: list = []
    eng.sinks.append(lambda batch: seen.append([(m.kind, m.src, m.dst, m.t_sent, m.t_arrive,
                                                 m.seq, np.asarray(m.payload).tobytes())
                                                for m in batch]))
    eng.run(until)
    weights = {n: a.model.W.tobytes() for n, a in eng.agents.items() if "->" in n}
    return seen, weights


def test_agents_with_nothing_to_start_are_not_woken_and_nothing_changes(monkeypatch):
    """Synapses (``start = None``, no timer) are not woken at the first instant:
    the same messages and weights as when every agent is woken at 0 and its
    start returns nothing (the engine before), and as with a monitor (which
    sees every wake-up, so with one they are woken as before)."""
    from asyncnet.schemes import diffusion
    woken0: list = []
    eng = _engine(fine=True)
    quiet = [a for a in eng.agents.values() if "->" in a.name]
    assert quiet and all(a.started for a in quiet)  # started without a wake-up
    new = _run_log(eng)
    with_monitor = _engine(fine=True)
    with_monitor.monitors.append(lambda a, t: t == 0 and woken0.append(a.name))
    watched = _run_log(with_monitor)
    assert set(woken0) == set(with_monitor.agents)  # a monitor sees every agent at 0
    for cls in (diffusion.Synapse, diffusion.OneSynapse):
        monkeypatch.setattr(cls, "start", lambda self, t: [])
    old_eng = _engine(fine=True)
    assert not any(a.started for a in old_eng.agents.values())
    old = _run_log(old_eng)
    assert new == old == watched
    assert len(new[0]) > 100


def test_a_message_at_the_first_instant_still_reaches_a_quiet_agent():
    eng = _engine(fine=True)
    syn = next(a for a in eng.agents.values() if "->" in a.name)
    pre = syn.routes_in[0][1][0].name
    from asyncnet.messages import FORWARD, Message
    eng.inject(Message(FORWARD, pre, syn.name, 0, 0, 10**6, np.ones(1)))
    got: list = []
    eng.sinks.append(lambda batch: got.extend(m for m in batch if m.seq == 10**6))
    eng.run(1)
    assert len(got) == 1 and got[0].dst == syn.name


def test_a_model_without_start_but_with_a_timer_is_woken_for_it():
    """``start = None`` spares the first wake-up only if nothing else is due:
    a timer is armed at the first instant and fires on its period."""
    fired: list = []
    net = Network.from_graph(layered([1, 1]), seed=0)
    eng = Engine(net, _ticking_synapses(fired=fired), seed=0)
    eng.run(7)
    assert fired == [2.0, 4.0, 6.0]


def test_a_frame_injected_as_columns_is_what_the_same_messages_one_by_one_give():
    """``Engine.inject_columns`` (a peer's frame, one loop) against ``Engine.inject``
    message by message: the same messages in flight to each agent, and the same
    run after (delivered batches, recorded sends, final states)."""
    from collections import Counter

    from asyncnet.messages import DELTA, FORWARD, Message

    def run(columns: bool):
        eng = _engine(fine=True)
        seen, noted = [], []
        eng.sinks.append(lambda b: seen.append([tuple(m[:6]) for m in b]))
        eng.record(lambda c: noted.append((c.t, list(c.sends[0]) if c.sends else None)))
        eng.run(2)
        rng = np.random.default_rng(4)
        msgs = []
        # the instants each agent has messages in flight for: some arrive then too
        due = {n: [t for t in sorted(eng.inbox(a)) if t > eng.env.now]
               for n, a in eng.agents.items()}
        for k, (a, links) in enumerate(sorted(eng.links.items())):
            for b, delay in sorted(links.items()):
                if rng.random() < 0.8 and not a.startswith("src:") and \
                        not b.startswith("src:"):  # two at one receiver now and then
                    t_sent = eng.env.now - int(rng.integers(0, 2))
                    if due.get(b) and due[b][0] - delay <= eng.env.now and k % 2:
                        t_sent = due[b][0] - delay
                    for extra in range(1 + (k % 3 == 0)):  # a second one on the link now and then
                        msgs.append(Message((FORWARD, DELTA)[k % 2], a, b, t_sent,
                                            t_sent + delay, 10**6 + 2 * k + extra,
                                            rng.normal(size=1)))
        assert len(msgs) > 15 and min(m.t_arrive for m in msgs) > eng.env.now
        # some receiver gets several at an instant it has messages in flight for already
        held = {(n, t) for n, a in eng.agents.items() for t in eng.inbox(a)}
        assert max(Counter((m.dst, m.t_arrive) for m in msgs
                           if (m.dst, m.t_arrive) in held).values()) > 1
        _inject(eng, msgs, columns)
        inboxes = {n: {t: [tuple(m[:6]) for m in ms] for t, ms in eng.inbox(a).items()}
                   for n, a in eng.agents.items()}
        eng.run(8)
        states = {n: {k: np.asarray(v).tolist() for k, v in eng.state(n).items()}
                  for n in eng.agents}
        return inboxes, seen, noted, states

    one_by_one, columns = run(False), run(True)
    assert sum(map(len, one_by_one[0].values())) > 0
    for a, b in zip(one_by_one, columns, strict=True):
        assert a == b


def test_a_message_injected_for_when_its_receivers_timer_fires_wakes_it_once():
    """A receiver whose timer is due at a message's arrival is woken once then,
    by ``inject`` and by ``inject_columns`` alike: timer and message in one
    wake-up (the timer's due entry is not doubled), and an agent nothing was
    due for put in the instant's wake list."""
    from asyncnet.messages import FORWARD, Message

    def run(columns: bool):
        eng = Engine(Network.from_graph(layered([1, 1]), seed=0), _ticking_synapses(got=got),
                     seed=0)
        woken: list = []
        eng.monitors.append(lambda a, t: woken.append((t, a.name)))
        eng.run(3)  # the synapse's timer fired at 2, and is armed for 4
        syn = next(n for n in eng.agents if type(eng.agents[n].model).__name__ == "Ticker")
        neuron = next(n for n in eng.agents if n != syn and n in eng.links[syn])
        d = eng.links[neuron][syn]
        ta = 4 * QUANTA
        assert eng.agents[syn].timer_due == ta
        msgs = [Message(FORWARD, neuron, syn, ta - d, ta, 10**6, np.ones(1)),
                Message(FORWARD, syn, neuron, ta - d, ta, 10**6 + 1, np.ones(1))]
        _inject(eng, msgs, columns)
        eng.run(6)
        return woken, list(got)

    got: list = []
    one_by_one = run(False)
    got.clear()
    columns = run(True)
    assert one_by_one == columns
    woken = columns[0]
    assert woken.count((4 * QUANTA, next(n for t, n in woken if t == 2 * QUANTA))) == 1
    assert (4.0, [10**6]) in columns[1]
    at4 = [n for t, n in woken if t == 4 * QUANTA]
    assert len(at4) == len(set(at4)) == 2  # the synapse and the neuron, once each


def test_a_partition_hands_its_recorders_only_sends_that_deliver_here():
    """A partition's engine sends some of its agents' messages to another
    partition only (a neuron to the synapses the other one runs): its recorders
    are handed every send with a receiver here, and no send without one, so the
    sends expand to exactly the messages delivered here (and the outbox has the rest)."""
    from asyncnet.agents import Outbox
    from asyncnet.capture import local_receivers, send_table

    full = _engine(fine=True)
    names = full.names
    net = Network.from_graph(expand_to_neurons(Network.from_graph(
        layered([2, 3, 2], delay=3.0), seed=0)), seed=0)
    # this partition: the first layer, its sources, and the synapses into the last layer
    mine = [n for n in names if n.startswith(("l0", "src:")) or n.endswith(tuple(
        f"l2_{k}" for k in range(2))) and "->" in n]
    src = {n: (lambda t, k=p.size: np.full(k, np.sin(t))) for n, p in net.populations.items()
           if n.startswith("l0")}
    out = Outbox({n: i for i, n in enumerate(names)})
    eng = Engine(net, Diffusion(eta=0.01, init_state="random"), seed=3, sources=src,
                 local=mine, remote=out)
    assert eng.names == names
    got: list = []
    eng.record(lambda c: got.append((c.t, send_table(c.sends), c.table)))
    delivered: list = []
    eng.sinks.append(lambda b: delivered.extend((m.dst, m.t_arrive, m.seq) for m in b))
    eng.run(12)
    assert out.payloads and got  # messages left for the other partition; some stayed
    here = []
    for t, table, receivers in got:
        send, pos, dst = local_receivers(table, receivers)
        assert np.array_equal(np.unique(send), np.arange(len(table)))  # each delivers here
        here += [(names[d], t, q) for d, q in zip(
            dst.tolist(), (table[send, 2] + pos + 1).tolist(), strict=True)]
    assert sorted(here) == sorted(delivered)


def test_what_a_run_leaves_in_flight_is_not_walked_when_the_collector_is_restored():
    """A run ends with thousands of messages in flight, all made during it. They
    join the oldest generation unvisited: restoring the threshold does not make
    the next allocation walk them all (4.7% of the L net's run). Cyclic garbage
    made during the run is still collected, and nothing is left frozen."""
    import gc
    import weakref

    class Node:
        pass

    def cycle(e, t):
        a, b = Node(), Node()
        a.other, b.other = b, a
        refs.append(weakref.ref(a))

    refs: list = []
    eng = _engine(sizes=(8, 16, 16, 8), fine=True)
    eng.at(1.5, cycle)
    starts: list[int] = []

    def watch(phase, info):
        if phase == "start":
            starts.append(info["generation"])

    gc.collect()
    gc.callbacks.append(watch)
    try:
        eng.run(4)
        junk = [[] for _ in range(gc.get_threshold()[0] // 2)]  # fewer than the threshold
    finally:
        gc.callbacks.remove(watch)
    flight = sum(len(v) if type(v) is list else 1 for box in eng._boxes.values()
                 for v in box.values())
    assert flight > gc.get_threshold()[0]  # more than a young generation holds
    assert starts == []  # no collection: not in the run, not at the first allocations after
    assert gc.get_freeze_count() == 0 and len(junk)
    assert refs and refs[0]() is not None  # the cycle outlived the run (no collection) ...
    gc.collect()
    assert refs[0]() is None  # ... and a collection still finds it
