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

import numpy as np
import pytest

from asyncnet.capture import send_table
from asyncnet.cluster import wire
from asyncnet.cluster.cones import ConeTeller, ConeWatch, read_trace_frame, trace_frame
from asyncnet.cluster.merge import trace_messages
from asyncnet.messages import DELTA, FORWARD, Message
from asyncnet.scenario import load
from asyncnet.simulation import build_engine, new_traffic

from .test_traffic_instant import ROOT, TRACE_FIELDS


def _feed(eng, watch, via, instant):
    """Call ``instant(batches, feed)`` at the end of each of ``eng``'s instants, where
    ``feed()`` gives ``watch`` the instant as a partition does: its delivered
    batches (``via="batches"``, a partition without a log), or its sends as
    the log's capture has them (``"sends"``; the batches where that cannot be
    done). Returns how many instants went each way."""
    ways = {"sends": 0, "batches": 0}
    if via == "batches":
        def each(batches):
            ways["batches"] += 1
            instant(batches, lambda: watch.instant(batches))
        eng.instant_sinks.append(each)
        return ways
    held = []
    eng.instant_sinks.append(held.append)

    def recorder(captured):
        batches = held.pop() if held else []
        if captured.sends is None:
            batches = captured.batches

        def feed():
            if captured.sends is not None and watch.sends(captured, send_table(captured.sends)):
                ways["sends"] += 1
            else:
                ways["batches"] += 1
                watch.instant(batches)
        if batches:
            instant(batches, feed)
    eng.record(recorder)
    return ways


def _rows(frame, agents):
    """A trace frame's rows, sorted, with each control row's value."""
    if not frame:
        return []
    rows, values = read_trace_frame(frame, agents)
    return sorted((*r, None if v is None else tuple(v.tolist()))
                  for r, v in zip(rows.tolist(), values, strict=True))


def _engine(name):
    """The scenario's engine; ``-zero``: its data sources' links have no delay (an
    instant then runs twice; only the engine's API makes such a link)."""
    sc = load(os.path.join(ROOT, f"{name.removesuffix('-zero')}.toml"))
    kw = {"source_delay": 0.0} if name.endswith("-zero") else {}
    return (sc, *build_engine(sc, **kw)[:2])


@pytest.mark.parametrize("via", ["batches", "sends"])
@pytest.mark.parametrize("window", [1, 7])
@pytest.mark.parametrize("name,until", [("quickstart", 400.0), ("diffusion_streams", 60.0),
                                        ("quickstart-zero", 400.0),
                                        ("diffusion_streams-zero", 60.0)])
def test_kept_rows_trace_as_every_message_does(name, until, window, via):
    """Following only the rows kept leaves the traces as following every message
    does, at every instant, with the coordinator's word taken every ``window``
    instants, from the delivered batches or from the log's sends; and fewer
    rows are sent than messages delivered while tracing."""
    sc, eng, net = _engine(name)
    assert (0 in eng.links[f"src:{net.inputs()[0]}"].values()) == name.endswith("-zero")
    index = {n: i for i, n in enumerate(eng.names)}
    by_batch = new_traffic(eng.links, net)
    following = new_traffic(eng.links, net)
    watch = ConeWatch(index, frozenset(net.inputs()), frozenset(net.outputs()))
    teller = ConeTeller(index)
    eng.sinks.append(by_batch)
    seen = {"instants": 0, "rows": 0, "traced": 0}

    twin = ConeWatch(index, frozenset(net.inputs()), frozenset(net.outputs()))

    def instant(batches, feed):
        if seen["instants"] % window == 0:
            told = teller.watch(following.cones, following.horizon)
            watch.told(told)
            twin.told(told)
        seen["instants"] += 1
        tracing = bool(following.cones)
        feed()
        frame = watch.take()
        twin.instant(batches)  # the batches' rows: the same, row for row
        assert _rows(frame, len(eng.names)) == _rows(twin.take(), len(eng.names))
        following.follow(trace_messages([frame], eng.names))
        assert ({k: getattr(following, k) for k in TRACE_FIELDS}
                == {k: getattr(by_batch, k) for k in TRACE_FIELDS})
        if tracing:
            seen["rows"] += len(read_trace_frame(frame, len(eng.names))[0]) if frame else 0
            seen["traced"] += sum(map(len, batches))
    ways = _feed(eng, watch, via, instant)
    eng.run(min(until, sc.duration))
    assert by_batch.latency_forward and by_batch.latency_credit  # traces opened and closed
    assert seen["rows"] < seen["traced"]
    assert ways[via] > ways["sends" if via == "batches" else "batches"]


@pytest.mark.parametrize("via", ["batches", "sends"])
@pytest.mark.parametrize("horizon", [None, 1.5])
@pytest.mark.parametrize("window", [1, 7])
def test_a_per_neuron_net_sends_no_row_to_a_settled_agent_and_traces_alike(window, horizon, via):
    """Hundreds of messages an instant: once every open cone has found its first
    update, a forward message to an agent in every open cone gets no row (most
    of them, once a change has reached the whole net), and the traces stay the
    per-message counter's at every instant, a short horizon ending cones too."""
    from asyncnet.data import make_stream
    from asyncnet.engine import Engine
    from asyncnet.messages import QUANTA
    from asyncnet.network import Network, expand_to_neurons, layered
    from asyncnet.schemes.diffusion import Diffusion
    pop = Network.from_graph(layered([4, 7, 6, 3]), seed=2)
    stream = make_stream("piecewise", n_in=4, n_out=3, input_node="l0", output_node="l3",
                         seed=1, duration=40.0, hold=2.5)
    g = expand_to_neurons(pop)
    rng = np.random.default_rng(4)
    for _, _, a in g.edges(data=True):
        a["delay"] = float(rng.choice([0.5, 0.75, 1.0, 1.25, 2.0]))
    net = Network.from_graph(g, seed=0)
    src = {f"{nd}_{k}": (lambda t, nd=nd, k=k: stream.value(nd, t)[k:k + 1])
           for nd, n in (("l0", 4), ("l3", 3)) for k in range(n)}
    eng = Engine(net, Diffusion(eta=0.05), seed=3, sources=src)
    index = {n: i for i, n in enumerate(eng.names)}
    by_batch, following = new_traffic(eng.links, net), new_traffic(eng.links, net)
    if horizon is not None:
        by_batch.horizon = following.horizon = round(horizon * QUANTA)
    watch, plain = (ConeWatch(index, frozenset(net.inputs()), frozenset(net.outputs()))
                    for _ in range(2))
    teller = ConeTeller(index)
    eng.sinks.append(by_batch)
    seen = {"instants": 0, "rows": 0, "plain": 0, "settled": 0}

    def rows(frame):
        return len(read_trace_frame(frame, len(eng.names))[0]) if frame else 0

    def instant(batches, feed):
        if seen["instants"] % window == 0:
            told = teller.watch(following.cones, following.horizon)
            seen["settled"] += len(told[3][2]) if told[3] else 0
            watch.told(told)
            plain.told(told[:3])  # the same without settled agents: a row each
        seen["instants"] += 1
        feed()
        plain.instant(batches)
        frame = watch.take()
        seen["rows"] += rows(frame)
        seen["plain"] += rows(plain.take())
        following.follow(trace_messages([frame], eng.names))
        assert ({k: getattr(following, k) for k in TRACE_FIELDS}
                == {k: getattr(by_batch, k) for k in TRACE_FIELDS})
    ways = _feed(eng, watch, via, instant)
    eng.run(30.0)
    assert ways[via] > ways["sends" if via == "batches" else "batches"]
    assert len(by_batch.latency_forward) == 5 and seen["settled"] > 10
    assert len(by_batch.latency_credit) == 5 if horizon is None \
        else len(by_batch.latency_credit) < 5
    assert seen["rows"] < seen["plain"]


def test_rows_to_settled_agents_are_left_out_only_while_nothing_here_may_open_a_cone():
    from asyncnet.messages import CONTROL, FORWARD, Message
    index = {"in": 0, "x": 1, "y": 2, "src:in": 3}
    w = ConeWatch(index, frozenset(["in"]), frozenset(["y"]))

    def deliver(kind, src, dst, t, value=0.0):
        w.instant([[Message(kind, src, dst, t - 1, t, t, np.array([value]))]])
        rows = read_trace_frame(w.take(), 4)[0] if w.rows else np.zeros((0, 6), dtype=int)
        return [(int(r[2]), int(r[3]), int(r[1])) for r in rows]  # (kind, src, dst)

    assert deliver(CONTROL, "src:in", "in", 1, 1.0) == [(CONTROL, 3, 0)]
    w.told([False, [0, 1], [], [True, -1, [1]]])  # in and x in the cones, x in every one
    assert deliver(FORWARD, "in", "x", 2) == []  # to a settled agent: no row
    assert deliver(FORWARD, "in", "y", 3) == [(FORWARD, 0, 2)]
    assert deliver(CONTROL, "src:in", "in", 4, 1.0) == [(CONTROL, 3, 0)]  # no change
    assert deliver(FORWARD, "in", "x", 5) == []
    assert deliver(CONTROL, "src:in", "in", 6, 2.0) == [(CONTROL, 3, 0)]  # a change here
    assert deliver(FORWARD, "in", "x", 7) == [(FORWARD, 0, 1)]  # a cone may hold no x
    w.told([False, [], [], [True, 9, [1]]])  # the coordinator again; a horizon after 9
    assert deliver(FORWARD, "in", "x", 9) == []
    assert deliver(FORWARD, "in", "x", 10) == [(FORWARD, 0, 1)]  # past it: every row
    w.told([False, [], [], None])  # a first update not found: every row
    assert deliver(FORWARD, "in", "x", 8) == [(FORWARD, 0, 1)]
    w.told([True, [], [], None])
    assert not w.settled and not w.fwd


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
        following.follow(trace_messages([watch.take()], eng.names))
        assert following.cones == by_batch.cones
    eng.instant_sinks.append(instant)
    eng.run(200.0)
    assert following.latency_forward == by_batch.latency_forward
    assert following.latency_credit == by_batch.latency_credit
    assert len(by_batch.latency_forward) >= 3


def test_the_teller_says_each_agent_once_and_forgets_when_no_cone_is_open():
    index = {n: i for i, n in enumerate(["a", "b", "c", "d"])}
    t = ConeTeller(index)
    assert t.watch([]) == [True, [], [], None]
    cones = [{"t0": 0, "reach": {"a": 0, "c": 1}, "back": {}, "fwd": None},
             {"t0": 3, "reach": {"a": 3}, "back": {"d": 5}, "fwd": 1}]
    # a cone has not found its first update: nothing is settled
    assert t.watch(cones) == [False, [0, 2], [3], None]
    cones[0]["reach"]["b"] = 2
    cones[0]["fwd"] = 2
    # settled: in every open cone; until the first cone's horizon (t0 0 + 10)
    assert t.watch(cones, horizon=10) == [False, [1], [], [True, 10, [0]]]
    cones[1]["reach"]["b"] = 4
    assert t.watch(cones, horizon=10) == [False, [], [], [False, 10, [1]]]
    assert t.watch(cones) == [False, [], [], [False, -1, []]]  # no horizon
    cones.append({"t0": 6, "reach": {"c": 6}, "back": {}, "fwd": 7})
    assert t.watch(cones) == [False, [], [], [True, -1, []]]  # a cone opened: start again
    del cones[0], cones[1]  # two closed: only the second is open, told whole
    # (forget, then its agents: the closed cones' agents no longer watched)
    assert t.watch(cones) == [True, [0, 1], [3], [True, -1, [0, 1]]]
    assert t.watch(cones) == [False, [], [], [False, -1, []]]
    assert t.watch([]) == [True, [], [], None]
    assert t.watch(cones) == [False, [0, 1], [3], [True, -1, [0, 1]]]  # told again
    # a cone that has not found its first update: nothing settled (the partitions
    # forget theirs); once it is gone (closed), all told again, whole
    assert t.watch([*cones, {"t0": 9, "reach": {"d": 9}, "back": {}, "fwd": None}]) \
        == [False, [3], [], None]
    assert t.watch(cones) == [True, [0, 1], [3], [True, -1, [0, 1]]]


@pytest.mark.parametrize("watch", [[True, []], (True, [], []), [1, [], []], [False, [0.0], []],
                                   [False, [], [99]], [False, [-1], []], [False, "ab", []],
                                   [False, [], [], [True, 5]], [False, [], [], [1, 5, []]],
                                   [False, [], [], [True, -2, []]], [False, [], [], [True, 5, [7]]],
                                   [False, [], [], [True, 5.0, []]], [False, [], [], [], None]])
def test_a_malformed_watch_is_refused_with_a_clear_error(watch):
    from asyncnet.cluster.wire import WireError
    w = ConeWatch({"a": 0, "b": 1}, frozenset(["a"]), frozenset(["b"]))
    with pytest.raises(WireError, match="latency-trace watch"):
        w.told(watch)
    w.told([False, [1], [0]])
    assert w.fwd == {"b"} and w.back == {"a"}


def test_trace_frames_come_back_as_sent_and_in_the_logs_order():
    """Rows of two partitions, out of order, come back as messages in the log's
    order (t, dst, kind, src, seq), a control row with its value, the rest none."""
    names = ["a", "b", "c", "d"]
    first = trace_frame([5, 3, 0, 1, 9, 4,  5, 0, 2, 2, 7, 5,  2, 1, 1, 0, 4, 1],
                        [1], [np.array([0.5, -2.0], dtype="<f8").tobytes()])
    second = trace_frame([5, 3, 0, 0, 2, 4,  5, 2, 0, 0, 3, 4], [], [])
    got = trace_messages([first, b"", second], names)
    assert [(m[4], m[2], m[0], m[1], m[5], m[3]) for m in got] == [
        (2, "b", 1, "a", 4, 1), (5, "a", 2, "c", 7, 5), (5, "c", 0, "a", 3, 4),
        (5, "d", 0, "a", 2, 4), (5, "d", 0, "b", 9, 4)]
    assert [m[6] is None for m in got] == [True, False, True, True, True]
    assert got[1][6].tolist() == [0.5, -2.0]
    assert trace_messages([b"", b""], names) == []


def _frame(cols=None, control=None, values=b"", ends=None):
    i8 = lambda xs: np.asarray(xs, dtype="<i8").tobytes()  # noqa: E731
    return wire.pack([i8(cols if cols is not None else [1, 0, 2, 1, 3, 0]),
                      i8(control if control is not None else [0]), values or bytes(8),
                      i8(ends if ends is not None else [8])])


@pytest.mark.parametrize("frame,what", [
    (wire.pack([b"", b""]), "four binaries"),
    (wire.pack([1, 2, 3, 4]), "four binaries"),
    (_frame(cols=[1, 0, 2, 1, 3]), "wrong length"),
    (_frame(ends=[8, 16]), "wrong length"),
    (_frame(cols=[1, 4, 2, 1, 3, 0]), "agent index"),
    (_frame(cols=[1, 0, 2, -1, 3, 0]), "agent index"),
    (_frame(cols=[1, 0, 3, 1, 3, 0]), "kind"),
    (_frame(cols=[1, 0, 0, 1, 3, 0]), "control rows"),
    (_frame(control=[1]), "control rows"),
    (_frame(cols=[1, 0, 2, 1, 3, 0, 1, 0, 2, 1, 4, 0], control=[0, 0],
            values=bytes(16), ends=[8, 16]), "control rows"),
    (_frame(values=bytes(12), ends=[12]), "values"),
    (_frame(ends=[16]), "values"),
    (b"\xc1", "malformed frame"),
])
def test_a_malformed_trace_frame_is_refused_with_a_clear_error(frame, what):
    from asyncnet.cluster.wire import WireError
    with pytest.raises(WireError, match=what):
        read_trace_frame(frame, 4)
    rows, pays = read_trace_frame(_frame(), 4)  # the well-formed one
    assert rows.tolist() == [[1, 0, 2, 1, 3, 0]] and pays[0].tolist() == [0.0]


def test_a_closed_cone_is_forgotten_while_another_stays_open():
    """When a cone closes, the partitions are told the open cones whole: the
    agents only the closed one held (and the partition's own growth since)
    are no longer watched, so their messages make no rows."""
    index = {n: i for i, n in enumerate(["in", "a", "b", "out", "s"])}
    teller = ConeTeller(index)
    w = ConeWatch(index, frozenset(["in"]), frozenset(["out"]))
    first = {"t0": 0, "reach": {"in": 0, "a": 1, "out": 2}, "back": {"out": 2}, "fwd": None}
    second = {"t0": 4, "reach": {"in": 4}, "back": {}, "fwd": None}
    w.told(teller.watch([first, second]))
    assert w.fwd == {"in", "a", "out"} and w.back == {"out"}
    # the credit spreads back through this partition (its own growth)
    w.instant([[Message(DELTA, "out", "s", 2, 3, 1, np.array([0.0]))]])
    assert w.back == {"out", "s"} and len(w.take()) > 0
    w.told(teller.watch([second]))  # the first closed
    assert w.fwd == {"in"} and w.back == set()
    w.instant([[Message(DELTA, "s", "b", 5, 6, 1, np.array([0.0]))],
               [Message(FORWARD, "a", "b", 5, 6, 2, np.array([0.0]))]])
    assert w.take() == b""  # from agents of no open cone: no row


def test_sends_of_a_partition_without_routes_make_the_batches_rows():
    """A partition whose every message came from its neighbours (sends named by
    their receivers, an empty route table): the same rows from the sends as
    from the delivered batches, and the sets grow alike."""
    from asyncnet.capture import Captured
    from asyncnet.messages import CONTROL
    from asyncnet.wiring import ReceiverTable
    index = {n: i for i, n in enumerate(["in", "a", "b", "out", "src:in"])}
    pay = np.array([0.5])
    # (src, t_sent, seq before, kind, key -1 - receiver), delivered at 9
    numbers = [0, 8, 0, FORWARD, -2,  1, 7, 4, FORWARD, -3,  3, 8, 1, DELTA, -3,
               4, 9, 2, CONTROL, -1]
    batches = [[Message(CONTROL, "src:in", "in", 9, 9, 3, pay)],
               [Message(FORWARD, "in", "a", 8, 9, 1, pay)],
               [Message(FORWARD, "a", "b", 7, 9, 5, pay), Message(DELTA, "out", "b", 8, 9, 2, pay)]]
    captured = Captured(9, (numbers, [pay] * 4), None, ReceiverTable(), 5)
    got = {}
    for via in ("sends", "batches"):
        w = ConeWatch(index, frozenset(["in"]), frozenset(["out"]))
        w.told([False, [0, 1], [3]])
        if via == "sends":
            assert w.sends(captured, send_table(captured.sends))
        else:
            w.instant(batches)
        got[via] = (_rows(w.take(), 5), w.fwd, w.back)
    assert got["sends"] == got["batches"]
    assert len(got["sends"][0]) == 4 and got["sends"][1] == {"in", "a", "b"}
