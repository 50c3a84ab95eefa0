"""A data stream feeds a whole layer however it is written.

The same network as populations (one node per layer) and per neuron
(``expand_to_neurons``: n size-1 nodes per layer), both fed from the
scenario's ``[data]`` with no ``input_node``: the per-neuron run's outputs,
weights and gradients equal the population run's, neuron by neuron.
"""

from __future__ import annotations

import numpy as np
import pytest

import asyncnet


@pytest.mark.parametrize("data", [
    {"kind": "constant", "input": [0.3, -0.7, 1.1], "target": [0.2, -0.4]},
    {"kind": "piecewise", "hold": 3, "patterns": 3},
])
def test_per_neuron_layer_gets_the_same_numbers(data):
    g = asyncnet.layered([3, 4, 2])
    pop = asyncnet.Scenario(g, "diffusion", params={"eta": 0.02, "init_state": "zero"},
                            data=data, duration=40, seed=5)
    net = pop.build_network()
    per = asyncnet.Scenario(asyncnet.expand_to_neurons(net), "diffusion",
                            params={"eta": 0.02, "init_state": "zero"}, data=data,
                            duration=40, seed=5)
    a = asyncnet.run(pop, record={"l2": ["state"]}, period=1)
    b = asyncnet.run(per, record={f"l2_{k}": ["state"] for k in range(2)}, period=1)
    out_b = np.concatenate([b.recorded[f"l2_{k}"]["state"] for k in range(2)], axis=1)
    np.testing.assert_allclose(out_b, a.recorded["l2"]["state"], rtol=1e-12, atol=1e-14)
    W = a.state("l1->l2")["weight"]
    for i in range(2):
        for j in range(4):
            wb = b.state(f"l1_{j}->l2_{i}")["weight"]
            np.testing.assert_allclose(wb[0, 0], W[i, j], rtol=1e-12, atol=1e-14)
    assert a.summary["result"]["loss"] == pytest.approx(b.summary["result"]["loss"], rel=1e-10)


def test_named_layer_order_is_kept():
    # input_node as a list: the populations get the input's parts in that order
    data = {"kind": "constant", "input": [1.0, 2.0], "target": [0.0]}
    pop = asyncnet.Scenario(asyncnet.layered([2, 1]), "diffusion", data=data, duration=5)
    per = asyncnet.expand_to_neurons(pop.build_network())
    sc = asyncnet.Scenario(per, "diffusion", duration=5, data={
        "kind": "constant", "input": [1.0, 2.0], "target": [0.0],
        "input_node": ["l0_1", "l0_0"]})
    res = asyncnet.run(sc, record={"l0_0": ["state"], "l0_1": ["state"]}, period=1)
    assert res.recorded["l0_1"]["state"][-1, 0] == 1.0
    assert res.recorded["l0_0"]["state"][-1, 0] == 2.0
