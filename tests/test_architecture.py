"""The package's shape stays as DESIGN.md says: layers point down, no cycles.

import-linter checks the contracts in ``pyproject.toml`` (``[tool.importlinter]``);
the cycle check walks grimp's import graph, which includes imports inside
functions (a cycle hidden in a function is still a cycle).
"""

from __future__ import annotations

import os
import subprocess
import sys

import grimp
import networkx as nx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_import_contracts_kept():
    out = subprocess.run([sys.executable, "-c",
                          "import sys; from importlinter.cli import lint_imports_command; "
                          "sys.exit(lint_imports_command())"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "broken" in out.stdout and "0 broken" in out.stdout


def test_no_import_cycles():
    g = grimp.build_graph("asyncnet")
    d = nx.DiGraph()
    for m in g.modules:
        for dep in g.find_modules_directly_imported_by(m):
            d.add_edge(m, dep)
    cycles = [c for c in nx.strongly_connected_components(d) if len(c) > 1]
    assert cycles == []


def test_engine_and_backends_name_no_scheme():
    # the engine, the pipeline and the cluster are handed a scheme; none names one
    names = ("diffusion", "leastaction", "continuous", '"ep"', "coupled")
    for rel in ("engine.py", "agents.py", "simulation.py", "runner.py",
                "cluster/coordinator.py", "cluster/worker.py", "cluster/gather.py"):
        with open(os.path.join(ROOT, "asyncnet", rel), encoding="utf-8") as f:
            text = f.read()
        assert not [n for n in names if n in text], rel
