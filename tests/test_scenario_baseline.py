"""Every scenario gives the messages and figures it gave before the redesign.

``tests/data/scenario_baseline.json`` was written by ``tools/scenario_baseline.py``
at commit e7df5ab (before schemes, pipeline and API were restructured), i.e. by
the previous implementation. A run now must deliver the same records, byte for
byte, and print the same figures in its ``--json`` summary.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from scenario_baseline import run_one, stable  # noqa: E402

with open(os.path.join(ROOT, "tests", "data", "scenario_baseline.json")) as f:
    BASELINE = json.load(f)
SLOW = {"ep_digits.toml", "coupled_conservation.toml", "coupled_regression.toml"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in sorted(BASELINE)])
def test_scenario_unchanged(name, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    got = run_one(os.path.join("scenarios", name), str(tmp_path))
    want = BASELINE[name]
    assert got["records"] == want["records"]
    assert got["records_sha256"] == want["records_sha256"]
    assert got["summary"] == stable(want["summary"])
