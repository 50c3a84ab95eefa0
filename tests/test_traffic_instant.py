"""``Traffic.instant`` (a whole instant at once) against ``Traffic`` fed batch by batch.

The run summary's counters take an instant in C loops; the figures must be
those of the per-message loop, latency traces included: both counters are
fed the very same batches of real runs (inputs that change, so traces open
and close mid-instant), and every attribute is compared.
"""

from __future__ import annotations

import copy
import os
from itertools import chain

import numpy as np
import pytest

from asyncnet.messages import CONTROL, DELTA, FORWARD, QUANTA, Message
from asyncnet.metrics import Traffic
from asyncnet.scenario import load
from asyncnet.simulation import build_engine, feed_traffic, new_traffic

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scenarios")
TRACE_FIELDS = ("traces_left", "last_input", "cones", "latency_forward", "latency_credit")
SMALL = Traffic.small_instant  # the default, before a test changes it
FIELDS = ("count", "local", "dmin", "dmax", "dsum", "traces_left", "last_input", "cones",
          "latency_forward", "latency_credit")


def _state(tr: Traffic) -> dict:
    return {k: copy.deepcopy(getattr(tr, k)) for k in FIELDS}


def _logged(eng, net, reference: Traffic, traces: int | None = None,
            horizon: int | None = None) -> dict:
    """A counter fed as a run with an event log feeds it (from the sends the log's
    capture has), checked against ``reference`` at the end of every instant;
    returns how many instants were counted from sends and from batches."""
    logged = new_traffic(eng.links, net)
    if traces is not None:
        logged.traces_left = traces
    if horizon is not None:
        logged.horizon = horizon
    ways = {"sends": 0, "batches": 0}
    count_sends = logged._count_sends

    def counted(*a):
        ok = count_sends(*a)
        ways["sends" if ok else "batches"] += 1
        return ok
    logged._count_sends = counted
    eng.record(lambda captured: None)  # a log's writer, say: the engine captures sends
    feed_traffic(eng, logged)

    def check(captured):
        assert _state(logged) == _state(reference)
    eng.record(check)
    return ways


@pytest.mark.parametrize("small", [0, Traffic.small_instant])  # 0: every instant in C loops
@pytest.mark.parametrize("name,until", [("quickstart", 400.0), ("diffusion_streams", 60.0),
                                        ("continuous_cyclic", 40.0), ("stlp_fixedpoint_dag", 30.0),
                                        ("quickstart-zero", 400.0),
                                        ("diffusion_streams-zero", 60.0)])
def test_instant_counts_as_batches_do(name, until, small, monkeypatch):
    """``-zero``: the data sources' links take no time (an instant then runs twice,
    its sinks called for each part)."""
    monkeypatch.setattr(Traffic, "small_instant", small)
    sc = load(os.path.join(ROOT, f"{name.removesuffix('-zero')}.toml"))
    eng, net, _ = build_engine(sc, **({"source_delay": 0.0} if name.endswith("-zero") else {}))
    by_batch = new_traffic(eng.links, net)
    by_instant = new_traffic(eng.links, net)
    fed = new_traffic(eng.links, net)  # told the engine's off-route messages, as a run is
    eng.sinks.append(by_batch)
    eng.instant_sinks.append(by_instant.instant)
    feed_traffic(eng, fed)
    ways = _logged(eng, net, by_batch)

    times = []

    def after(batches):  # compared at every instant, not only at the end
        times.append(batches[0][0].t_arrive)
        assert _state(by_instant) == _state(by_batch)
        assert _state(fed) == _state(by_batch)
    eng.instant_sinks.append(after)
    eng.run(min(until, sc.duration))
    assert _state(by_instant) == _state(by_batch)
    assert (len(set(times)) < len(times)) == name.endswith("-zero")  # instants run twice
    assert by_batch.count[FORWARD] > 0 and by_batch.local > 0
    if name.removesuffix("-zero") in ("quickstart", "diffusion_streams"):  # traces opened, closed
        assert by_batch.latency_forward and by_batch.latency_credit
    assert by_instant.summary() == by_batch.summary()
    if small == 0:  # else these instants, of a few messages each, are counted one by one
        assert ways["sends"] > 10 * ways["batches"]
    else:
        assert ways["sends"] + ways["batches"] < len(times) // 10


@pytest.mark.parametrize("horizon", [None, 1.5])
@pytest.mark.parametrize("small", [0, Traffic.small_instant])
@pytest.mark.parametrize("traces", [1, 5])
def test_a_per_neuron_net_traces_as_batches_do(traces, small, horizon, monkeypatch):
    """Hundreds of messages an instant, traces open over most of the run (one
    at a time or several at once; ended by the credit found or, with a short
    horizon, by the horizon): the instant's C loops pick the messages that
    can change a cone; the state is the per-message loop's at every instant."""
    from asyncnet.data import make_stream
    from asyncnet.engine import Engine
    from asyncnet.network import Network, expand_to_neurons, layered
    from asyncnet.schemes.diffusion import Diffusion
    monkeypatch.setattr(Traffic, "small_instant", small)
    pop = Network.from_graph(layered([4, 7, 6, 3]), seed=2)
    stream = make_stream("piecewise", n_in=4, n_out=3, input_node="l0", output_node="l3",
                         seed=1, duration=40.0, hold=2.5)
    g = expand_to_neurons(pop)
    rng = np.random.default_rng(traces)
    for _, _, a in g.edges(data=True):  # many instants, cones growing over many of them
        a["delay"] = float(rng.choice([0.5, 0.75, 1.0, 1.25, 2.0]))
    # a sparse net: each input's change reaches part of each layer
    g.remove_edges_from([e for e in list(g.edges) if rng.random() < 0.4])
    net = Network.from_graph(g, seed=0)
    src = {f"{nd}_{k}": (lambda t, nd=nd, k=k: stream.value(nd, t)[k:k + 1])
           for nd, n in (("l0", 4), ("l3", 3)) for k in range(n)}
    eng = Engine(net, Diffusion(eta=0.05), seed=3, sources=src)
    by_batch, by_instant, following, windows, fed = (new_traffic(eng.links, net)
                                                     for _ in range(5))
    for tr in (by_batch, by_instant, following, windows, fed):
        tr.traces_left = traces
        if horizon is not None:
            tr.horizon = round(horizon * QUANTA)
    eng.sinks.append(by_batch)
    eng.instant_sinks.append(by_instant.instant)
    feed_traffic(eng, fed)
    ways = _logged(eng, net, by_batch, traces,
                   None if horizon is None else round(horizon * QUANTA))
    busy, held = [], []

    def after(batches):
        busy.append((sum(map(len, batches)), len(by_batch.cones)))
        assert _state(by_instant) == _state(by_batch)
        assert _state(fed) == _state(by_batch)
        # follow (a coordinator's): an instant at a time, and several instants at once
        following.follow(list(chain.from_iterable(batches)))
        assert {k: getattr(following, k) for k in TRACE_FIELDS} \
            == {k: getattr(by_batch, k) for k in TRACE_FIELDS}
        held.extend(chain.from_iterable(batches))
        if len(busy) % 5 == 0:
            windows.follow(held)
            held.clear()
            assert {k: getattr(windows, k) for k in TRACE_FIELDS} \
                == {k: getattr(by_batch, k) for k in TRACE_FIELDS}
    eng.instant_sinks.append(after)
    eng.run(30.0)
    assert len(by_batch.latency_forward) == traces
    # the credit is found within the default horizon; the short one ends some cones first
    assert len(by_batch.latency_credit) == traces if horizon is None \
        else len(by_batch.latency_credit) < traces
    # instants the C loops took while traces were open
    assert sum(1 for _, open_ in busy if open_) > 10
    assert sum(1 for n, open_ in busy if n >= SMALL and open_) > 5
    if traces > 1:
        assert max(open_ for _, open_ in busy) > 1
    assert by_instant.summary() == by_batch.summary()
    assert ways["sends"] > 10 * ways["batches"]


def test_a_sender_without_links_and_huge_delays():
    """The fallbacks (a sender the table does not know, a delay past int64) count alike."""
    links = {"a": {"b": 2}, "b": {"a": 2}}
    h = QUANTA
    batches = [[Message(FORWARD, "a", "b", 0, 2, 1, 0.0), Message(CONTROL, "src:x", "b", 0, 2, 1,
                                                                  1.0)],
               [Message(DELTA, "b", "a", 2**64 - 5, 2**64, 1, 0.0)],
               [Message(DELTA, "b", "a", 0, 2, 2, 0.0), Message(DELTA, "b", "a", 1, 2, 3, h)]]
    one, other = Traffic(links, ["a"], ["b"]), Traffic(links, ["a"], ["b"])
    other.small_instant = 0  # the C loops' fallbacks, not the small instants' loop
    for b in batches:
        one(b)
        other.instant([b])
    assert _state(one) == _state(other)


def test_times_and_delays_at_the_edges_of_int64_count_as_batches_do():
    """The instant counter's int64 columns: negative times (the per-message loop
    takes them), a message that arrives before it was sent on no link, sums of
    delays past 2**63 (exact, as Python ints), a link delay past int64."""
    big = 2**62
    links = {"a": {"b": 2, "c": 2**63 + 1}, "b": {"a": 2}, "c": {"a": 2**63 + 1}}
    batches = [[Message(FORWARD, "a", "b", -5, 2, 1, 0.0),
                Message(FORWARD, "a", "b", 0, 2, 2, 0.0)],
               [Message(DELTA, "c", "b", 5, 4, 1, 0.0)],  # before it was sent, on no link
               [Message(DELTA, "b", "a", 0, -3, 1, 0.0)],
               [Message(FORWARD, "a", "b", 1, big + 1, k, 0.0) for k in range(4)],
               [Message(FORWARD, "a", "c", 0, 2**63 - 1, 1, 0.0)],
               [Message(FORWARD, "b", "a", 0, 2, 1, 0.0), Message(DELTA, "b", "a", 0, 2, 2, 0.0),
                Message(FORWARD, "a", "c", 0, 2**63 + 1, 3, 0.0)]]
    one, other = Traffic(links, ["a"], ["b"]), Traffic(links, ["a"], ["b"])
    other.small_instant = 0
    for b in batches:
        one(b)
        other.instant([b])
        assert _state(one) == _state(other)
    assert one.dsum[FORWARD] > 2**63 and one.local >= 4


@pytest.mark.parametrize("kind", [3, 300, -1, "forward"])
def test_an_unknown_kind_counts_as_a_batch_does(kind):
    """Whatever the per-batch counter does with a kind it does not know (raise, or
    count it somewhere), the instant counter does the same."""
    links = {"a": {"b": 2}, "b": {"a": 2}}
    batch = [Message(FORWARD, "a", "b", 0, 2, 1, 0.0), Message(kind, "a", "b", 0, 2, 2, 0.0)]
    outcomes = []
    for feed in (lambda tr: tr(batch), lambda tr: tr.instant([batch])):
        tr = Traffic(links, ["a"], ["b"])
        tr.small_instant = 0
        try:
            feed(tr)
            outcomes.append((None, _state(tr)))
        except Exception as e:
            outcomes.append((type(e), _state(tr)))
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("name,until", [("quickstart", 400.0), ("diffusion_streams", 60.0)])
def test_follow_traces_as_the_counter_does_and_counts_nothing(name, until):
    """``follow`` (a distributed run's coordinator) leaves the latency traces
    as the counter fed batch by batch leaves them, at every instant, and
    counts no message: the counts come from the workers."""
    sc = load(os.path.join(ROOT, f"{name}.toml"))
    eng, net, _ = build_engine(sc)
    by_batch = new_traffic(eng.links, net)
    following = new_traffic(eng.links, net)
    eng.sinks.append(by_batch)
    eng.sinks.append(following.follow)

    def after(batches):
        assert ({k: getattr(following, k) for k in TRACE_FIELDS}
                == {k: getattr(by_batch, k) for k in TRACE_FIELDS})
    eng.instant_sinks.append(after)
    eng.run(min(until, sc.duration))
    assert by_batch.latency_forward and by_batch.latency_credit  # traces opened and closed
    assert following.latency_forward == by_batch.latency_forward
    assert following.latency_credit == by_batch.latency_credit
    assert following.count == [0, 0, 0] and following.local == 0


def test_sends_count_what_is_delivered_here_and_no_more():
    """From sends (:meth:`Traffic.sends`): a send whose receivers all run in another
    partition counts nothing here, not even its delay; an injected message (a
    send named by its receiver) counts once; and sends that do not add up to the
    delivered batches are not trusted (the batches are counted instead)."""
    from asyncnet.capture import Captured, send_table
    from asyncnet.wiring import ReceiverTable

    class Stub:
        def __init__(self, idx):
            self.idx = idx

    receivers = ReceiverTable()
    for group in ([1, -4], [-3]):  # b and another partition's d; c alone, elsewhere
        receivers.key(tuple(Stub(i) for i in group))
    links = {"a": {"b": 4, "c": 8, "d": 4}, "c": {"b": 2}, "b": {"a": 4, "c": 2},
             "d": {"a": 4}}
    pay = np.zeros(1)
    # (src, t_sent, seq before, kind, key): a -> b (and d elsewhere) sent at 5; a -> c
    # elsewhere only, sent at 1 (a delay of 8, longer than any here); c -> b injected
    numbers = [0, 5, 0, FORWARD, 0,  0, 1, 2, FORWARD, 1,  2, 7, 3, DELTA, -2]
    captured = Captured(9, (numbers, [pay] * 3), None, receivers, 4)
    batches = [[Message(FORWARD, "a", "b", 5, 9, 1, pay), Message(DELTA, "c", "b", 7, 9, 4, pay)]]
    reference, tr = Traffic(links, [], []), Traffic(links, [], [])
    for b in batches:
        reference(b)
    tr.sends(captured, send_table(captured.sends), batches, ())
    assert _state(tr) == _state(reference)
    assert tr.dmax[FORWARD] == 4 and tr.count == [1, 1, 0] and tr.local == 2
    assert Traffic(links, [], [])._count_sends(captured, send_table(captured.sends), batches, ())
    # a send short of what was delivered: the batches are counted
    short = Captured(9, (numbers[:10], [pay] * 2), None, receivers, 4)
    again = Traffic(links, [], [])
    again.sends(short, send_table(short.sends), batches, ())
    assert _state(again) == _state(reference)
    assert not Traffic(links, [], [])._count_sends(short, send_table(short.sends), batches, ())


def test_sends_of_an_engine_without_routes_count_as_its_batches():
    """Every message injected (sends named by their receivers, no route table)."""
    from asyncnet.capture import Captured, send_table
    from asyncnet.wiring import ReceiverTable
    links = {"a": {"b": 4}, "b": {"a": 4, "c": 2}, "c": {"b": 2}}
    pay = np.zeros(1)
    numbers = [0, 5, 0, FORWARD, -2,  2, 7, 3, DELTA, -2]
    captured = Captured(9, (numbers, [pay] * 2), None, ReceiverTable(), 3)
    batches = [[Message(FORWARD, "a", "b", 5, 9, 1, pay), Message(DELTA, "c", "b", 7, 9, 4, pay)]]
    reference, tr = Traffic(links, [], []), Traffic(links, [], [])
    reference(batches[0])
    assert tr._count_sends(captured, send_table(captured.sends), batches, ())
    assert _state(tr) == _state(reference)
