"""EP/CL scenario files: their analyses against independent references, and bad input."""

import os
import subprocess
import sys

import pytest

from asyncnet.scenario import ScenarioError, load
from asyncnet.simulation import build_engine, simulate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCEN = os.path.join(ROOT, "scenarios")


@pytest.mark.parametrize("name,order", [("ep_gradient", 1), ("ep_symmetric", 2),
                                        ("ep_async", 1), ("coupled_gradient", 1)])
def test_gradient_scenarios_show_the_bias_order(name, order):
    """Error against implicit differentiation ∝ nudge^order (from the scenario's own table)."""
    s = simulate(load(os.path.join(SCEN, f"{name}.toml")))
    rows = {r["nudge"]: r for r in s["gradient"]}
    for r in rows.values():
        assert r["free_state_error"] < 1e-12  # vs Newton fixed point / linear solve
    big, small = rows[1e-1], rows[1e-3]
    ratio = big["error"] / small["error"]
    assert 0.7 * 100 ** order < ratio < 1.3 * 100 ** order
    assert s["locality"]["share"] == 1.0
    assert s["messages"]["delta"] > 0  # the nudge travelled as delta messages


def test_regression_scenario_learns_and_nearly_conserves_q(tmp_path):
    path = tmp_path / "cl.toml"
    text = open(os.path.join(SCEN, "coupled_regression.toml"), encoding="utf-8").read()
    short = text.replace("duration = 9000", "duration = 2700")  # 30 windows
    assert short != text
    path.write_text(short)
    t = simulate(load(str(path)))["training"]
    assert t["test_loss"] < 0.5 * t["test_loss_start"]
    assert abs(t["Q_drift"]) < 0.1


def _write(tmp_path, text):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    return str(p)


BASE = """
[scenario]
duration = 10
[network]
layers = [2, 3, 1]
activation = "sigmoid"
[rule]
name = "ep"
{rule}
[data]
{data}
"""


@pytest.mark.parametrize("rule,data,words", [
    ("", 'kind = "constant"\nhold = 3', ["[data]", "'hold'"]),
    ("", 'kind = "zigzag"', ["[data]", "zigzag"]),
    ("", 'kind = "linear"\npatterns = 4\nbatch = 9', ["[data]", "batch"]),
    ('apply = "sometimes"', "", ["[rule]", "apply"]),
    ("beta = -1.0", "", ["[rule]", "beta"]),
    ("gamma = 1.0", "", ["[rule]", "'gamma'"]),
    ("", 'kind = "constant"\n[analysis]\nkind = "exactness"', ["[analysis]", "exactness"]),
])
def test_bad_energy_scenarios_name_the_key(tmp_path, rule, data, words):
    path = _write(tmp_path, BASE.format(rule=rule, data=data))
    with pytest.raises(ScenarioError) as e:
        sc = load(path)
        build_engine(sc)
    for w in words:
        assert w in str(e.value)
    r = subprocess.run([sys.executable, "-m", "asyncnet", "run", path, "--no-log", "-q"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.startswith("asyncnet: error: ") and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1
