"""A corpus of malformed scenario files, by class, run against this checkout.

Each class mutates the real ``scenarios/*.toml`` (or writes a file from
scratch) and runs ``asyncnet run FILE --no-log -q`` in this process with an
alarm as the hang detector. Outcomes: ``clean`` (one ``asyncnet: error:``
line, exit 2), ``diverged`` (exit 3), ``success`` (exit 0: right for the
classes marked as possibly valid), ``traceback``, ``hang``. Prints one table.

    python tools/scenario_corpus.py [--per-class N] [--seed S]
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import io
import os
import random
import signal
import sys
import tempfile
import tomllib
import traceback
from collections import Counter, defaultdict

import tomli_w

sys.path.insert(0, os.getcwd())
from asyncnet.cli import main  # noqa: E402

NUMERIC = {"scenario": ["duration", "seed"],
           "data": ["hold", "period", "lag", "target_scale", "settle", "leg", "batch", "patterns"],
           "network": ["delay", "scale", "speed"],
           "analysis": ["warmup", "tolerance"]}
LISTS = {"analysis": ["holds", "betas"], "data": ["input", "target"]}


def _mutations(doc: dict, rng: random.Random) -> dict[str, list[dict]]:
    """{class: [mutated docs]} for one real scenario."""
    out: dict[str, list[dict]] = defaultdict(list)

    def with_(sec: str, key: str, val) -> dict:
        d = tomllib.loads(tomli_w.dumps(doc))
        d.setdefault(sec, {})[key] = val
        d["scenario"]["description"] = f"[{sec}] {key} = {val!r}"  # what was changed
        return d

    for sec, keys in NUMERIC.items():
        for k in keys:
            if k in doc.get(sec, {}) or sec == "scenario":
                for v in (float("inf"), float("nan"), -1.0, 0.0, "3", True, 2 ** 80, 1e300):
                    out["numbers"].append(with_(sec, k, v))
    for k, v in doc.get("rule", {}).items():
        if k == "name":
            continue
        for bad in (float("nan"), float("inf"), "x", [1], True if not isinstance(v, bool)
                    else "yes", -1e308):
            out["rule params"].append(with_("rule", k, bad))
    for sec, keys in LISTS.items():
        for k in keys:
            for bad in (["a", 1], [float("nan")], [[1, 2], [3]], [], "1,2"):
                out["lists"].append(with_(sec, k, bad))
    for n in (10 ** 7, 10 ** 5, 0, -3):
        d = tomllib.loads(tomli_w.dumps(doc))
        if "layers" in d["network"]:
            d["network"]["layers"] = [2, n, 1]
        else:
            d["network"]["nodes"][0]["size"] = n
        out["sizes"].append(d)
    for dur, hold in ((1e300, None), (1e9, 1e-9), (1e12, None), (10, 1e-7)):
        d = with_("scenario", "duration", dur)
        if hold is not None:
            d.setdefault("data", {})["hold"] = hold
        out["schedules"].append(d)
    for sec, key, val in (("data", "batch", 8), ("data", "settle", 5), ("analysis", "kind",
                          "gradient"), ("analysis", "tolerance", 1e-3),
                          ("data", "input_node", "nope"), ("data", "output_node", ["x"]),
                          ("analysis", "kind", "exactness"), ("analysis", "kind", "settling"),
                          ("data", "kind", "digits"), ("cluster", "workers", 0)):
        out["does not apply"].append(with_(sec, key, val))
    return out


def _scratch() -> dict[str, list[str]]:
    base = '[scenario]\nduration = 10\n[rule]\nname = "diffusion"\n'
    return {"structure": [
        base + "[network]\nnodes = []\nedges = []\n",
        base + "[network]\nlayers = []\n",
        base + "[network]\nlayers = [2]\n",
        base + "[network]\nlayers = " + "[" * 500 + "1" + "]" * 500 + "\n",
        base + '[network]\nnodes = [{name = "a"}, {name = "a"}]\nedges = []\n',
        base + '[network]\nnodes = [{name = "a"}, {name = "b"}]\n'
               'edges = [{pre = "a", post = "b"}, {pre = "b", post = "a"}]\n',
        base + '[network]\nnodes = [{name = "a->b"}]\nedges = []\n',
        base + '[network]\nnodes = [{name = "a"}, {name = "b"}]\n'
               'edges = [{pre = "a", post = "b"}, {pre = "a", post = "b", delay = 3}]\n',
        base + '[network]\nlayers = [2, 1]\n[data]\nkind = "constant"\ninput = [1]\n',
        "[scenario]\nduration = 10\n[network]\nlayers = [2, 1]\n[rule]\nname = 3\n",
        "[scenario]\nduration = 10\n[network]\nlayers = [2, 1]\n[rule]\nname = \"nope\"\n",
    ]}


def run_one(path: str, timeout: int = 20) -> str:
    """Run the CLI on one file; the outcome class."""
    def alarm(*_):
        raise TimeoutError

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(timeout)
    err, out = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            rc = main(["run", path, "--no-log", "-q"])
    except TimeoutError:
        return "hang"
    except SystemExit as e:
        rc = e.code
    except BaseException:  # noqa: BLE001 - that is what we count
        return "traceback: " + traceback.format_exc().strip().splitlines()[-1][:90]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    lines = [ln for ln in err.getvalue().splitlines() if "warning" not in ln]
    if rc == 2 and len(lines) == 1 and lines[0].startswith("asyncnet: error:"):
        return "clean"
    if rc == 3:
        return "diverged"
    if rc == 0:
        return "success"
    return f"other rc={rc}: {' | '.join(lines)[:90]}"


def main_(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", action="store_true", help="print each non-clean case")
    a = ap.parse_args(argv)
    rng = random.Random(a.seed)
    cases: dict[str, list[str]] = defaultdict(list)
    for f in sorted(glob.glob("scenarios/*.toml")):
        with open(f, "rb") as fh:
            doc = tomllib.load(fh)
        for cls, docs in _mutations(doc, rng).items():
            for d in docs:
                try:
                    cases[cls].append(tomli_w.dumps(d))
                except (TypeError, ValueError):
                    pass
    for cls, texts in _scratch().items():
        cases[cls] += texts
    table: dict[str, Counter] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cls, texts in sorted(cases.items()):
            sample = texts if len(texts) <= a.per_class else rng.sample(texts, a.per_class)
            c: Counter = Counter()
            for i, text in enumerate(sample):
                p = os.path.join(tmp, f"{cls.replace(' ', '_')}_{i}.toml")
                with open(p, "w", encoding="utf-8") as fh:
                    fh.write(text)
                res = run_one(p)
                key = res.split(":")[0] if res.startswith(("traceback", "other")) else res
                c[key] += 1
                if a.show and res != "clean":
                    what = tomllib.loads(text).get("scenario", {}).get("description", "")
                    name = tomllib.loads(text).get("scenario", {}).get("name", "")
                    print(f"{cls}: {res}: {name}: {what[:100]}", file=sys.stderr)
            table[cls] = c
    cols = ["clean", "success", "diverged", "traceback", "hang", "other rc=0"]
    print(f"{'class':16}" + "".join(f"{c:>12}" for c in cols) + f"{'total':>8}")
    for cls, c in table.items():
        print(f"{cls:16}" + "".join(f"{c.get(k, 0):12d}" for k in cols) + f"{sum(c.values()):8d}")
    return 0


if __name__ == "__main__":
    sys.exit(main_())
