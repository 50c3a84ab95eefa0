"""Memory of per-neuron nets (issue 13): what the savings rest on, checked.

The bytes per synapse agent themselves are measured by
``tools/bench_engine.py --figures memory``; these tests check that the
sharing behind them changes no number and no object a caller holds.
"""

from __future__ import annotations

import numpy as np
import pytest

from asyncnet.messages import DELTA, FORWARD, Message
from asyncnet.network import Network, expand_to_neurons, layered
from asyncnet.schemes.diffusion import Diffusion, Synapse, scratch, zeros


def test_projection_is_slotted_and_keeps_the_graph_edge_dict() -> None:
    net = Network.from_graph(layered([2, 3]), seed=0)
    pr = net.projections[("l0", "l1")]
    assert not hasattr(pr, "__dict__")
    assert pr.attrs is net.graph.edges["l0", "l1"]  # not a copy per edge
    assert pr.weight.shape == (3, 2)


def test_per_neuron_graph_shares_node_names_and_keeps_weights() -> None:
    pop = Network.from_graph(layered([3, 4]), seed=5)
    g = expand_to_neurons(pop)
    nodes = {n: n for n in g.nodes}
    for u, v, a in g.edges(data=True):
        assert nodes[u] is u and nodes[v] is v  # one string per node
        i, j = int(v.split("_")[1]), int(u.split("_")[1])
        # a plain float (a 1 x 1 weight), not [[w]]: two lists fewer per synapse
        assert type(a["weight"]) is float
        assert a["weight"] == pop.projections[("l0", "l1")].weight[i, j]
    fine = Network.from_graph(g, seed=0)
    for (u, v), pr in fine.projections.items():
        i, j = int(v.split("_")[1]), int(u.split("_")[1])
        assert pr.weight.shape == (1, 1)
        assert pr.weight[0, 0] == pop.projections[("l0", "l1")].weight[i, j]
        assert a["delay"] == 1.0


def test_shared_zeros_are_read_only() -> None:
    z = zeros(3)
    assert z is zeros(3) and not z.any()
    with pytest.raises(ValueError):
        z[0] = 1.0


def _msg(kind: int, src: str, dst: str, payload: np.ndarray) -> Message:
    return Message(kind, src, dst, 0, 4, 1, payload)


def test_synapses_sharing_scratch_learn_as_plain_numpy() -> None:
    # two 1x1 synapses share one scratch array; each must still end with
    # exactly W - eta * d x^T computed on its own (plain numpy reference)
    net = Network.from_graph(expand_to_neurons(Network.from_graph(layered([1, 2]), seed=3)),
                             seed=0)
    rule = Diffusion(eta=0.1)
    syns = [Synapse(rule, pr) for pr in net.projections.values()]
    assert syns[0]._buf is syns[1]._buf is scratch((1, 1))
    rng = np.random.default_rng(0)
    for _ in range(3):
        refs = []
        for s in syns:
            x, d = rng.standard_normal(1), rng.standard_normal(1)
            want = s.W - 0.1 * np.outer(d, x)
            s.react(0.0, [_msg(FORWARD, "a", "b", x), _msg(DELTA, "c", "b", d)])
            refs.append(want)
        for s, want in zip(syns, refs, strict=True):
            assert np.array_equal(s.W, want)


def test_synapse_models_share_all_arrays_but_their_weight() -> None:
    # per synapse agent, before any message: W only (x_pre, d_post and the
    # scratch are one array per shape for all), and W is its own copy
    net = Network.from_graph(expand_to_neurons(Network.from_graph(layered([4, 5]), seed=1)),
                             seed=0)
    prs = list(net.projections.values())
    syns = [Synapse(Diffusion(eta=0.1), pr) for pr in prs]
    for name in ("x_pre", "d_post", "_buf"):
        assert len({id(getattr(s, name)) for s in syns}) == 1, name
    assert len({id(s.W) for s in syns}) == len(prs) == 20
    assert all(s.W is not pr.weight and np.array_equal(s.W, pr.weight)
               for s, pr in zip(syns, prs, strict=True))
