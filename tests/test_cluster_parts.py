"""Partitioning, the wire format and the worker's checks on what it receives."""

from __future__ import annotations

import itertools

import msgpack
import networkx as nx
import numpy as np
import pytest

from asyncnet.cluster import wire
from asyncnet.cluster.partition import PartitionError, partition
from asyncnet.engine import link_table
from asyncnet.messages import QUANTA, LocalityError
from asyncnet.network import Network, expand_to_neurons, layered

from .helpers import random_dag


def links_of(g: nx.DiGraph, seed: int = 0):
    net = Network.from_graph(g, seed=seed)
    srcs = {n: None for n in net.inputs() + net.outputs()}
    return net, link_table(net, srcs, 1.0)


def brute_cut(links, owner):
    """The crossing links and their smallest delay, straight from the definition."""
    cut = {(a, b) for a in links for b in links[a] if owner[a] != owner[b]}
    return cut, min((links[a][b] for a, b in cut), default=None)


@pytest.mark.parametrize("seed,n,method", list(itertools.product(range(6), (2, 3, 4),
                                                            ("auto", "layers", "round-robin"))))
def test_partition_is_a_partition_and_reports_its_cut(seed, n, method):
    g = random_dag(seed, n_hidden=6, delay=lambda r: float(r.choice([0.5, 1, 2, 3.3])))
    _, links = links_of(g, seed)
    p = partition(links, n, method, starts=["in"])
    assigned = [a for part in p.parts for a in part]
    assert sorted(assigned) == sorted(links) and len(set(assigned)) == len(assigned)
    assert all(p.parts)
    for a in links:  # a data source always sits with its population
        if a.startswith("src:"):
            assert p.owner[a] == p.owner[a[4:]]
    cut, look = brute_cut(links, p.owner)
    assert {(a, b) for a, b, _ in p.cut} == {(a, b) for a, b in cut if a < b}
    assert p.lookahead_q == look


def test_auto_cuts_the_long_link():
    # in -> h1 -> h2 ==(delay 8)==> h3 -> out: two workers should cut only there
    g = nx.DiGraph()
    for n in ("in", "h1", "h2", "h3", "out"):
        g.add_node(n, size=2)
    for (u, v), d in zip(itertools.pairwise(["in", "h1", "h2", "h3", "out"]), (1, 1, 8, 1),
                         strict=True):
        g.add_edge(u, v, delay=d)
    _, links = links_of(g)
    p = partition(links, 2, starts=["in"])
    assert p.lookahead_q == 4 * QUANTA  # half of the long projection: one leg
    assert {tuple(sorted((a, b))) for a, b, _ in p.cut} <= {("h2", "h2->h3"), ("h2->h3", "h3")}
    assert len(p.cut) == 1


def test_per_neuron_layers_split_evenly():
    net = Network.from_graph(layered([8, 12, 12, 4]), seed=0)
    g = expand_to_neurons(net)
    _, links = links_of(g)
    p = partition(links, 2, starts=[n for n in g if n.startswith("l0_")])
    total = sum(p.loads)
    assert max(p.loads) <= 1.3 * total / 2
    assert p.lookahead_q == QUANTA // 2


def test_too_many_workers_is_an_error():
    _, links = links_of(layered([2, 2]))
    with pytest.raises(PartitionError, match="only"):
        partition(links, 9)
    with pytest.raises(PartitionError, match="unknown"):
        partition(links, 2, "kernighan")


def test_metis_is_balanced_and_cuts_fewer_links_than_layers():
    """Per-neuron layers at 2..16 parts: METIS keeps every part within 10% of
    the mean load and cuts fewer links than the layer chunks (which cut nearly
    every link at 8+ parts) — at 2 parts about as many: spreading every depth
    evenly costs a few links there; the cut is recounted from its definition."""
    pytest.importorskip("pymetis")
    net = Network.from_graph(expand_to_neurons(Network.from_graph(layered([8, 16, 16, 8]),
                                                                  seed=0)), seed=0)
    srcs = {n: None for n in net.inputs() + net.outputs()}
    links = link_table(net, srcs, 1.0)
    for n in (2, 4, 8, 16):
        m = partition(links, n, "metis", starts=net.inputs())
        lay = partition(links, n, "layers", starts=net.inputs())
        assert m.method == "metis" and m.note is None
        cut, look = brute_cut(links, m.owner)
        assert len(cut) == 2 * len(m.cut) and m.lookahead_q == look
        assert max(m.loads) <= 1.1 * sum(m.loads) / n, (n, m.loads)
        assert len(m.cut) <= (1.05 if n == 2 else 1.0) * len(lay.cut), n
        # a synapse agent has two links: at best one of them crosses, whatever
        # the placement, for the share (1 - 1/n) of synapses whose neurons are apart
        assert m.cut_fraction < 0.5 + 0.05
        assert partition(links, n, "auto", starts=net.inputs()).owner == m.owner


def test_metis_spreads_every_depth_evenly():
    """The load of a window is that of a few depths (hops from the inputs): after
    METIS, every depth is spread over the parts to within one group's load, the
    total stays within 10% and the cut within that of the layer chunks. Depths
    are recomputed here with networkx, from the links."""
    pytest.importorskip("pymetis")
    from asyncnet.cluster.partition import load_of
    net = Network.from_graph(expand_to_neurons(Network.from_graph(layered([6, 14, 10, 5]),
                                                                  seed=0)), seed=0)
    srcs = {n: None for n in net.inputs() + net.outputs()}
    links = link_table(net, srcs, 1.0)
    g = nx.Graph([(a, b) for a in links for b in links[a]])
    hops = nx.multi_source_dijkstra_path_length(g, set(net.inputs()), weight=lambda *_: 1)
    for n in (2, 3, 4):
        m = partition(links, n, "metis", starts=net.inputs())
        lay = partition(links, n, "layers", starts=net.inputs())
        assert max(m.loads) <= 1.1 * sum(m.loads) / n, (n, m.loads)
        assert len(m.cut) <= (1.05 if n == 2 else 1.0) * len(lay.cut), n
        by_depth: dict[int, list[int]] = {}
        biggest: dict[int, int] = {}
        for a in links:
            if a.startswith("src:"):
                continue  # travels with its population, whose depth counts it
            d = hops[a]
            w = load_of(len(links[a])) + sum(load_of(len(links[b])) for b in links[a]
                                              if b.startswith("src:"))
            by_depth.setdefault(d, [0] * n)[m.owner[a]] += w
            biggest[d] = max(biggest.get(d, 0), w)
        for d, loads in by_depth.items():
            assert max(loads) - min(loads) <= 2 * biggest[d], (n, d, loads)


def test_metis_cut_is_metis_alone_fewer_links_depths_as_they_fall():
    """``metis-cut``: a balanced partition (the cut recounted from its
    definition) that cuts fewer links than spreading every depth evenly
    where that spreading moved anything (it does at 8 and 16 parts here),
    and never more than the layer chunks."""
    pytest.importorskip("pymetis")
    net = Network.from_graph(expand_to_neurons(Network.from_graph(layered([8, 16, 16, 8]),
                                                                  seed=0)), seed=0)
    srcs = {n: None for n in net.inputs() + net.outputs()}
    links = link_table(net, srcs, 1.0)
    fewer = 0
    for n in (2, 4, 8, 16):
        c = partition(links, n, "metis-cut", starts=net.inputs())
        m = partition(links, n, "metis", starts=net.inputs())
        lay = partition(links, n, "layers", starts=net.inputs())
        assert c.method == "metis-cut" and c.note is None
        assigned = sorted(a for part in c.parts for a in part)
        assert assigned == sorted(links) and all(c.parts)
        cut, look = brute_cut(links, c.owner)
        assert len(cut) == 2 * len(c.cut) and c.lookahead_q == look
        assert max(c.loads) <= 1.3 * sum(c.loads) / n, (n, c.loads)
        assert len(c.cut) <= len(lay.cut), n
        if c.owner != m.owner:
            assert len(c.cut) < len(m.cut), n
            fewer += 1
    assert fewer >= 2


def test_a_metis_partition_that_falls_back_to_layers_says_so(monkeypatch):
    """Where METIS would leave a part empty (a small network on many workers)
    the partition is the layer chunks': it is labelled so, with a note, not as
    METIS's."""
    pytest.importorskip("pymetis")
    from asyncnet.cluster import partition as part_mod
    monkeypatch.setattr(part_mod, "_metis", lambda *a: None)  # every METIS try: a part empty
    _, links = links_of(layered([3, 4, 2]))
    lay = partition(links, 2, "layers", starts=["l0"])
    for method in ("metis", "metis-cut"):
        p = partition(links, 2, method, starts=["l0"])
        assert p.method == "layers" and method in p.note and "empty" in p.note
        assert p.owner == lay.owner


def test_without_pymetis_auto_falls_back_with_a_note(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "pymetis", None)  # import pymetis fails
    _, links = links_of(layered([3, 4, 2]))
    p = partition(links, 2, "auto", starts=["l0"])
    assert p.method == "layers" and "pymetis is not installed" in p.note
    assert p.describe()["note"] == p.note
    assert p.owner == partition(links, 2, "layers", starts=["l0"]).owner
    with pytest.raises(PartitionError, match="needs pymetis"):
        partition(links, 2, "metis")
    with pytest.raises(PartitionError, match="'metis-cut' needs pymetis"):
        partition(links, 2, "metis-cut")


def test_wire_refuses_oversized_and_malformed_frames():
    # a header claiming 2**32-1 items, with no items: refused before allocating
    bomb = b"\xdd\xff\xff\xff\xff"
    with pytest.raises(wire.WireError):
        wire.unpack(bomb)
    with pytest.raises(wire.WireError, match="exceeds"):
        wire.unpack(b"\x00" * 100, max_size=10)
    with pytest.raises(wire.WireError):  # an extension type that is not ours
        wire.unpack(msgpack.packb(msgpack.ExtType(42, b"x")))
    with pytest.raises(wire.WireError):  # array bytes that do not match their shape
        wire.unpack(msgpack.packb(msgpack.ExtType(1, b"\x01\x03\x00\x00\x00" + b"\x00" * 8)))
    a = np.arange(6.0).reshape(2, 3)
    back = wire.unpack(wire.join_packed([wire.pack([1, a]), wire.pack("x")]))
    assert back[1] == "x" and np.array_equal(back[0][1], a) and back[0][1].shape == (2, 3)


def test_worker_refuses_messages_that_no_link_carries(tmp_path):
    from asyncnet.cluster.worker import Worker
    from asyncnet.scenario import load
    path = tmp_path / "s.toml"
    path.write_text('[scenario]\nduration = 4\n[network]\nlayers = [2, 3, 1]\n'
                    '[rule]\nname = "diffusion"\n[data]\nkind = "constant"\n')
    sc = load(str(path))
    from asyncnet.simulation import build_engine
    names = build_engine(sc, local=[])[0].names
    owner = [0 if n in ("l0", "src:l0", "l0->l1") else 1 for n in names]
    w = Worker("tcp://127.0.0.1:9")
    w._setup({"part": 1, "timeout": 5, "log": False, "path": str(path), "scenario": sc.text,
              "agents": names, "owner": owner})
    idx = {n: i for i, n in enumerate(names)}
    pk = wire.packer()
    ok = pk.pack([0, idx["l0->l1"], idx["l1"], 0, QUANTA // 2, 1, np.zeros(3)])
    w._inject(wire.join_packed([ok]))
    for bad in ([0, idx["l0"], idx["l1"], 0, QUANTA, 1, 0.0],         # not neighbours
                [0, idx["l0->l1"], idx["l1"], 0, QUANTA, 2, 0.0],     # wrong delay
                [0, idx["l0->l1"], idx["l0"], 0, QUANTA // 2, 3, 0.0]):  # not ours
        with pytest.raises(LocalityError):
            w._inject(wire.join_packed([pk.pack(bad)]))


def test_coordinator_listens_on_loopback_unless_told_otherwise():
    """With no bind address (and with distributed/local.toml) the coordinator's
    socket is reachable from this machine only."""
    import os

    from asyncnet.cluster.config import load_cluster
    from asyncnet.cluster.transport import Cluster
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    local = load_cluster(os.path.join(root, "distributed", "local.toml"))
    for bind in (None, local["bind"]):
        with Cluster(2, local=0, bind=bind) as cl:
            assert cl.endpoint.startswith("tcp://127.0.0.1:"), cl.endpoint


def segment_groups(pr) -> list[tuple[int, int, bytes, list[int]]]:
    """A worker's window segment read back: (t, dst, bytes, count by kind) a group."""
    meta, blob = pr._segment()
    rows = np.frombuffer(meta, dtype="<i8").reshape(-1, 6).tolist()
    at = np.concatenate([[0], np.cumsum([r[2] for r in rows])]).tolist()
    assert at[-1] == len(blob)
    return [(r[0], r[1], blob[a:b], r[3:]) for r, a, b in zip(rows, at, at[1:], strict=False)]


def test_a_worker_records_an_instant_as_one_packed_group_per_batch():
    """A worker's log segment (one (t, dst) group a batch) holds each record's bytes
    as the log's own packer writes them, for batches of 1, 15, 16 and 70,000
    messages (the three msgpack array headers), packed record by record or
    column-wise, and in the log's order (t, dst) however the instants came."""

    from asyncnet.cluster.part import PartRunner
    from asyncnet.eventlog import PayloadCodes
    from asyncnet.logformat import _packer
    from asyncnet.messages import DELTA, FORWARD, Message
    names = ["a", "b", "c", "d", "e"]
    pr = PartRunner.__new__(PartRunner)
    pr.index = {n: i for i, n in enumerate(names)}
    pr.codes, pr.packer = PayloadCodes(), wire.packer()
    pr.chunks, pr.tracing = [], 0
    pr.stats = {"delivered": 0}
    pr.log, pr.counts = True, False
    pk = _packer()

    def want(b):
        return b"".join(pk.pack([m.t_arrive, m.kind, pr.index[m.src], pr.index[m.dst],
                                 m.t_sent, m.seq, m.payload]) for m in b)

    def check(instants):
        got = segment_groups(pr)
        expect = sorted(((b[0].t_arrive, pr.index[b[0].dst]), k, b)
                        for k, b in enumerate(b for i in instants for b in i))
        assert len(got) == len(expect)
        for (t, d, blob, by), (key, _, b) in zip(got, expect, strict=True):
            assert (t, d) == key and blob == want(b)
            assert list(by) == [sum(m.kind == k for m in b) for k in range(3)]

    x = np.array([0.5, -0.0])
    batches = []
    for dst, n in (("b", 1), ("c", 15), ("d", 16), ("e", 70_000)):
        batches.append([Message(FORWARD if k % 3 else DELTA, "a", dst, 2, 9, k + 1,
                                x if k % 2 else float(k)) for k in range(n)])
    def feed(instant):  # an instant with injected messages: the recorder takes its batches
        pr._record(instant)
        pr._batch_segment(instant)

    feed(batches)
    assert pr.stats["delivered"] == 70_032
    check([batches])
    # instants of alike records (arrays of one shape): packed column-wise, the same
    # bytes; two instants handed over out of time order come out sorted
    later = [[Message(FORWARD if k % 3 else DELTA, "a", dst, 2, 11, k + 1, x + k)
              for k in range(n)] for dst, n in (("b", 1), ("c", 200), ("e", 3))]
    sooner = [[Message(DELTA, "b", dst, 2, 10, k + 1, x - k) for k in range(n)]
              for dst, n in (("a", 130), ("d", 2))]
    small = [[Message(FORWARD, "e", "c", 3, 10, 7, 0.5)]]  # the record path, unordered
    for instant in (later, sooner, small):
        feed(instant)
    check([later, sooner, small])


@pytest.mark.parametrize("path", ["numpy", "compiled", "records"])
def test_a_worker_records_an_instant_from_its_sends(monkeypatch, path):
    """A worker's log segment made from an instant's sends (the engine's
    recorder): sends to groups with receivers of other partitions, messages
    injected by a peer (a receiver named outright), packed by the compiled
    loop, by numpy or record by record (a payload of another shape): one
    (t, dst) group a receiver, each the bytes msgpack makes of its records."""
    from asyncnet import logsends
    from asyncnet.capture import Captured
    from asyncnet.cluster.part import PartRunner
    from asyncnet.eventlog import PayloadCodes
    from asyncnet.logformat import _packer
    from asyncnet.wiring import ReceiverTable
    if path == "compiled":
        pytest.importorskip("numba")
        monkeypatch.setattr(logsends, "MIN_RECORDS", 0)
    else:
        monkeypatch.setattr(logsends, "COMPILED", False)

    class Stub:
        def __init__(self, idx):
            self.idx = idx

    pr = PartRunner.__new__(PartRunner)
    pr.codes, pr.packer = PayloadCodes(), wire.packer()
    pr.chunks, pr.stats, pr.tracing, pr.end = [], {"delivered": 0}, False, None
    table = ReceiverTable()
    groups = [[3, -1, 1, 4], [2], [-1, 0]]
    for g in groups:
        table.key(tuple(Stub(d) for d in g))
    x = np.array([0.5, -0.0])
    # (src, t_sent, seq before, kind, key): key < 0 names the receiver -key - 1
    numbers = [0, 5, 10, 0, 0,   4, 6, 20, 1, 1,   2, 7, 3, 2, 2,   1, 4, 99, 1, -1 - 3,
               0, 5, 14, 1, 0]
    payloads = [x, x + 1, x - 1, x * 2, x * 3]
    if path == "records":
        payloads[2] = np.array([1.0, 2.0, 3.0])
    pr._logged(Captured(8, (numbers, payloads), None, table, 5))
    recs = []
    for i, p in enumerate(payloads):
        src, ts, seq, kind, key = numbers[5 * i:5 * i + 5]
        for j, d in enumerate([-key - 1] if key < 0 else groups[key]):
            if d >= 0:
                recs.append([8, kind, src, d, ts, seq + j + 1, p])
    recs.sort(key=lambda r: (r[3], r[1], r[2], r[5]))
    pk = _packer()
    got = segment_groups(pr)
    assert [(t, d) for t, d, _, _ in got] == sorted({(8, r[3]) for r in recs})
    for _, d, blob, by in got:
        mine = [r for r in recs if r[3] == d]
        assert blob == b"".join(pk.pack(r) for r in mine)
        assert list(by) == [sum(r[1] == k for r in mine) for k in range(3)]


def test_a_frame_is_injected_alike_at_once_and_one_by_one(monkeypatch):
    """PartRunner.inject checks and injects a plain frame as numpy columns; anything unusual
    goes message by message. Either way: the same messages injected, the same error."""
    from types import SimpleNamespace

    from asyncnet.cluster.frames import IncomingLinks
    from asyncnet.cluster.part import PartRunner
    from asyncnet.messages import LocalityError

    def outcome(frame, whole: bool):
        got = []
        pr = PartRunner.__new__(PartRunner)
        pr.names = ["a", "b", "c"]
        pr.stats = {"cut_received": 0}
        links = {"b": {"a": 5}, "c": {"a": 5, "b": 3}}
        pr.eng = SimpleNamespace(agents={"b": 0, "c": 0}, env=SimpleNamespace(now=10),
                                 links=links, inject=got.append,
                                 inject_columns=lambda cols, pays: got.extend(
                                     (k, pr.names[s], pr.names[d], ts, ta, q, p) for
                                     (k, s, d, ts, ta, q), p in zip(cols.tolist(), pays,
                                                                    strict=True)),
                                 by_index=pr.names)
        pr.incoming = IncomingLinks(links, {"a": 0, "b": 1, "c": 2}, {"b", "c"})
        if not whole:
            monkeypatch.setattr(pr, "_inject_all", lambda items: False)
        try:
            pr.inject(wire.pack(frame))
            err = None
        except (wire.WireError, LocalityError) as e:
            err = (type(e), str(e))
        return err, [tuple(m) for m in got], pr.stats["cut_received"]

    good = [[0, 0, 1, 5, 10, 1, 1.5], [1, 1, 2, 7, 10, 2, [1.0, 2.0]], [0, 0, 2, 6, 11, 3, None]]
    frames = [good, [], good + [[0, 0, 1, 6, 10, 4, 0.0]],   # a delay that is no link's
              good + [[0, 0, 9, 5, 10, 4, 0.0]],                # no such agent
              good + [[0, 0, 0, 5, 10, 4, 0.0]],                # not this partition's agent
              good + [[0, 0, 1, 5, 10, 4]], good + [7],        # malformed items
              good + [[0, 0, 1, 5.0, 10.0, 4, 0.0]],            # times as floats
              good + [[0, True, 1, 5, 10, 4, 0.0]],             # an index that is a bool
              good + [[0, -3, 1, 5, 10, 4, 0.0]],               # a negative index
              good + [[0, 0, 1, 3, 8, 4, 0.0]]]                 # before the partition's now
    for frame in frames:
        assert outcome(frame, True) == outcome(frame, False), frame
    assert outcome(good, True) == (None, [tuple(
        (k, "abc"[s], "abc"[d], ts, ta, q, p)) for k, s, d, ts, ta, q, p in good], 3)
