"""A scheme registered from outside the package runs end to end.

``tests/plugins/echo_scheme.py`` is found through its entry point only
(``tests/plugins/echo_scheme-0.1.dist-info``): nothing in ``asyncnet`` names
it. It runs through the CLI and the API, in-process and on 2 workers, with
the same log; its output is checked against the closed form
``scale² · u`` of a two-link echo chain.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import asyncnet
from asyncnet.registry import SchemeError, get_scheme

PLUGINS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plugins")
TOML = os.path.join(PLUGINS, "echo.toml")
# output of l0 -> l1 -> l2 with every synapse multiplying by 0.5, input [1, -2]
EXPECTED_OUT = 0.25 * np.array([1.0, -2.0])


@pytest.fixture
def plugin_path(monkeypatch):
    monkeypatch.syspath_prepend(PLUGINS)
    monkeypatch.setenv("PYTHONPATH", PLUGINS + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": PLUGINS + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "asyncnet", *args], capture_output=True,
                          text=True, env=env)


@pytest.mark.parametrize("workers", [1, 2])
def test_echo_through_the_cli(tmp_path, workers):
    log = tmp_path / f"echo{workers}.log"
    out = _cli("run", TOML, "--json", "-q", "--log", str(log), "--workers", str(workers),
               "--save-state", str(tmp_path / "s.npz"))
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)
    assert s["rule"] == "echo"
    assert s["locality"]["share"] == 1.0
    st = np.load(tmp_path / "s.npz")
    np.testing.assert_allclose(st["state/l2"], EXPECTED_OUT, rtol=0, atol=1e-15)
    want = 0.5 * float(np.sum(EXPECTED_OUT ** 2))
    assert s["result"]["loss"] == pytest.approx(want, rel=1e-15)
    if workers == 2:
        other = tmp_path / "echo1.log"
        assert _cli("run", TOML, "-q", "--log", str(other)).returncode == 0
        assert other.read_bytes() == log.read_bytes()
    verify = _cli("replay", str(log), "--verify", "-q")
    assert verify.returncode == 0 and "identical" in verify.stdout


def test_echo_through_the_api(tmp_path, plugin_path):
    sc = asyncnet.Scenario.from_toml(TOML)
    one = asyncnet.run(sc, log=str(tmp_path / "a.log"), record={"l2": ["state"]}, period=5)
    two = asyncnet.run(sc, workers=2, log=str(tmp_path / "b.log"), record={"l2": ["state"]},
                       period=5)
    np.testing.assert_allclose(one.state("l2")["state"], EXPECTED_OUT, atol=1e-15)
    assert (tmp_path / "a.log").read_bytes() == (tmp_path / "b.log").read_bytes()
    np.testing.assert_array_equal(one.recorded["l2"]["state"], two.recorded["l2"]["state"])
    # two links of delay 1 after the data arrive at t=1: settled from t=3 on
    settled = one.times >= 4
    np.testing.assert_allclose(one.recorded["l2"]["state"][settled],
                               np.broadcast_to(EXPECTED_OUT, (settled.sum(), 2)), atol=1e-15)


def test_unknown_and_broken_schemes_say_so(tmp_path, monkeypatch):
    with pytest.raises(SchemeError, match="unknown rule 'nope'"):
        get_scheme("nope")
    # a plugin whose module fails to import is reported as such, not as unknown
    bad = tmp_path / "broken_scheme-0.1.dist-info"
    bad.mkdir()
    (bad / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-scheme\nVersion: 0.1\n")
    (bad / "entry_points.txt").write_text("[asyncnet.schemes]\nbroken = broken_scheme:X\n")
    (tmp_path / "broken_scheme.py").write_text("import not_a_module_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SchemeError, match="failed to import.*not_a_module_anywhere"):
        get_scheme("broken")


class _NoFactories:
    name = "nofactories"


class _GivesNumbers:
    """Factories that return no model: the run would fail at its first message."""

    name = "givesnumbers"

    def __init__(self, **params):
        pass

    def neuron(self, pop, ports, rng):
        return 3

    def synapse(self, proj, ports, rng):
        return 3


@pytest.mark.parametrize("name,scheme,words", [
    ("diffusion", _NoFactories, "'diffusion' is a built-in rule"),
    (3, _GivesNumbers, "a rule's name is a non-empty string, got 3"),
    ("", _GivesNumbers, "non-empty string"),
    ("x", _GivesNumbers(), "must be a class"),
    ("x", _NoFactories, "_NoFactories has no neuron() and no synapse()"),
])
def test_register_refuses_what_cannot_be_a_scheme(name, scheme, words, monkeypatch):
    monkeypatch.setattr("asyncnet.registry._REGISTERED", {})
    with pytest.raises(SchemeError) as e:
        asyncnet.register(name, scheme)
    assert words in str(e.value)
    assert get_scheme("diffusion").__name__ == "Diffusion"  # nothing was taken over


def test_a_factory_that_gives_no_model_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr("asyncnet.registry._REGISTERED", {})
    asyncnet.register("givesnumbers", _GivesNumbers)
    sc = asyncnet.Scenario(asyncnet.layered([2, 1]), "givesnumbers", duration=4)
    with pytest.raises(TypeError, match=r"rule 'givesnumbers': neuron\(\) for 'l0' gave a "
                                        r"int, not a model"):
        asyncnet.run(sc)
    # through the CLI (the scheme registered in this process): one line, exit 2
    from asyncnet.cli import main
    p = tmp_path / "s.toml"
    p.write_text(sc.to_toml(), encoding="utf-8")
    rc = main(["run", str(p), "--no-log", "-q"])
    assert rc == 2


def test_a_scheme_registered_here_runs_here_and_is_refused_for_workers(plugin_path,
                                                                         monkeypatch, tmp_path):
    """Workers are new processes: a scheme added by register() is unknown there (the
    workers failed one by one with "unknown rule"); said once, before anything starts."""
    import echo_scheme
    monkeypatch.setattr("asyncnet.registry._REGISTERED", {})
    asyncnet.register("echo_here", echo_scheme.Echo)
    with open(TOML, encoding="utf-8") as f:
        text = f.read().replace('name = "echo"', 'name = "echo_here"')
    assert 'name = "echo_here"' in text
    path = tmp_path / "echo_here.toml"
    path.write_text(text, encoding="utf-8")
    sc = asyncnet.Scenario.from_toml(path)
    one = asyncnet.run(sc)
    np.testing.assert_allclose(one.state("l2")["state"], EXPECTED_OUT, atol=1e-15)
    with pytest.raises(asyncnet.ScenarioError, match="'echo_here' was added by "
                                                    r"asyncnet.register\(\) in this process"):
        asyncnet.run(sc, workers=2)


@pytest.mark.parametrize("missing, named", [("threadpoolctl", "threadpoolctl"),
                                            ("sklearn", "scikit-learn"), ("scipy", "scipy")])
def test_a_builtin_scheme_without_its_extra_names_what_to_install(monkeypatch, missing, named):
    import sys

    from asyncnet.registry import get_scheme
    for mod in [m for m in sys.modules if m.startswith("asyncnet.schemes.gradep")
                and not m.endswith((".cli", ".errors"))]:
        monkeypatch.delitem(sys.modules, mod)
    for mod in [missing] + [m for m in sys.modules if m.startswith(missing + ".")]:
        monkeypatch.setitem(sys.modules, mod, None)  # an import of it fails, as if absent
    if missing == "sklearn":  # the scheme looks for it without importing it
        import importlib.util
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a: None if name == missing else real(name, *a))
    with pytest.raises(SchemeError, match=rf"rule 'gradep' needs {named}, which is not "
                                          r"installed: pip install .*\[gradep\]"):
        get_scheme("gradep")


def test_sample_without_matplotlib_says_so_before_it_samples(monkeypatch, tmp_path, capsys):
    import sys

    from asyncnet.cli import main
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["sample", str(tmp_path), "-o", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("asyncnet: error: asyncnet sample needs matplotlib, which is not "
                          "installed: pip install") and err.endswith("[gradep]'"), err


def test_register_refuses_a_class_whose_parameters_no_scenario_could_give():
    """A plain class taking gain= was registered, then every [rule] gain was refused
    ('unknown key (known: )')."""
    import asyncnet

    class Mine:
        def __init__(self, gain: float = 1.0):
            self.gain = gain

        def neuron(self, pop, ports, rng):
            raise AssertionError

        def synapse(self, proj, ports, rng):
            raise AssertionError

    with pytest.raises(asyncnet.SchemeError, match="takes gain but is no dataclass"):
        asyncnet.register("mine_plain", Mine)
