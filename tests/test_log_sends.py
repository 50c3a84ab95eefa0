"""The event log written from the engine's sends (:mod:`asyncnet.logcapture`).

The writer takes each instant as the engine captured it — one entry a send
(:mod:`asyncnet.capture`) — and must write the very bytes msgpack makes of
the delivered messages, one ``[t_arrive, kind, src, dst, t_sent, seq,
payload]`` record at a time, in canonical order. Checked against that
reference (written here from the messages, not through the package's
packers) on generated instants — receivers of another partition, integers
at every boundary of msgpack's classes, payloads of every mode — through
both the compiled packing loop and the numpy path, and on whole runs
against the record-by-record writer (``EventLogWriter.instant``): a
per-neuron net, a zero-delay link (an instant run twice), a rule with
kinds of its own, injected messages, and an engine whose sends all go to
other partitions at some instants.
"""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncnet import logcapture, logsends
from asyncnet.capture import Captured
from asyncnet.eventlog import EventLogWriter, PayloadCodes, _packer
from asyncnet.logcapture import pack_instant
from asyncnet.messages import encode_payload
from asyncnet.wiring import ReceiverTable

AGENTS = 70_000  # indices past every class (65,535 included)
EDGES = [0, 1, 127, 128, 255, 256, 65_535, 65_536, 2**32 - 1, 2**32, 2**62 - 1, 2**62,
         2**63 - 1]
INT = st.one_of(st.sampled_from(EDGES), st.integers(0, 2**63 - 1))
AGENT = st.one_of(st.sampled_from([0, 127, 128, 255, 256, 65_535, 65_536, AGENTS - 1]),
                  st.integers(0, AGENTS - 1))
FEW = st.integers(0, 7)  # a dense instant: the compiled loop's counting sort
FLOAT = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                  st.sampled_from([0.0, -0.0, 5e-324, float("nan")]))
SHAPE = st.sampled_from([(1,), (3,), (0,), (2, 3), (40,)])


class _Stub:
    """What a receiver group holds: an index (-1: another partition's)."""

    def __init__(self, idx: int):
        self.idx = idx


def _reference(t: int, numbers: list, payloads: list, groups: list[list[int]]) -> bytes:
    """msgpack's own bytes of the delivered messages, sorted canonically."""
    recs = []
    for i, p in enumerate(payloads):
        src, ts, seq, kind, key = numbers[5 * i:5 * i + 5]
        for j, d in enumerate([-key - 1] if key < 0 else groups[key]):
            if d >= 0:
                recs.append([t, kind, src, d, ts, seq + j + 1, p])
    recs.sort(key=lambda r: (r[3], r[1], r[2], r[5]))
    pk = msgpack.Packer(default=encode_payload, use_bin_type=True)
    return b"".join(pk.pack(r) for r in recs)


@st.composite
def instants(draw):
    """An instant's sends: receiver groups, numbers and payloads of one mode;
    among 70,000 agents or among 8 (sparse or dense)."""
    agent = draw(st.sampled_from([AGENT, FEW]))
    groups = [draw(st.lists(st.one_of(agent, st.just(-1)), min_size=1, max_size=5))
              for _ in range(draw(st.integers(1, 5)))]
    mode = draw(st.sampled_from(["array", "float", "mixed"]))
    shape = draw(SHAPE)
    numbers, payloads = [], []
    seqs: dict[int, int] = {}
    for _ in range(draw(st.integers(1, 12))):
        src = draw(agent)
        seq = seqs.get(src, draw(INT))
        # a negative key names its one receiver outright (a message injected)
        key = draw(st.one_of(st.integers(0, len(groups) - 1), agent.map(lambda a: -1 - a)))
        seqs[src] = seq + (1 if key < 0 else len(groups[key]))  # grows with each message
        numbers += [src, draw(INT), seq, draw(st.sampled_from([0, 1, 2])), key]
        if mode == "float" or (mode == "mixed" and draw(st.booleans())):
            payloads.append(draw(FLOAT))
        else:
            n = int(np.prod(shape))
            payloads.append(np.array(draw(st.lists(FLOAT, min_size=n, max_size=n)),
                                     dtype=np.float64).reshape(shape))
    return draw(INT), numbers, payloads, groups


def _captured(t: int, numbers: list, payloads: list, groups: list[list[int]],
              agents: int = AGENTS) -> Captured:
    table = ReceiverTable()
    for g in groups:
        table.key(tuple(_Stub(d) for d in g))
    return Captured(t, (numbers, payloads), None, table, agents)


@pytest.mark.parametrize("small", [0, logcapture.SMALL_INSTANT])  # 0: column-wise at any size
@pytest.mark.parametrize("compiled", [False, True])
@settings(max_examples=150, deadline=None)
@given(inst=instants())
def test_instant_equals_msgpack(compiled: bool, small: int, inst: tuple) -> None:
    """Generated sends, every packing path (column-wise compiled or numpy, and
    record by record): msgpack's bytes of the delivered messages."""
    if compiled:
        pytest.importorskip("numba")
    t, numbers, payloads, groups = inst
    old, old_small = logsends.COMPILED, logcapture.SMALL_INSTANT
    logsends.COMPILED, logcapture.SMALL_INSTANT = compiled, small
    try:
        dense = max(max(g) for g in groups) < 8 and max(numbers[0::5]) < 8
        got = pack_instant([_captured(t, numbers, payloads, groups, 8 if dense else AGENTS)],
                           {}, _packer(), PayloadCodes(), records=10**9)
    finally:
        logsends.COMPILED, logcapture.SMALL_INSTANT = old, old_small
    ref = _reference(t, numbers, payloads, groups)
    assert bytes(got[0]) == ref
    kinds = [0, 0, 0]
    for i in range(len(payloads)):
        key = numbers[5 * i + 4]
        kinds[numbers[5 * i + 3]] += 1 if key < 0 else sum(d >= 0 for d in groups[key])
    assert got[1] == sum(kinds) and list(got[2]) == kinds


def _net():
    """A per-neuron 3-5-2 net and data sources for its input and output neurons."""
    import asyncnet
    from asyncnet.data import make_stream
    from asyncnet.network import Network
    pop = Network.from_graph(asyncnet.layered([3, 5, 2]), seed=0)
    stream = make_stream("piecewise", n_in=3, n_out=2, input_node="l0", output_node="l2",
                         seed=0, duration=60, hold=5)
    src = {f"{node}_{k}": (lambda t, nd=node, k=k: stream.value(nd, t)[k:k + 1])
           for node in ("l0", "l2") for k in range(pop.populations[node].size)}
    return Network.from_graph(asyncnet.expand_to_neurons(pop), seed=0), src


def _two_logs(tmp_path, net, duration: float, before_run=None, tag: str = "",
              source_delay: float = 1.0, seen: list | None = None) -> tuple:
    """One run logged from its sends and, in the same run, one record by record."""
    from asyncnet.engine import Engine
    from asyncnet.schemes.diffusion import Diffusion
    eng = Engine(net[0], Diffusion(eta=0.05), seed=2, sources=net[1],
                 source_delay=source_delay)
    head = {"agents": eng.names, "scenario": "", "scenario_path": "", "seed": 2}
    sent = EventLogWriter(str(tmp_path / f"sent{tag}.log"), head)
    each = EventLogWriter(str(tmp_path / f"each{tag}.log"), head)
    eng.record(sent.record)
    if seen is not None:
        eng.record(seen.append)
    eng.sinks.append(each)
    if before_run is not None:
        before_run(eng)
    eng.run(duration)
    f1, f2 = sent.close(), each.close()
    return f1, f2, (tmp_path / f"sent{tag}.log").read_bytes(), \
        (tmp_path / f"each{tag}.log").read_bytes()


@pytest.mark.parametrize("path", ["numpy", "compiled"])
def test_a_run_logged_from_its_sends_is_the_record_by_record_log(tmp_path, monkeypatch, path):
    """A per-neuron run: the log from the sends is the record-by-record one, byte for byte."""
    if path == "compiled":
        pytest.importorskip("numba")
        monkeypatch.setattr(logsends, "MIN_RECORDS", 0)
    else:
        monkeypatch.setattr(logsends, "COMPILED", False)
    f1, f2, a, b = _two_logs(tmp_path, _net(), 30.0)
    assert f1["count"] > 1000 and f1 == f2 and a == b


def test_a_run_calls_the_compiled_loop_with_the_types_warm_compiled(tmp_path, monkeypatch):
    """The arrays a run hands the compiled loop are of the types :func:`logsends.warm`
    compiles it for: another type (a read-only table, say) would compile it again at
    the run's first instant (~0.5 CPU-s, and tens of G instructions under valgrind)."""
    pytest.importorskip("numba")
    monkeypatch.setattr(logsends, "MIN_RECORDS", 0)
    kern = logsends.kernel(0)
    assert kern is not None
    logsends.warm(kern)
    warmed = set(kern.signatures)
    _two_logs(tmp_path, _net(), 5.0)
    assert set(kern.signatures) == warmed


def test_a_zero_delay_link_runs_an_instant_twice(tmp_path, monkeypatch):
    """Data sources with no delay: what they send arrives at the instant under
    way, which the engine runs a second time; the writer merges both parts
    into one canonical instant."""
    merged = []
    merge = EventLogWriter._merge
    monkeypatch.setattr(EventLogWriter, "_merge",
                        lambda self, x, y: merged.append(1) or merge(self, x, y))
    f1, f2, a, b = _two_logs(tmp_path, _net(), 12.0, source_delay=0.0)
    assert len(merged) >= 5
    assert f1["count"] > 100 and f1 == f2 and a == b


def test_injected_messages_are_logged_as_sends_to_one(tmp_path):
    """A message that was not sent by the engine (injected, as a cluster peer's
    is) is noted as a send to its one receiver, and reaches the log the same way."""
    from asyncnet.messages import DELTA, QUANTA, Message

    def inject(eng):  # a kind l0_0 does not send its synapse: its own seq order
        for k, t in enumerate((2, 5, 7)):
            eng.inject(Message(DELTA, "l0_0", "l0_0->l1_1", 0, t * QUANTA // 2, 10**6 + k,
                               np.array([0.25 * k])))
    seen: list = []
    f1, f2, a, b = _two_logs(tmp_path, _net(), 10.0, inject, seen=seen)
    assert f1["count"] > 100 and f1 == f2 and a == b
    named = [c for c in seen if c.sends is not None and min(c.sends[0][4::5]) < 0]
    assert len(named) == 3 and all(c.sends is not None for c in seen)


@pytest.mark.parametrize("small", [64, 0])  # 0: every instant tries the column-wise path
def test_kinds_of_a_rules_own_go_record_by_record(monkeypatch, small):
    """A kind msgpack packs otherwise (a bool, a numpy integer) is written as
    the messages carry it, not as the numbers the fast paths make (the
    engine refuses a kind past 2 before any writer sees it), whether it is
    the first send's kind or a later one's."""
    monkeypatch.setattr(logcapture, "SMALL_INSTANT", small)
    groups = [[3, 1], [2]]
    for kind in (True, np.int64(1)):
        for numbers in ([0, 5, 10, kind, 0, 4, 5, 20, 1, 1],
                        [0, 5, 10, 1, 0, 4, 5, 20, kind, 1]):
            payloads = [0.5, 0.25]  # alike: only the kind keeps them from the fast paths
            got = pack_instant([_captured(7, numbers, payloads, groups)], {}, _packer(),
                               PayloadCodes(), records=10**9)
            assert bytes(got[0]) == _reference(7, numbers, payloads, groups)


def test_sends_to_other_partitions_only_are_not_kept():
    """An engine that runs only the neurons (every synapse another partition's)
    notes sends whose instants never run here: they are dropped, not kept."""
    from asyncnet.agents import Outbox
    from asyncnet.engine import Engine
    from asyncnet.ids import is_synapse
    from asyncnet.schemes.diffusion import Diffusion
    net, src = _net()
    names = Engine(net, Diffusion(eta=0.05), seed=2, sources=src).names
    sent = Outbox({})  # the neurons and sources here, every synapse elsewhere
    eng = Engine(net, Diffusion(eta=0.05), seed=2, sources=src,
                 local=[n for n in names if not is_synapse(n)], remote=sent)
    eng.record(lambda c: None)
    sizes = []
    for until in (10.0, 20.0, 40.0):
        eng.run(until)
        sizes.append(len(eng._sends))
    assert len(sent) > 500 and max(sizes) <= 3, (len(sent), sizes)
