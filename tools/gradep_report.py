"""Figures and tables of a FlowEqProp (gradep) run, from its state directory.

    python tools/gradep_report.py /work/runs/gradep_full --out docs/schemes/gradep

Writes under ``--out``: ``loss.png`` (the logged flow loss, per-pixel mean of
(v − u)² at the free state of each step's batch), ``samples_<mode>_t<T>.png``
and ``.npz`` (64 samples, t = 1.0 and 1.2, energy and spring modes),
``classes.png``, ``nn.png``, ``results.json`` and ``results.md``.

A classifier (SVC, RBF) is trained on 75% of the real digits and must reach
>= 97% on the other 25%; it labels the samples (class histogram, mean
confidence). Nearest-neighbour distances: each sample to the 1797 digits the
model was trained on, against each held-out real digit to the classifier's
training part (a fresh real digit's typical distance). A copy would sit at 0.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

from asyncnet.schemes.gradep.data import digits
from asyncnet.schemes.gradep.sampling import load_model, sample, save_samples
from asyncnet.schemes.gradep.train import load_checkpoint

MARKS = (0, 50, 100, 300, 1000, 2001)


def _save(fig: Figure, path: str) -> None:
    FigureCanvasAgg(fig).print_png(path)


def classifier() -> tuple:
    """(SVC, held-out accuracy, train part, held-out part, held-out confidences)."""
    from sklearn.datasets import load_digits
    X, y = digits(), load_digits().target
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    clf = CalibratedClassifierCV(SVC(C=10, gamma="scale"), ensemble=False).fit(Xtr, ytr)
    acc = float(np.mean(clf.predict(Xte) == yte))
    conf = clf.predict_proba(Xte).max(1)
    return clf, acc, Xtr, Xte, conf


def nn_dist(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Euclidean distance from each row of A to its nearest row of B."""
    d2 = (A * A).sum(1)[:, None] + (B * B).sum(1)[None] - 2 * A @ B.T
    return np.sqrt(np.maximum(d2.min(1), 0))


def loss_at(losses: np.ndarray, step: int) -> float | None:
    """The loss logged at training step ``step`` (2001: the last step's, index 2000)."""
    i = 2000 if step == 2001 else step
    return float(losses[i]) if i < len(losses) else None


def main() -> None:
    """Build every figure and table of the report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("state", help="the run's state directory")
    ap.add_argument("--out", default="docs/schemes/gradep")
    ap.add_argument("-n", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0, help="seed of the sampling noise")
    ap.add_argument("--at-steps", type=int, nargs="*", default=[],
                    help="also label energy-mode t=1.0 samples of these checkpoints")
    a = ap.parse_args()
    threadpool_limits(1)
    os.makedirs(a.out, exist_ok=True)
    ck = load_checkpoint(a.state)
    losses = np.asarray(ck["losses"])
    res: dict = {"state": a.state, "steps_done": int(ck["step"]),
                 "loss": {str(k): loss_at(losses, k) for k in MARKS}}
    res["loss"][f"last (index {len(losses) - 1})"] = float(losses[-1])
    fig = Figure(figsize=(5, 3.2), dpi=120)
    ax = fig.add_subplot()
    ax.plot(np.arange(len(losses)), losses, lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("flow loss (per-pixel mean)")
    ax.set_title(f"FlowEqProp through the engine: {losses[0]:.2f} → {losses[-1]:.3f}",
                 fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, os.path.join(a.out, "loss.png"))

    clf, acc, Xtr, Xte, conf_real = classifier()
    res["classifier"] = {"kind": "SVC rbf C=10, calibrated (5-fold)", "held_out_accuracy": acc,
                         "held_out": len(Xte), "mean_confidence_real": float(conf_real.mean())}
    d_real = nn_dist(Xte, Xtr)
    res["nn_real_heldout_to_train_part"] = _stats(d_real)
    model = load_model(a.state)
    res["samples"] = {}
    hists: dict = {}
    dists: dict = {}
    for mode in ("energy", "spring"):
        for steps in (101, 121):
            key = f"{mode}_t{(steps - 1) / 100:.1f}"
            xs = sample(model, n=a.n, steps=steps, mode=mode, seed=a.seed)
            save_samples(xs, os.path.join(a.out, f"samples_{key}"),
                         f"{mode} mode, t = {(steps - 1) / 100:.1f}, step {res['steps_done']}")
            res["samples"][key] = _label(clf, xs, Xtr, d_real)
            hists[key] = res["samples"][key]["histogram"]
            dists[key] = nn_dist(xs, Xtr)
    for step in a.at_steps:
        path = os.path.join(a.state, "steps", f"step_{step:05d}.npz")
        if os.path.exists(path):
            xs = sample(load_model(path), n=a.n, steps=101, mode="energy", seed=a.seed)
            res["samples"][f"energy_t1.0_step{step}"] = _label(clf, xs, Xtr, d_real)
    _figures(a.out, hists, dists, d_real)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write(_markdown(res))
    print(_markdown(res))


def _stats(d: np.ndarray) -> dict:
    return {"min": float(d.min()), "p5": float(np.percentile(d, 5)),
            "median": float(np.median(d)), "mean": float(d.mean()), "max": float(d.max())}


def _label(clf, xs, Xtr, d_real) -> dict:
    p = clf.predict_proba(xs)
    lab = p.argmax(1)
    hist = np.bincount(lab, minlength=10).tolist()
    d_all = nn_dist(xs, digits())
    d_tr = nn_dist(xs, Xtr)
    return {"histogram": hist, "classes_present": int(np.count_nonzero(hist)),
            "mean_confidence": float(p.max(1).mean()),
            "nn_to_all_1797": _stats(d_all), "nn_to_train_part": _stats(d_tr),
            "share_closer_than_real_p5": float(np.mean(d_tr < np.percentile(d_real, 5)))}


def _figures(out: str, hists: dict, dists: dict, d_real: np.ndarray) -> None:
    fig = Figure(figsize=(7, 2.6), dpi=120)
    ax = fig.add_subplot()
    w = 0.8 / len(hists)
    for i, (k, h) in enumerate(hists.items()):
        ax.bar(np.arange(10) + (i - len(hists) / 2 + 0.5) * w, h, w, label=k)
    ax.set_xticks(range(10))
    ax.set_xlabel("class (SVC trained on real digits)")
    ax.set_ylabel("samples")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    _save(fig, os.path.join(out, "classes.png"))
    fig = Figure(figsize=(5, 3), dpi=120)
    ax = fig.add_subplot()
    bins = np.linspace(0, max(8.0, float(d_real.max())), 40)
    ax.hist(d_real, bins, density=True, alpha=0.4, color="k",
            label="real held-out digits → train part")
    for k, d in dists.items():
        ax.hist(d, bins, density=True, histtype="step", lw=1.2, label=f"samples {k}")
    ax.set_ylabel("density")
    ax.set_xlabel("Euclidean distance to nearest training digit")
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, os.path.join(out, "nn.png"))


def _markdown(res: dict) -> str:
    L = res["loss"]
    lines = [f"Run: `{res['state']}`, {res['steps_done']} steps.", "",
             "| step | " + " | ".join(L) + " |", "|---" * (len(L) + 1) + "|",
             "| flow loss | " + " | ".join("—" if v is None else f"{v:.4f}"
                                          for v in L.values()) + " |", ""]
    c = res["classifier"]
    lines += [f"Classifier: {c['kind']}, held-out accuracy {100 * c['held_out_accuracy']:.1f}%"
              f" ({c['held_out']} digits), mean confidence on real held-out digits "
              f"{c['mean_confidence_real']:.3f}.", "",
              "| samples | classes present | histogram 0–9 | mean confidence | NN dist. median"
              " (min) | share closer than real 5th pct |", "|---|---|---|---|---|---|"]
    for k, s in res["samples"].items():
        d = s["nn_to_train_part"]
        lines.append(f"| {k} | {s['classes_present']}/10 | {' '.join(map(str, s['histogram']))}"
                     f" | {s['mean_confidence']:.3f} | {d['median']:.2f} ({d['min']:.2f}) | "
                     f"{100 * s['share_closer_than_real_p5']:.0f}% |")
    r = res["nn_real_heldout_to_train_part"]
    lines += ["", f"Real held-out digits to the classifier's training part: NN distance median "
              f"{r['median']:.2f}, 5th percentile {r['p5']:.2f}, min {r['min']:.2f}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
