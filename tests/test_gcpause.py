"""Building a network and its engine pauses the cyclic garbage collector.

Millions of long-lived objects are made there and none of them is cyclic
garbage: each collection the allocations triggered walked all of them (a
quarter of a 720,000-synapse engine's build). Checked from inside:
the collector is off while they are built, on again after
(off if it was off), also when the build fails, and the built engine is the
one built with the collector on.
"""

from __future__ import annotations

import gc

import pytest

from asyncnet.engine import Engine
from asyncnet.gcpause import collector_paused
from asyncnet.netparts import NetworkError
from asyncnet.network import Network, expand_to_neurons, layered
from asyncnet.schemes.diffusion import Diffusion


def test_no_collection_while_a_per_neuron_net_and_its_engine_are_built(monkeypatch):
    """The collector is off inside both builds (seen from a call each makes per edge and
    per synapse), on again after, and the engine is the one built with it free to run."""
    from asyncnet import network
    seen: list[bool] = []
    to_quanta = network.to_quanta
    monkeypatch.setattr(network, "to_quanta", lambda x: seen.append(gc.isenabled())
                        or to_quanta(x))

    class Watched(Diffusion):
        def synapse(self, proj, ports, rng):
            seen.append(gc.isenabled())
            return super().synapse(proj, ports, rng)

    assert gc.isenabled()
    g = expand_to_neurons(Network.from_graph(layered([20, 40, 40, 20]), seed=0))
    seen.clear()
    net = Network.from_graph(g, seed=0)
    n_edges = len(seen)
    eng = Engine(net, Watched(eta=0.01), seed=1)
    assert n_edges == g.number_of_edges() and len(seen) == 2 * n_edges
    assert not any(seen) and gc.isenabled()
    # the same agents and weights as an engine built with the collector free to run
    net2 = Network.from_graph.__func__.__wrapped__(Network, g, seed=0)
    eng2 = Engine.__new__(Engine)
    Engine.__init__.__wrapped__(eng2, net2, Diffusion(eta=0.01), seed=1)
    assert all(seen[2 * n_edges:])  # (those builds ran with it on)
    assert eng.names == eng2.names and len(eng.agents) == len(g) + g.number_of_edges()
    for name in ("l0_3->l1_7", "l2_39->l3_0"):
        assert eng.agents[name].model.state()["weight"] == eng2.agents[name].model.state()["weight"]


def test_the_collector_is_restored_also_after_a_failure():
    g = expand_to_neurons(Network.from_graph(layered([2, 3]), seed=0))
    g.edges["l0_0", "l1_0"]["delay"] = -1.0
    for on in (True, False):
        (gc.enable if on else gc.disable)()
        try:
            with pytest.raises(NetworkError, match="delay must be positive"):
                Network.from_graph(g, seed=0)
            assert gc.isenabled() is on
        finally:
            gc.enable()


def test_nested_pauses_restore_what_each_found():
    assert gc.isenabled()
    with collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_cluster_partition_is_made_with_the_collector_paused(monkeypatch):
    """Seen from the union-find it joins every link with: off inside, on after; and
    the same partition as the one made with the collector free to run."""
    from asyncnet.cluster import partition as partition_mod
    seen: list[bool] = []
    join = partition_mod._Union.join
    monkeypatch.setattr(partition_mod._Union, "join",
                        lambda self, a, b: seen.append(gc.isenabled()) or join(self, a, b))
    eng = Engine(Network.from_graph(expand_to_neurons(Network.from_graph(
        layered([6, 10, 4]), seed=0)), seed=0), Diffusion(eta=0.01), seed=1)
    for method in ("metis", "layers"):
        seen.clear()
        part = partition_mod.partition(eng.links, 3, method)
        assert seen and not any(seen) and gc.isenabled()
        free = partition_mod.partition.__wrapped__(eng.links, 3, method)
        assert all(seen[-len(seen) // 2:])  # (that one ran with it on)
        assert part.parts == free.parts and part.cut == free.cut
