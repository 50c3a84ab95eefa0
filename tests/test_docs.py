"""The documentation cannot drift from the code.

- the generated pages (scenario file reference, gallery, tutorial page) equal
  what ``tools/gen_docs.py`` makes from the code, the scenarios and the
  measured summaries now;
- the gallery's figures: the baseline scenarios are run by
  ``tests/test_scenario_baseline.py`` (whole summary compared); the others
  (STLP) are run here and their headline must be the one the page states;
- ``mkdocs build --strict`` passes (broken links, anchors, references fail);
- the event-log page's reader, written without asyncnet, reads a real log
  exactly as asyncnet does;
- the tutorial notebook executes;
- the public API documents its parameters and returns;
- the README stays a front door (≲ 150 lines) whose doc links exist.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
sys.path.insert(0, os.path.join(ROOT, "tools"))
import gen_docs  # noqa: E402
from scenario_baseline import stable  # noqa: E402


@pytest.mark.parametrize("page", sorted(gen_docs.GENERATED), ids=os.path.basename)
def test_generated_page_is_current(page):
    with open(page, encoding="utf-8") as f:
        committed = f.read()
    assert committed == gen_docs.GENERATED[page]() + "\n", \
        f"{os.path.relpath(page, ROOT)} is stale: run python tools/gen_docs.py"


def test_every_scenario_is_in_the_gallery_with_a_figure():
    text = open(gen_docs.GALLERY, encoding="utf-8").read()
    measured = gen_docs.summaries()
    for path in gen_docs.scenario_files():
        name = os.path.basename(path)
        assert f"`{name}`" in text
        if name.startswith("floweqprop"):  # gradep trains in a loop of its own (its page)
            continue
        assert name in measured, f"{name}: no measured summary (add it to " \
                                 f"tests/data/gallery_summaries.json)"
        assert gen_docs.headline(name, measured[name]) in text


def test_reference_covers_every_key_and_parameter():
    from asyncnet import registry, schema
    from asyncnet.scenario import SCHEMA
    text = open(gen_docs.REFERENCE, encoding="utf-8").read()
    for sec, keys in SCHEMA.items():
        for k in keys or ():
            assert f"| `{k}` |" in text, (sec, k)
    for name in registry.BUILTIN:
        cls = registry.get_scheme(name)
        for row in schema.describe(cls):
            assert f"| `{row['name']}` | `" in text, (name, row)
            assert gen_docs._attr_docs(cls).get(row["name"]) or \
                gen_docs.PARAM_MEANING.get(name, {}).get(row["name"]), \
                f"{name}.{row['name']}: say what it means (tools/gen_docs.py PARAM_MEANING)"


EXTRA = json.load(open(gen_docs.EXTRA, encoding="utf-8"))
SLOW_EXTRA = {"stlp_sine.toml", "stlp_sines.toml", "stlp_square.toml", "stlp_async.toml"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_EXTRA
                                  else n for n in sorted(EXTRA)])
def test_gallery_figure_of_scenarios_outside_the_baseline(name, tmp_path):
    r = subprocess.run([sys.executable, "-m", "asyncnet", "run", os.path.join("scenarios", name),
                        "--json", "-q", "--no-log"], capture_output=True, text=True, cwd=ROOT,
                       timeout=600)
    assert r.returncode in (0, 3), r.stderr  # 3: a diverging negative control
    got = stable(json.loads(r.stdout))
    want = EXTRA[name]["summary"]
    assert gen_docs.headline(name, got) == gen_docs.headline(name, want)
    assert gen_docs.headline(name, got) in open(gen_docs.GALLERY, encoding="utf-8").read()


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    pytest.importorskip("material")
    # not -q: it silences the warnings, and strict mode then has none to count
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d",
                        str(tmp_path / "site")], capture_output=True, text=True, cwd=ROOT,
                       timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "WARNING" not in r.stdout + r.stderr, r.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "api" / "index.html").exists()
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    import asyncnet
    for name in asyncnet.__all__:  # every public name has its entry
        if name != "__version__":
            assert f'id="asyncnet.{name}"' in api, name
    for name in ("logfile.EventLog.to_dataframe", "plots.raster",
                 "plots.weight_evolution", "tables.log_batches", "export.export_log"):
        assert f'id="asyncnet.{name}"' in api, name


def test_event_log_page_reader_reads_a_log_like_asyncnet(tmp_path):
    import asyncnet
    from asyncnet.logfile import open_log
    text = open(os.path.join(DOCS, "reference", "event-log.md"), encoding="utf-8").read()
    code = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(code) == 1
    ns: dict = {}
    exec(compile(code[0], "event-log.md", "exec"), ns)
    sc = asyncnet.Scenario(asyncnet.layered([2, 3, 1]), "diffusion", params={"eta": 0.1},
                           data={"kind": "xor", "hold": 4}, duration=40, seed=3)
    log = str(tmp_path / "x.log")
    asyncnet.run(sc, log=log)
    it = ns["read_log"](log)
    header = next(it)
    ours = list(it)
    theirs = list(open_log(log).messages())
    assert header["agents"] == open_log(log).agents and len(ours) == len(theirs) > 100
    for a, m in zip(ours, theirs, strict=True):
        t, kind, src, dst, ts, seq, p = a
        assert (t, src, dst, ts, seq) == (m.t_arrive, m.src, m.dst, m.t_sent, m.seq)
        assert kind == ("forward", "delta", "control")[m.kind]
        want = np.asarray(m.payload)
        assert p["shape"] == list(want.shape) and p["values"] == want.ravel().tolist()
    data = bytearray(open(log, "rb").read())
    data[len(data) // 2] ^= 1  # one flipped bit: the page's reader must notice too
    bad = tmp_path / "bad.log"
    bad.write_bytes(bytes(data))
    with pytest.raises(Exception):  # noqa: B017 - a digest mismatch or a decoding error
        list(ns["read_log"](str(bad)))


def test_tutorial_notebook_runs(tmp_path):
    for mod in ("nbformat", "nbclient", "ipykernel", "matplotlib", "pandas", "pyarrow"):
        pytest.importorskip(mod)
    import nbformat
    from nbclient import NotebookClient
    shutil.copy(os.path.join(DOCS, "tutorial.ipynb"), tmp_path)
    nb = nbformat.read(str(tmp_path / "tutorial.ipynb"), as_version=4)
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = ROOT + (os.pathsep + env_path if env_path else "")
    t0 = time.perf_counter()
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        os.environ["PYTHONPATH"] = env_path
    took = time.perf_counter() - t0
    outs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outs if o.output_type == "stream")
    assert "identical log: True | identical recordings: True" in text
    assert "'accuracy': 1.0" in text
    assert sum(o.output_type == "display_data" and "image/png" in o.data for o in outs) >= 2
    assert took < 240


def _documented():
    import asyncnet
    from asyncnet import export, logfile, plots, schema, tables
    objs = [getattr(asyncnet, n) for n in asyncnet.__all__ if n != "__version__"]
    objs += [schema.describe, logfile.open_log, logfile.EventLog, export.export_log]
    objs += [getattr(plots, n) for n in ("raster", "latency_histogram", "traces",
                                         "weight_evolution", "draw_waves", "tension_trace",
                                         "draw_tension")]
    objs += [tables.log_batches, tables.log_dataframe, tables.recording_columns]
    for o in objs:
        if inspect.isclass(o):
            yield o.__qualname__, o
            if issubclass(o, BaseException):
                continue
            for m, f in vars(o).items():
                if m.startswith("_"):
                    continue
                f = f.__func__ if isinstance(f, (classmethod, staticmethod)) else f
                if inspect.isfunction(f):
                    yield f"{o.__qualname__}.{m}", f
        elif callable(o):
            yield o.__qualname__, o


def test_public_api_documents_parameters_and_returns():
    missing = []
    for name, f in _documented():
        doc = inspect.getdoc(f) or ""
        if not doc:
            missing.append(f"{name}: no docstring")
            continue
        if inspect.isclass(f):
            continue
        params = [p for p in inspect.signature(f).parameters if p not in ("self", "cls")]
        if params and "Parameters" not in doc:
            missing.append(f"{name}: no Parameters")
        ret = inspect.signature(f).return_annotation
        if params and ret not in (inspect.Signature.empty, None, "None") \
                and "Returns" not in doc:
            missing.append(f"{name}: no Returns")
    assert not missing, missing


def test_readme_is_a_front_door():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert len(text.splitlines()) <= 150
    for target in re.findall(r"\]\((docs/[^)#]+)", text):
        assert os.path.exists(os.path.join(ROOT, target)), target
    for cmd in ("asyncnet run scenarios/quickstart.toml", "python -m pytest -q"):
        assert cmd in text


def test_docs_extras_are_declared():
    import tomllib
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    assert {"mkdocs", "mkdocs-material"} <= {re.split(r"[\[<>=]", d)[0] for d in extras["docs"]}
    assert {"pyarrow", "pandas"} <= {re.split(r"[\[<>=]", d)[0] for d in extras["export"]}
    assert importlib.util.find_spec("asyncnet") is not None
