"""Global against local gradient clipping in GradEP: loss curves and samples.

The source clips the norm of the whole gradient at 1.0 (no local agent can
know it); the engine offers a per-agent clip at 1.0 instead. Both runs here
use the numpy face (for the local clip it is the engine's arithmetic, see
tests/test_gradep_engine.py), the same seed, init and batches:

    python tools/gradep_clip_compare.py --steps 200 --batch 256 \\
        --runs /work/runs/gradep_clip --out docs/schemes/gradep

Writes ``clip_loss.png`` and ``clip.json`` (losses, and a classifier's view of
64 energy-mode samples at t = 1.0 from each run's final parameters).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _train(mode: str, steps: int, batch: int, runs: str) -> None:
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)
    from asyncnet.schemes.gradep.agents import GradEP
    from asyncnet.schemes.gradep.runner import train
    rule = GradEP(clip_mode=mode, backend="face", steps=steps, checkpoint_every=25)
    train(rule, seed=0, batch=batch, state_dir=os.path.join(runs, mode))


def main() -> None:
    """Train both (in parallel, resumable), then compare."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--runs", default="/work/runs/gradep_clip")
    ap.add_argument("--out", default="docs/schemes/gradep")
    a = ap.parse_args()
    ctx = mp.get_context("fork")
    ps = [ctx.Process(target=_train, args=(m, a.steps, a.batch, a.runs))
          for m in ("global", "local")]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)
    from gradep_report import _label, classifier, nn_dist

    from asyncnet.schemes.gradep.sampling import load_model, sample, save_samples
    from asyncnet.schemes.gradep.train import load_checkpoint
    clf, acc, Xtr, Xte, _ = classifier()
    d_real = nn_dist(Xte, Xtr)
    res = {"steps": a.steps, "batch": a.batch, "classifier_accuracy": acc, "runs": {}}
    fig = Figure(figsize=(5, 3.2), dpi=120)
    ax = fig.add_subplot()
    for mode in ("global", "local"):
        d = os.path.join(a.runs, mode)
        L = np.asarray(load_checkpoint(d)["losses"])
        xs = sample(load_model(d), n=64, steps=101, mode="energy", seed=0)
        save_samples(xs, os.path.join(a.out, f"clip_{mode}_samples"),
                     f"{mode} clip, {a.steps} steps, batch {a.batch}")
        res["runs"][mode] = {"loss": {str(k): float(L[k]) for k in (0, 50, 100, 150)
                                      if k < len(L)} | {"last": float(L[-1])},
                             "mean_last_50": float(L[-50:].mean()),
                             "samples_energy_t1.0": _label(clf, xs, Xtr, d_real)}
        ax.plot(L, lw=0.8, label=f"{mode} clip (mean of last 50: {L[-50:].mean():.3f})")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("flow loss")
    ax.set_title(f"clip 1.0: global norm vs per agent (batch {a.batch})", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    FigureCanvasAgg(fig).print_png(os.path.join(a.out, "clip_loss.png"))
    with open(os.path.join(a.out, "clip.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
