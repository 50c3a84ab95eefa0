"""Generate the documentation pages that must not drift from the code.

    python tools/gen_docs.py            # rewrite the generated pages
    python tools/gen_docs.py --check    # exit 1 if a committed page is stale
    python tools/gen_docs.py --figures  # also re-run the tutorial notebook for its figures

``docs/reference/scenario-file.md`` comes from the scenario schema
(``asyncnet.scenario.SCHEMA``, ``NODE_KEYS``, ``EDGE_KEYS``) and every
built-in scheme's parameter dataclass (``asyncnet.schema.describe``).
``docs/gallery.md`` comes from ``scenarios/*.toml`` (name, rule, duration,
``description``) and each scenario's headline figure, read from its
``--json`` summary as measured: ``tests/data/scenario_baseline.json`` (which
``tests/test_scenario_baseline.py`` checks against fresh runs) and
``tests/data/gallery_summaries.json`` for the scenarios the baseline does not
hold (``tests/test_docs.py`` runs those). ``tests/test_docs.py`` compares the
committed pages with this output, so a new key, a new parameter, a new
scenario or a changed figure fails a test until the page is regenerated.
"""

from __future__ import annotations

import argparse
import ast
import glob
import inspect
import json
import os
import sys
import tomllib
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from asyncnet import registry, schema  # noqa: E402
from asyncnet.data import KIND_KEYS  # noqa: E402
from asyncnet.nudge import DATASET_KEYS  # noqa: E402
from asyncnet.scenario import EDGE_KEYS, NODE_KEYS, NUM, SCHEMA  # noqa: E402

REFERENCE = os.path.join(ROOT, "docs", "reference", "scenario-file.md")
GALLERY = os.path.join(ROOT, "docs", "gallery.md")
BASELINE = os.path.join(ROOT, "tests", "data", "scenario_baseline.json")
EXTRA = os.path.join(ROOT, "tests", "data", "gallery_summaries.json")
NOTEBOOK = os.path.join(ROOT, "docs", "tutorial.ipynb")

# -- what each key means (the schema holds types; the meaning lives here) ----
SECTION_KEYS: dict[str, dict[str, str]] = {
    "scenario": {
        "name": "what the scenario is called (default: the file name)",
        "description": "what it shows (the gallery prints it)",
        "seed": "every random stream derives from (seed, agent name); default 0",
        "duration": "simulated time units to run (required, > 0)"},
    "network": {
        "layers": "a layered chain `l0 -> l1 -> ...` with these sizes (or give nodes/edges)",
        "activation": "tanh, sigmoid, relu, linear, softplus, hardsigmoid",
        "out_activation": "activation of the last layer (default: `activation`)",
        "delay": "delay of every projection (> 0)",
        "scale": "weights ~ N(0, scale²/fan_in)",
        "init": "`normal` or `uniform`",
        "speed": "delay = length / speed where an edge gives a `length`",
        "nodes": "any digraph: `[{name, size, activation, role, bias}, ...]`",
        "edges": "`[{pre, post, delay | length, speed, scale, init, weight}, ...]`"},
    "data": {
        "kind": "constant, piecewise, xor, sinusoid, latch (ep and coupled: constant, "
                "digits, linear; stlp: its own kinds, see its page)",
        "hold": "each pattern is held this long",
        "patterns": "piecewise / linear: number of random patterns",
        "order": "`cycle`, `shuffle` (reshuffled every epoch) or `random`",
        "input": "constant: the input values (default: drawn from the seed)",
        "target": "constant: the target values (default: drawn from the seed)",
        "period": "sinusoid, latch: the period",
        "lag": "sinusoid: the target's lag behind the input",
        "target_scale": "xor, latch: the target's size (xor: ±target_scale)",
        "input_node": "the input population(s), when the network has several",
        "output_node": "the output population(s), when the network has several",
        "batch": "ep, coupled: patterns per window; piecewise, xor (diffusion, "
                 "leastaction, continuous): patterns per frame, rows of a (B, n) value",
        "settle": "ep, coupled: free phase length of a window",
        "leg": "ep, coupled: length of each nudged leg",
        "release": "ep, coupled: free time after the nudge",
        "samples": "ep, coupled: dataset size",
        "test_fraction": "ep, coupled: share of the dataset held out"},
    "loss": {"kind": "`mse`: V = ½‖x_out − y‖² (the only one)"},
    "analysis": {
        "kind": "which analysis the summary reports (per scheme, below)",
        "holds": "alignment: the hold times to sweep",
        "warmup": "alignment, tracking: ignore what happens before this time",
        "tolerance": "settling: the error counted as exact (default 1e-12)",
        "betas": "gradient: the nudge sizes to measure"},
    "output": {
        "log": "event log path (default `runs/<name>.log`)",
        "save_state": "write the final state to this `.npz`",
        "progress": "show progress on stderr (default true)",
        "write_log": "false: no event log at all",
        "checkpoint_every": "write a checkpoint every T time units (as --checkpoint-every; "
        "the flag wins); asyncnet resume continues the run",
        "checkpoint_dir": "where the checkpoints go (as --checkpoint-dir; default LOG.ckpt)",
        "state_dir": "where a scheme with its own training loop (gradep) keeps its "
                     "checkpoints and results (default runs/<name>)"},
    "cluster": {
        "workers": "run on N local worker processes (the command line wins)",
        "partition": "`auto` (cut the longest delays; METIS with every depth spread evenly "
                     "where pymetis is installed, else layer chunks), `metis` (the same, "
                     "pymetis required), `metis-cut` (METIS alone: fewest links cut, for a "
                     "cluster limited by its network), `layers` or `round-robin`"},
}
NODE_MEANING = {"name": "the population's name (required)", "size": "neurons (default 1)",
                "activation": "as in [network]", "role": "input, hidden or output "
                "(default: from the graph)", "bias": "initial biases"}
EDGE_MEANING = {"pre": "source population (required)", "post": "target population (required)",
                "delay": "link delay (> 0)", "length": "length; delay = length / speed",
                "speed": "this edge's speed", "scale": "as in [network]",
                "init": "as in [network]", "weight": "initial weights, (size post × size pre)"}
PARAM_MEANING: dict[str, dict[str, str]] = {
    "gradep": {
        "lam": "spring constant λ tying the visible units to the query x_t",
        "alpha": "velocity scale α: v = α λ (x* − x_t)",
        "beta": "nudge strength β of the ±β phases",
        "eps": "relaxation step ε (stable while ε(1 + λ + β(αλ)²) < 2)",
        "free_steps": "synchronous relaxation steps of the free phase",
        "nudge_steps": "relaxation steps of each nudged phase (from the free state)",
        "lr": "Adam learning rate", "adam_b1": "Adam β1", "adam_b2": "Adam β2",
        "adam_eps": "Adam ε",
        "clip": "gradient-norm clip", "clip_mode": "global (numpy face only), local "
        "(per agent) or none",
        "dtype": "float32 or float64 for states and parameters",
        "kernel": "exact (numpy's arithmetic bit for bit; compiled with numba where "
        "installed) or fast (one fused pass, rational tanh, needs numba: within 2e-6)",
        "sizes": "widths of x, h1, h2", "steps": "training steps",
        "checkpoint_every": "steps between checkpoints (a killed run resumes from the last)",
        "workers": "processes the batch is split over",
        "threads": "BLAS threads per process",
        "backend": "engine (agents exchanging messages) or face (plain numpy)",
    },
    "diffusion": {"eta": "learning rate of the weights (0 = frozen)",
                  "eta_bias": "learning rate of the biases (default: eta)",
                  "init_state": "initial activities and deltas: random (N(0,1)) or zero"},
    "leastaction": {"mode": "sync: step when messages arrive; async: on the neuron's own timer",
                    "dt": "relaxation step Δt (1: exact in 2L steps)",
                    "eta": "learning rate (0 = frozen)",
                    "period": "async: mean timer period",
                    "period_spread": "async: each neuron's period drawn in period × (1 ± this)",
                    "jitter": "async: each firing jittered by ± this share",
                    "init_state": "initial x and λ: random or zero"},
    "continuous": {"c": "speed of the leaky dynamics (c⁻¹ ẋ = −x + σ(a))",
                   "h": "the neuron's own timer step",
                   "jitter": "timer jitter (share of h)",
                   "gamma": "learning: ẇ = −δ xᵀ / γ ... 0 = frozen weights",
                   "init_state": "initial state: zero or random"},
    "ep": {"beta": "nudge size β", "symmetric": "±β (true) or one-sided (false)",
           "eta": "learning rate (0 = measure gradients only)",
           "eps": "step down the energy per firing", "period": "the neuron's timer period",
           "jitter": "timer jitter", "tol": "a change below this is not sent",
           "init_scale": "scale of the initial weights (0: the network's)",
           "apply": "continual (C-EP: every change) or deferred (the leg's sum)"},
    "coupled": {"eta": "nudge η", "alpha": "learning rate", "floor": "smallest conductance",
                "omega": "relaxation factor of a node's step", "period": "timer period",
                "jitter": "timer jitter", "tol": "a change below this is not sent",
                "k_low": "initial conductances from U(k_low, k_high)",
                "k_high": "see k_low",
                "apply": "continual or deferred (the leg's sum)"},
    "stlp": {"dt": "Euler step per unit time, (0, 1]", "theta": "costate dissipation, [0, 1)",
             "beta": "weight mobility (ẇ = −β p_w), 0 = frozen", "gamma": "weight of the loss "
             "in H", "q": "output error weight in ℓ", "r_w": "weight decay in ℓ",
             "flip": "costate sign: −1 the scheme, +1 the negative control",
             "order": "w_first (the code's local=True) or p_first",
             "learn_bias": "learn the biases too", "mode": "sync or async (own timers)",
             "period": "async: mean timer period",
             "period_spread": "async: per-neuron period spread",
             "jitter": "async: per-firing jitter", "init_state": "zero or random"},
}


def scheme_page(rule: str) -> str | None:
    """``schemes/<rule>.md`` if that page exists (relative to docs/)."""
    rel = f"schemes/{rule}.md"
    return rel if os.path.exists(os.path.join(ROOT, "docs", rel)) else None


def _type_name(t: object) -> str:
    if t is NUM:
        return "number"
    if isinstance(t, tuple):
        return " or ".join(_type_name(x) for x in t)
    return {str: "string", int: "integer", bool: "boolean", list: "array"}.get(t, str(t))


def _attr_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (a string right after a field) of a dataclass."""
    try:
        tree = ast.parse(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    out, body = {}, tree.body[0].body
    for a, b in zip(body, body[1:], strict=False):
        if isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name) \
                and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant) \
                and isinstance(b.value.value, str):
            out[a.target.id] = " ".join(b.value.value.split())
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _options(classes: tuple) -> str:
    opts = sorted({o for c in classes for o in getattr(c, "options", ())})
    return f" ({', '.join(f'`{o}`' for o in opts)})" if opts else ""


def reference() -> str:
    """The scenario file reference page."""
    out = ["# Scenario file reference", "",
           "<!-- generated by tools/gen_docs.py from asyncnet/scenario.py and the schemes' "
           "parameter dataclasses; do not edit by hand -->", "",
           "A scenario is a TOML file. Every key is checked when it loads: an unknown key, "
           "a wrong type or a non-finite number is one error line naming the key and the "
           "file (exit 2), before anything runs. `[scenario]`, `[network]` and `[rule]` are "
           "required. A scenario built in Python (`asyncnet.Scenario`) is written to this "
           "format and read back through the same checks. An array of numbers may be a "
           "matrix (`input`, `target`, `weight`, `bias`): arrays of arrays, every row of "
           "the same shape; `holds` and `betas` are flat arrays of numbers. A net too "
           "large for what a rule or analysis makes of it (the energy faces and the "
           "references flatten it to dense N × N matrices) is refused before the run, "
           "with the memory it would need.", ""]
    for sec, keys in SCHEMA.items():
        if keys is None:
            continue
        out += [f"## `[{sec}]`", "", "| key | type | meaning |", "|---|---|---|"]
        for k, t in keys.items():
            out.append(f"| `{k}` | {_type_name(t)} | {_cell(SECTION_KEYS[sec][k])} |")
        out.append("")
        if sec == "network":
            out += ["### `[[network.nodes]]`", "", "| key | type | meaning |", "|---|---|---|"]
            out += [f"| `{k}` | {_type_name(t)} | {NODE_MEANING[k]} |"
                    for k, t in NODE_KEYS.items()]
            out += ["", "### `[[network.edges]]`", "", "| key | type | meaning |",
                    "|---|---|---|"]
            out += [f"| `{k}` | {_type_name(t)} | {EDGE_MEANING[k]} |"
                    for k, t in EDGE_KEYS.items()]
            out.append("")
        if sec == "output":
            out += ["A relative path here is relative to the directory the command runs in, as "
                    "the defaults `runs/<name>.log` and `runs/<name>` are (as a path given on "
                    "the command line is), not to the scenario file's directory.", ""]
    out += ["## Data kinds and their keys", "",
            "Schemes without data kinds of their own (diffusion, least action, continuous) "
            "use these; a `[data]` key the kind does not read is an error, not ignored. "
            "`input_node`/`output_node` (a population or a list of them: one layer written "
            "as several populations; by default every input, or output, population) apply to "
            "every kind of these schemes. The schemes with data kinds of their own (`ep`, "
            "`coupled`, `stlp`) feed exactly one input and one output population: a list of "
            "several, or a network with several input or output populations and no "
            "`input_node`/`output_node` naming one, is refused when the scenario loads.", "",
            "| kind | keys |", "|---|---|"]
    out += [f"| `{k}` | {', '.join(f'`{x}`' for x in sorted(v))} |"
            for k, v in KIND_KEYS.items()]
    out += ["", "The energy schemes (`ep`, `coupled`) read `kind`, the schedule's `batch`, "
            "`settle`, `leg`, `release`, and by dataset (a key the dataset does not read "
            "is an error):", "", "| dataset | keys |", "|---|---|"]
    out += [f"| `{k}` | {', '.join(f'`{x}`' for x in sorted(v))} |"
            for k, v in DATASET_KEYS.items()]
    out += ["", "`stlp` reads `sine`, `sines`, `square` with `period`, `target_scale`, "
            "`lag` or `input`, and `constant` with `input`, `target`.", ""]
    out += ["## `[rule]`", "",
            "`name` picks the scheme; every other key is one of its parameters, checked "
            "against the scheme's typed schema (the annotated fields of its dataclass). "
            "Types: *float* is any finite number, *int* an integer, *bool* `true`/`false`, "
            "`Literal[...]` one of the strings listed. Ranges are checked by the scheme "
            "when it is built (one error line).", ""]
    for name in registry.BUILTIN:
        cls = registry.get_scheme(name)
        docs = _attr_docs(cls)
        table = getattr(cls, "analyses", {}) or {}
        page = scheme_page(name)
        out += [f"### `name = \"{name}\"`", "",
                (f"See [the scheme's page](../{page}). " if page else "")
                + ("Analyses (`[analysis] kind`, with the keys each reads): "
                   + ", ".join(f"`{k}`" + _options(v) for k, v in table.items())
                   + f"; default `{getattr(cls, 'default_analysis', 'none')}`." if table
                   else "No `[analysis]`: it runs its own training loop (see its page).")
                + (" Needs an acyclic graph." if getattr(cls, "requires_dag", False) else ""),
                "", "| key | type | default | meaning |", "|---|---|---|---|"]
        for row in schema.describe(cls):
            meaning = docs.get(row["name"]) or PARAM_MEANING.get(name, {}).get(row["name"], "")
            tname = row["type"].replace(" | ", " or ")  # a pipe would end the cell
            out.append(f"| `{row['name']}` | `{tname}` | `{row['default']}` | "
                       f"{_cell(meaning)} |")
        out.append("")
    return "\n".join(out)


# -- the gallery -------------------------------------------------------------
def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _exact(s: dict) -> str:
    ex = s["exactness"]
    l0 = ex["layers"][0]
    return (f"every synapse exact from t = {max(r['exact_from_frame'] for r in ex['layers']):g}"
            f" (L = {ex['depth']}); first layer's error one step earlier "
            f"{l0['error_at_2L_minus_1']:.3g}")


def _wave_best(s: dict) -> str:
    row = s["alignment"]["rows"][-1]
    k, v = max(row["wave"].items(), key=lambda kv: kv[1])
    return (f"hold {row['hold']:g}: best cosine with the forward wave's frame {v:.3f} "
            f"(l{k}); with the current frame at most {max(row['current'].values()):.3f}")


def _settle(s: dict) -> str:
    st = s["settling"]
    txt = (f"exact (≤ {st['tolerance']:g}) from t = {st['exact_from']:.4g}, after "
           f"{st['firings_to_exact']:,} firings and {st['messages_to_exact']:,} messages; "
           f"final error {st['final_error']:.2g}")
    # on a DAG the error is a polynomial times an exponential (fit t^b e^(-rt));
    # with cycles a plain exponential
    key, how = (("measured_rate_poly", "fit t^b e^(−rt)") if st.get("acyclic")
                else ("measured_rate", "exponential fit"))
    if st.get("predicted_rate") is not None and st.get(key) is not None:
        txt += f"; decay rate {st[key]:.4g} ({how}) vs {st['predicted_rate']:.4g} predicted"
    return txt


def _grad(at: float) -> Callable[[dict], str]:
    def f(s: dict) -> str:
        rows = {r["nudge"]: r for r in s["gradient"]}
        r = rows[at]
        return (f"gradient error {r['error']:.3g} at nudge {at:g} "
                f"({rows[min(rows)]['error']:.3g} at {min(rows):g}); free state "
                f"{r['free_state_error']:.1g}")
    return f


def _training(s: dict) -> str:
    t = s["training"]
    if "test_accuracy" in t:
        return (f"held-out accuracy {_pct(t['test_accuracy_start'])} → "
                f"{_pct(t['test_accuracy'])} ({t['test_patterns']} digits, "
                f"{t['windows']} windows)")
    return (f"held-out loss {t['test_loss_start']:.4g} → {t['test_loss']:.4g}; "
            f"Q drift {t['Q_drift']:+.3g}")


def _accuracy(s: dict) -> str:
    r = s["result"]
    return f"accuracy {_pct(r['accuracy'])}, loss {r['loss']:.3g}"


def _alignment_sweep(s: dict) -> str:
    rows = s["alignment"]["rows"]
    mid = str(s["alignment"]["depth"] // 2)
    return (f"middle projection (l{mid}), wave view: cosine "
            + ", ".join(f"{r['wave'][mid]:.3f} (k={r['hold']:g})" for r in rows))


def _tracking(s: dict) -> str:
    t = s["tracking"]
    if "relative_error" in t:
        return (f"gradient vs backprop of the current input: relative error "
                f"{t['relative_error']:.3g} at c = {t['c']:g} (error × c = "
                f"{t['error_times_c']:.3g})")
    return json.dumps(t)[:160]


ROUNDING = 1e-13
"""Errors below this are the float64 rounding of the two computations: their digits
depend on the machine's BLAS kernels (1.9e-16 on one box, 2.1e-16 on another)."""


def _rounding(err: float) -> str:
    """An error as the gallery states it: two digits, or ``< 1e-13`` at rounding level."""
    return f"< {ROUNDING:g}" if abs(err) < ROUNDING else f"{err:.2g}"


def _stlp(s: dict) -> str:
    if s.get("diverged"):
        d = s["diverged"]
        return f"diverges, as the control should: agent {d['agent']} at t = {d['t']:g} (exit 3)"
    t = s["stlp"]
    if "costate_error" in t:
        return (f"costates vs {t['reference']}: error {_rounding(t['costate_error'])}; "
                f"synapse gradients {_rounding(t['grad_error'])}")
    return (f"tracking MSE {t['tracking_mse']:.4g} (initial weights frozen: "
            f"{t['frozen_initial_mse']:.4g}); free run after freezing {t['free_run_mse']:.4g}")


def headline(name: str, s: dict) -> str:
    """The one figure the gallery states for a scenario, from its summary."""
    if s.get("diverged") or "stlp" in s:
        return _stlp(s)
    for key, fn in (("exactness", _exact), ("settling", _settle), ("gradient", None),
                    ("training", _training), ("tracking", _tracking)):
        if key in s and fn is not None and not (key == "exactness" and "layers" not in s[key]):
            return fn(s)
    if "gradient" in s:
        return _grad(0.01 if any(r["nudge"] == 0.01 for r in s["gradient"]) else 0.1)(s)
    if "alignment" in s:
        rows = s["alignment"]["rows"]
        return _alignment_sweep(s) if len(rows) > 1 else _wave_best(s)
    if "exactness" in s or "tracking" in s:
        return json.dumps({k: v for k, v in s.items() if k in ("exactness", "tracking")})[:160]
    return _accuracy(s)


def summaries() -> dict[str, dict]:
    """Every scenario's measured summary: the baseline, then the extra file."""
    out: dict[str, dict] = {}
    for path in (BASELINE, EXTRA):
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                out.update({k: v["summary"] for k, v in json.load(f).items()})
    return out


def scenario_files() -> list[str]:
    """``scenarios/*.toml``, sorted."""
    return sorted(glob.glob(os.path.join(ROOT, "scenarios", "*.toml")))


def gallery(measured: dict[str, dict] | None = None) -> str:
    """The examples gallery page."""
    measured = summaries() if measured is None else measured
    out = ["# Examples gallery", "",
           "<!-- generated by tools/gen_docs.py from scenarios/*.toml and the measured "
           "summaries; do not edit by hand -->", "",
           "Every scenario file in `scenarios/`, with what it shows (its `description`) and "
           "the headline figure of its `--json` summary as measured. The test suite runs "
           "them and fails if a scenario stops running or its figure changes "
           "(`tests/test_scenario_baseline.py`, `tests/test_docs.py`; the long ones under "
           "`-m slow`). Run one with `asyncnet run scenarios/NAME.toml`.", ""]
    by_rule: dict[str, list] = {}
    for path in scenario_files():
        with open(path, "rb") as f:
            doc = tomllib.load(f)
        by_rule.setdefault(doc["rule"]["name"], []).append((os.path.basename(path), doc))
    for rule in [r for r in registry.BUILTIN if r in by_rule] + sorted(
            set(by_rule) - set(registry.BUILTIN)):
        page = scheme_page(rule)
        out += [f"## {rule}", ""] + ([f"The scheme: [{rule}]({page}).", ""] if page else []) + [
                "| scenario | what it shows | duration | measured |", "|---|---|---:|---|"]
        for fname, doc in by_rule[rule]:
            sc = doc["scenario"]
            desc = " ".join(sc.get("description", "").split())
            s = measured.get(fname)
            fig = headline(fname, s) if s else (
                "a training run of its own: results on the scheme's page" if rule == "gradep"
                else "*not measured*")
            out.append(f"| `{fname}` | {_cell(desc)} | {sc['duration']:g} | {_cell(fig)} |")
        out.append("")
    return "\n".join(out)


def tutorial() -> str:
    """The tutorial page, from the notebook (markdown cells as they are, code as blocks)."""
    with open(NOTEBOOK, encoding="utf-8") as f:
        nb = json.load(f)
    out = ["<!-- generated by tools/gen_docs.py from docs/tutorial.ipynb; edit the notebook -->",
           ""]
    for i, cell in enumerate(nb["cells"]):
        src = "".join(cell["source"]).rstrip()
        if cell["cell_type"] == "markdown":
            out += [src, ""]
            if i == 0:
                out += ["!!! note", "    Download the notebook: `docs/tutorial.ipynb` in the "
                        "repository; run it with `jupyter lab docs/tutorial.ipynb`.", ""]
        elif cell["cell_type"] == "code":
            out += ["```python", src, "```", ""]
            for k in range(8):  # the figures this cell drew (written by --figures)
                fig = f"figures/tutorial_{i}_{k}.png"
                if os.path.exists(os.path.join(ROOT, "docs", fig)):
                    out += [f"![cell {i}, figure {k + 1}]({fig})", ""]
    return "\n".join(out).rstrip()


def tutorial_figures() -> list[str]:
    """Execute the notebook in a scratch directory; save the figures it draws.

    Returns
    -------
    The paths written (``docs/figures/tutorial_<cell>_<k>.png``).
    """
    import base64
    import shutil
    import tempfile

    import nbformat
    from nbclient import NotebookClient
    for old in glob.glob(os.path.join(ROOT, "docs", "figures", "tutorial_*.png")):
        os.remove(old)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(NOTEBOOK, tmp)
        nb = nbformat.read(os.path.join(tmp, "tutorial.ipynb"), as_version=4)
        os.environ["PYTHONPATH"] = ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": tmp}}).execute()
        for i, cell in enumerate(nb.cells):
            pngs = [o["data"]["image/png"] for o in cell.get("outputs", [])
                    if o.get("output_type") in ("display_data", "execute_result")
                    and "image/png" in o.get("data", {})]
            for k, b64 in enumerate(pngs):
                path = os.path.join(ROOT, "docs", "figures", f"tutorial_{i}_{k}.png")
                with open(path, "wb") as f:
                    f.write(base64.b64decode(b64))
                written.append(path)
    return written


GENERATED = {REFERENCE: reference, GALLERY: gallery,
             os.path.join(ROOT, "docs", "tutorial.md"): tutorial}


def main(argv: list[str] | None = None) -> int:
    """Write (or ``--check``) the generated pages."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a page is stale")
    ap.add_argument("--figures", action="store_true",
                    help="first execute the tutorial notebook and save its figures")
    args = ap.parse_args(argv)
    if args.figures:
        for p in tutorial_figures():
            print("wrote", os.path.relpath(p, ROOT))
    stale = []
    for path, make in GENERATED.items():
        text = make() + "\n"
        old = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if old != text:
            stale.append(os.path.relpath(path, ROOT))
            if not args.check:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
    if args.check and stale:
        print("stale: " + ", ".join(stale) + " (run python tools/gen_docs.py)")
        return 1
    print(("rewrote " if stale else "up to date: ") + ", ".join(
        stale or [os.path.relpath(p, ROOT) for p in GENERATED]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
