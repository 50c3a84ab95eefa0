"""The latency trace's rows a partition sends: only what can matter, and enough.

The reference is the in-process counter fed every delivered message batch by
batch (``Traffic.__call__``); the coordinator's side is ``Traffic.follow`` fed
only the rows :class:`~asyncnet.cluster.cones.ConeWatch` kept, told what a
:class:`~asyncnet.cluster.cones.ConeTeller` says at each window's start. The
traces must be the same at every instant, data sources' zero-delay links
included (an instant then runs twice).
"""

from __future__ import annotations

import os

import pytest

from asyncnet.cluster import wire
from asyncnet.cluster.cones import ConeTeller, ConeWatch
from asyncnet.cluster.merge import trace_messages
from asyncnet.scenario import load
from asyncnet.simulation import build_engine, new_traffic

from .test_traffic_instant import ROOT, TRACE_FIELDS


def _engine(name):
    """The scenario's engine; ``-zero``: its data sources' links have no delay (an
    instant then runs twice; only the engine's API makes such a link)."""
    sc = load(os.path.join(ROOT, f"{name.removesuffix('-zero')}.toml"))
    kw = {"source_delay": 0.0} if name.endswith("-zero") else {}
    return (sc, *build_engine(sc, **kw)[:2])


@pytest.mark.parametrize("window", [1, 7])
@pytest.mark.parametrize("name,until", [("quickstart", 400.0), ("diffusion_streams", 60.0),
                                        ("quickstart-zero", 400.0),
                                        ("diffusion_streams-zero", 60.0)])
def test_kept_rows_trace_as_every_message_does(name, until, window):
    """Following only the rows kept leaves the traces as following every message
    does, at every instant, with the coordinator's word taken every ``window``
    instants; and fewer rows are sent than messages delivered while tracing."""
    sc, eng, net = _engine(name)
    assert (0 in eng.links[f"src:{net.inputs()[0]}"].values()) == name.endswith("-zero")
    index = {n: i for i, n in enumerate(eng.names)}
    by_batch = new_traffic(eng.links, net)
    following = new_traffic(eng.links, net)
    watch = ConeWatch(index, frozenset(net.inputs()), frozenset(net.outputs()))
    teller = ConeTeller(index)
    eng.sinks.append(by_batch)
    seen = {"instants": 0, "rows": 0, "traced": 0}

    def instant(batches):
        if seen["instants"] % window == 0:
            watch.told(teller.watch(following.cones))
        seen["instants"] += 1
        tracing = bool(following.cones)
        watch.instant(batches)
        rows = watch.take()
        following.follow(trace_messages([wire.pack(rows)], eng.names))
        assert ({k: getattr(following, k) for k in TRACE_FIELDS}
                == {k: getattr(by_batch, k) for k in TRACE_FIELDS})
        if tracing:
            seen["rows"] += len(rows)
            seen["traced"] += sum(map(len, batches))
    eng.instant_sinks.append(instant)
    eng.run(min(until, sc.duration))
    assert by_batch.latency_forward and by_batch.latency_credit  # traces opened and closed
    assert seen["rows"] < seen["traced"]


def test_a_watch_that_forgets_its_own_guesses_and_one_told_more_trace_alike():
    """What a partition guesses (a first value it has not seen: after a resume) and
    what the coordinator tells it beyond the cones (a superset) only add rows."""
    sc = load(os.path.join(ROOT, "quickstart.toml"))
    eng, net, _ = build_engine(sc)
    index = {n: i for i, n in enumerate(eng.names)}
    by_batch = new_traffic(eng.links, net)
    following = new_traffic(eng.links, net)
    watch = ConeWatch(index, frozenset(net.inputs()), frozenset(net.outputs()))
    eng.sinks.append(by_batch)
    every = list(range(len(eng.names)))

    def instant(batches):
        if len(following.latency_forward) == 1 and following.cones:
            watch.told([False, every, every])  # everything, as if every agent were reached
        watch.seen.clear()  # nothing seen before: every input value looks new
        watch.instant(batches)
        following.follow(trace_messages([wire.pack(watch.take())], eng.names))
        assert following.cones == by_batch.cones
    eng.instant_sinks.append(instant)
    eng.run(200.0)
    assert following.latency_forward == by_batch.latency_forward
    assert following.latency_credit == by_batch.latency_credit
    assert len(by_batch.latency_forward) >= 3


def test_the_teller_says_each_agent_once_and_forgets_when_no_cone_is_open():
    index = {n: i for i, n in enumerate(["a", "b", "c", "d"])}
    t = ConeTeller(index)
    assert t.watch([]) == [True, [], []]
    cones = [{"reach": {"c": 1, "a": 0}, "back": {}}, {"reach": {"a": 3}, "back": {"d": 5}}]
    assert t.watch(cones) == [False, [0, 2], [3]]
    cones[0]["reach"]["b"] = 2
    assert t.watch(cones) == [False, [1], []]
    assert t.watch(cones) == [False, [], []]
    assert t.watch([]) == [True, [], []]
    assert t.watch(cones[1:]) == [False, [0], [3]]  # told again after forgetting


@pytest.mark.parametrize("watch", [[True, []], (True, [], []), [1, [], []], [False, [0.0], []],
                                   [False, [], [99]], [False, [-1], []], [False, "ab", []]])
def test_a_malformed_watch_is_refused_with_a_clear_error(watch):
    from asyncnet.cluster.wire import WireError
    w = ConeWatch({"a": 0, "b": 1}, frozenset(["a"]), frozenset(["b"]))
    with pytest.raises(WireError, match="latency-trace watch"):
        w.told(watch)
    w.told([False, [1], [0]])
    assert w.fwd == {"b"} and w.back == {"a"}
