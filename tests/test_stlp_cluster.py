"""STLP distributed: every ``stlp_*`` scenario on 2 and 3 ZeroMQ workers gives
the in-process run's log byte for byte and the same summary (divergence
report included). Reference: ``simulation.simulate`` (see test_cluster.py)."""

from __future__ import annotations

import glob
import os

import pytest

from .test_cluster import ROOT, run_both, shortened

STLP = sorted(glob.glob(os.path.join(ROOT, "scenarios", "stlp_*.toml")))
FAST = {"stlp_control_flip.toml": 400.0, "stlp_fixedpoint_cyclic.toml": 300.0,
        "stlp_async.toml": 40.0}


@pytest.mark.parametrize("name", sorted(FAST))
def test_stlp_identical_on_2_and_3_workers(name, tmp_path):
    sc = shortened(os.path.join(ROOT, "scenarios", name), FAST[name])
    ref = run_both(sc, tmp_path, (2, 3))
    if name == "stlp_control_flip.toml":
        assert ref["diverged"] and ref["diverged"]["t"] is not None


@pytest.mark.slow
@pytest.mark.parametrize("path", STLP, ids=[os.path.basename(p) for p in STLP])
def test_every_stlp_scenario_identical_on_2_and_3_workers(path, tmp_path):
    run_both(shortened(path, 600.0), tmp_path, (2, 3))


def test_decay_on_recurrent_weights_only_on_2_workers(tmp_path):
    """2 workers: the in-process log byte for byte, and the saved weights and biases
    are SCHEMES.md §3 written out in tests/test_stlp.py (no decay on ``V``, ``b``)."""
    import numpy as np

    from asyncnet.scenario import load

    from .test_stlp import DECAY_RULE, scheme3
    from .test_stlp import shortened as with_rule

    path = with_rule("stlp_sine.toml", 60, tmp_path, **DECAY_RULE)
    run_both(shortened(str(path), 60.0), tmp_path, (2,))
    sc = load(path)
    net = sc.build_network()
    ref = scheme3(net, sc.build_rule(), sc.build_stream(net), 59)[-1]
    sl = ref["slices"]
    got = np.load(tmp_path / "w2.npz")
    for (u, v), pr in net.projections.items():
        assert np.max(np.abs(got[f"weight/{pr.name}"] - ref["W"][sl[v], sl[u]])) <= 1e-12
    for n, pop in net.populations.items():
        if pop.role != "input":
            assert np.max(np.abs(got[f"bias/{n}"] - ref["b"][sl[n]])) <= 1e-12, n
