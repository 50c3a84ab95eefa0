"""The run summary's locality count when the engine says which messages came off route.

A run feeds its counter each instant with the messages the engine did not
send along a route (``Engine.offroute``): only those are looked up in the
link table, the others travel one link with its delay by construction. The
reference is the counter fed batch by batch, which looks every message up.
Here messages come in other ways too — injected along a link with another
delay, from an agent that is no neighbour, and restored into an inbox — so
the figure is not simply "every message".
"""

from __future__ import annotations

import copy
import os

import pytest

from asyncnet.messages import Message
from asyncnet.metrics import Traffic
from asyncnet.scenario import load
from asyncnet.simulation import build_engine, feed_traffic, new_traffic

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scenarios")
FIELDS = ("count", "local", "dmin", "dmax", "dsum", "traces_left", "last_input", "cones",
          "latency_forward", "latency_credit")


def _state(tr: Traffic) -> dict:
    return {k: copy.deepcopy(getattr(tr, k)) for k in FIELDS}


def _engine_with_counters(name: str):
    sc = load(os.path.join(ROOT, f"{name}.toml"))
    eng, net, _ = build_engine(sc)
    reference, fed = new_traffic(eng.links, net), new_traffic(eng.links, net)
    eng.sinks.append(reference)
    feed_traffic(eng, fed)
    seen: list[Message] = []

    def after(batches):  # at every instant, not only at the end
        assert _state(fed) == _state(reference)
        seen.extend(m for b in batches for m in b)
    eng.instant_sinks.append(after)
    return eng, reference, fed, seen


def _strangers(eng, seen: list[Message], t: int) -> list[Message]:
    """Messages to arrive at ``t``: one along a link with another delay, one from
    an agent that is not the receiver's neighbour, one along a link with its delay."""
    m = next(x for x in reversed(seen) if x.kind != 2)  # a data message, payload and all
    delay = eng.links[m.src][m.dst]
    stranger = next(a for a in eng.names if a not in eng.links[m.dst] and a != m.dst)
    return [m._replace(t_sent=t - delay - 1, t_arrive=t, seq=10**6),
            m._replace(src=stranger, t_sent=t - 1, t_arrive=t, seq=10**6 + 1),
            m._replace(t_sent=t - delay, t_arrive=t, seq=10**6 + 2)]


@pytest.mark.parametrize("small", [0, Traffic.small_instant])  # 0: every instant in C loops
@pytest.mark.parametrize("name", ["quickstart", "diffusion_streams"])
def test_injected_messages_are_looked_up(name, small, monkeypatch):
    monkeypatch.setattr(Traffic, "small_instant", small)
    eng, reference, fed, seen = _engine_with_counters(name)
    eng.run(3.0)
    now = int(eng.env.now)
    for k, t in enumerate((now, now + 7, now + 7)):  # one instant of its own, one shared
        for m in _strangers(eng, seen, t)[k % 2:]:
            eng.inject(m)
    eng.run(6.0)
    assert _state(fed) == _state(reference)
    total = sum(reference.count)
    # the strangers were delivered and four of them are not one-link messages
    assert reference.local <= total - 4
    assert fed.summary() == reference.summary()


@pytest.mark.parametrize("name", ["quickstart", "diffusion_streams"])
def test_a_restored_inbox_is_looked_up_whole(name):
    """A restored inbox (a checkpoint's) may hold anything: its instants are
    looked up message by message, the others as before."""
    eng, reference, fed, seen = _engine_with_counters(name)
    eng.run(3.0)
    now = int(eng.env.now)
    odd = _strangers(eng, seen, now + 5)
    agent = eng.agents[odd[0].dst]
    inbox = eng.inbox(agent)
    inbox.setdefault(now + 5, []).extend(odd)
    eng.set_inbox(agent, inbox)
    eng.schedule(agent, now + 5)
    eng.run(6.0)
    assert _state(fed) == _state(reference)
    assert reference.local <= sum(reference.count) - 2


def test_a_message_taken_out_of_an_inbox_is_not_counted():
    """Replacing an inbox takes out messages noted off route: their instant is
    then looked up whole (a note naming a message never delivered would
    miscount it)."""
    eng, reference, fed, seen = _engine_with_counters("diffusion_streams")
    eng.run(3.0)
    # an instant other messages arrive at, to other agents too
    t = min(t for a in eng.agents.values() for t in eng.inbox(a))
    odd = _strangers(eng, seen, t)
    for m in odd:
        eng.inject(m)
    agent = eng.agents[odd[0].dst]
    inbox = eng.inbox(agent)
    del inbox[t]  # the strangers out (the instant runs: others arrive then)
    eng.set_inbox(agent, inbox)
    times = []
    eng.instant_sinks.append(lambda batches: times.append(batches[0][0].t_arrive))
    eng.run(6.0)
    assert _state(fed) == _state(reference)
    assert t in times
