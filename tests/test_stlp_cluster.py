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
