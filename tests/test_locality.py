"""The router refuses traffic between agents that are not graph neighbours."""

import pytest

from asyncnet.engine import Engine
from asyncnet.messages import FORWARD, LocalityError
from asyncnet.network import Network, layered
from asyncnet.schemes.diffusion import Diffusion


def _engine():
    net = Network.from_graph(layered([2, 3, 1]), seed=0)
    return Engine(net, Diffusion(), seed=0, sources={"l0": lambda t: [0.0, 1.0]})


def test_neuron_cannot_reach_a_neuron_directly():
    eng = _engine()
    with pytest.raises(LocalityError, match="l0 cannot address l1"):
        eng.agents["l0"].send_to(0, "l1", FORWARD, 1.0)


def test_synapse_cannot_skip_a_layer():
    eng = _engine()
    with pytest.raises(LocalityError):
        eng.agents["l0->l1"].send_to(0, "l1->l2", FORWARD, 1.0)
    eng.agents["l0->l1"].send_to(0, "l1", FORWARD, 1.0)  # a neighbour is fine


def test_a_port_wired_to_a_stranger_is_refused(monkeypatch):
    """The engine routes a rule's emits by port: a port that lists an agent
    that is not a graph neighbour is refused before anything is sent."""
    import asyncnet.engine as engine_mod
    from asyncnet.api import Ports

    real = engine_mod.ports_of

    def miswired(net, name, canon=None):
        p = real(net, name, canon)
        if name != "l1":
            return p
        return Ports(name, inputs=p.inputs, outputs=("l2",), fan_in=p.fan_in)

    monkeypatch.setattr(engine_mod, "ports_of", miswired)
    with pytest.raises(LocalityError, match="l1 cannot address l2"):
        _engine()


def test_locality_figure_counts_only_one_link_hops():
    """The summary's locality share is not 1.0 by construction: a message between
    strangers, or one that took longer than its link, is not counted as local."""
    from asyncnet.messages import DELTA, QUANTA, Message
    from asyncnet.metrics import Traffic
    links = {"a": {"a->b": QUANTA // 2}, "a->b": {"a": QUANTA // 2, "b": QUANTA // 2},
             "b": {"a->b": QUANTA // 2}}
    tr = Traffic(links, ["a"], ["b"])
    h = QUANTA // 2
    tr([Message(FORWARD, "a", "a->b", 0, h, 1, 0.0),        # one link: local
        Message(FORWARD, "a->b", "b", h, 2 * h, 1, 0.0),    # one link: local
        Message(DELTA, "b", "a", 2 * h, 4 * h, 1, 0.0),     # strangers
        Message(DELTA, "b", "a->b", 2 * h, 5 * h, 2, 0.0)])  # a neighbour, but too slow
    s = tr.summary()
    assert s["messages"]["total"] == 4
    assert s["locality"] == {"one_link": 2, "share": 0.5}
    assert s["link_delay"]["delta"] == {"min": 1.0, "max": 1.5, "mean": 1.25}
