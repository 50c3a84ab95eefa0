"""When a log takes its compiled packing loop: once its records are on course for
:data:`asyncnet.logsends.MIN_RECORDS` by the run's end.

Loading the loop costs a process 0.3-0.7 CPU-s; it saves ~0.3 µs a record. A log
that knows when its run ends (a run's writer, a cluster worker's segment)
projects its records to that end at the pace so far and loads the loop as soon
as the projection pays for it; one that does not know waits for the records
themselves. Checked here: the projection against its closed form, and the
record counts the writer and a worker's segment hand the loop's chooser during
real runs, against the counts and instants seen from outside.
"""

from __future__ import annotations

import os
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncnet import logcapture, logsends
from asyncnet.messages import to_quanta

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@given(st.integers(0, 10**12), st.integers(-5, 10**13), st.one_of(st.none(),
                                                                    st.integers(0, 10**13)))
def test_the_projection_is_the_pace_so_far_carried_to_the_end(records, t, end):
    got = logsends.projected(records, t, end)
    if end is None or t <= 0 or end <= t:
        assert got == records
    else:
        assert got == int(Fraction(records) * Fraction(end, t))  # floor: both non-negative
        assert got >= records


def _spied(monkeypatch) -> list[int]:
    """The record counts handed to the loop's chooser, in order."""
    asked: list[int] = []
    kernel = logsends.kernel
    monkeypatch.setattr(logsends, "kernel", lambda records: asked.append(records)
                        or kernel(records))
    return asked


def _per_neuron(duration: float):
    """The S net of the benchmarks (8-16-16-8, one agent a neuron and a synapse):
    its instants have more sends than the record-by-record path takes."""
    import asyncnet
    from asyncnet.data import make_stream
    from asyncnet.network import Network
    pop = Network.from_graph(asyncnet.layered([8, 16, 16, 8]), seed=0)
    stream = make_stream("piecewise", n_in=8, n_out=8, input_node="l0", output_node="l3",
                         seed=0, duration=duration + 5, hold=5)
    src = {f"{node}_{k}": (lambda t, nd=node, k=k: stream.value(nd, t)[k:k + 1])
           for node in ("l0", "l3") for k in range(8)}
    return Network.from_graph(asyncnet.expand_to_neurons(pop), seed=0), src


@pytest.mark.parametrize("knows_end", [True, False])
def test_a_writer_asks_with_its_records_projected_to_the_run_end(tmp_path, monkeypatch,
                                                                 knows_end):
    from asyncnet.engine import Engine
    from asyncnet.eventlog import EventLogWriter
    from asyncnet.schemes.diffusion import Diffusion
    asked = _spied(monkeypatch)
    seen: list[tuple[int, int]] = []  # (records written before, instant) a big instant
    pack = logcapture.pack_sends
    monkeypatch.setattr(logcapture, "pack_sends", lambda part, records, *a: seen.append(
        (writer.count, part.t)) or pack(part, records, *a))
    net, src = _per_neuron(12.0)
    eng = Engine(net, Diffusion(eta=0.01), seed=1, sources=src)
    writer = EventLogWriter(str(tmp_path / "s.log"), {"agents": eng.names, "scenario": "",
                                                      "seed": 1})
    end = to_quanta(12.0)
    if knows_end:
        writer.end = end
    eng.record(writer.record)
    eng.run(12.0)
    total = writer.close()["count"]
    assert len(seen) > 20 and len(asked) == len(seen)
    want = [n * end // t if knows_end and 0 < t < end else n for n, t in seen]
    assert asked == want
    if knows_end:  # carried to the end, the pace of the run's second half is its last count's
        assert abs(asked[-1] - total) < 0.2 * total and asked[len(asked) // 2] > seen[
            len(seen) // 2][0]


def test_a_run_tells_its_writer_when_it_ends(tmp_path, monkeypatch):
    from asyncnet.eventlog import EventLogWriter
    from asyncnet.scenario import load
    from asyncnet.simulation import simulate
    ends: list[int | None] = []
    record = EventLogWriter.record
    monkeypatch.setattr(EventLogWriter, "record", lambda self, c: ends.append(self.end)
                        or record(self, c))
    sc = load(os.path.join(ROOT, "scenarios", "quickstart.toml"))
    sc.duration = 20.0
    simulate(sc, log_path=str(tmp_path / "q.log"))
    assert ends and set(ends) == {to_quanta(20.0)}


def test_a_worker_segment_asks_with_its_records_projected_to_the_run_end(monkeypatch):
    """A partition's log segment: its own delivered count carried from the instant
    reached to the scenario's end (what it hands the packer, which asks the loop's
    chooser with it: the test above)."""
    from asyncnet.cluster.part import PartRunner
    from asyncnet.scenario import load
    from asyncnet.simulation import build_engine
    sc = load(os.path.join(ROOT, "scenarios", "quickstart.toml"))
    seen: list[tuple[int, int, int]] = []  # (delivered so far, instant, records handed)
    pack = logcapture.pack_sends

    def spy(part, records, *a):
        seen.append((pr.stats["delivered"], part.t, records))
        return pack(part, records, *a)
    monkeypatch.setattr("asyncnet.cluster.part.pack_sends", spy)
    monkeypatch.setattr(logcapture, "SMALL_INSTANT", 1)  # the quickstart's instants are small
    names = build_engine(sc, local=[])[0].names
    init = {"part": 0, "scenario": sc.text, "path": sc.path, "agents": names,
            "owner": [0] * len(names), "log": True}
    pr = PartRunner(init)
    end = to_quanta(sc.duration)
    assert pr.end == end
    pr.run_window(to_quanta(40.0), 0, [], None)
    assert len(seen) > 10 and any(n > 0 for n, _, _ in seen)
    assert [r for _, _, r in seen] == [n * end // t if 0 < t < end else n for n, t, _ in seen]
