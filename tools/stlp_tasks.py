"""STLP against BPTT, truncated BPTT and RTRL on the tracking tasks (SCHEMES.md §3).

For each of ``stlp_sine``, ``stlp_sines``, ``stlp_square``: the scenario's
network, stream, seed and initial weights; the same per-step loss
``q/2 ‖x_out − y‖² + r_w/2 ‖W_rec‖²`` (decay on the recurrent weights only,
as SCHEMES.md §3: not on input weights or biases). Learners:

- STLP: the scheme's synchronous recursion (``Dense``; a test shows the
  engine computes exactly it) with the scenario's parameters;
- RTRL (update every step), TBPTT k = 10 and k = 50 (an update every k steps
  through the last k), all heavy-ball with μ = 1 − θ and the best of a small
  learning-rate grid (chosen by tracking MSE over the last 20%);
- BPTT (full): epochs over the whole stream, one update per epoch; its
  "tracking" is the last epoch's pass with fixed weights;
- frozen: the initial weights.

Two settings: the scenario's (the authors': q = 100, r_w = 1, β = 0.1,
θ = 0.1) and ``TUNED`` (θ = 0.05, β = 0.3, r_w = 0.1); the references use
the same ``r_w`` and momentum as STLP in each. Reported per learner:
tracking MSE over the stream and over its last 20%, and the free-run MSE:
weights frozen at the end, the network runs on from its final state for 2
periods against the stream's continuation (driven by the same input).

    python tools/stlp_tasks.py [--quick] [--fig docs/figures/stlp_tasks.png]

BLAS threads are set to 1 with threadpoolctl (small matrices; 2 shared cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asyncnet.scenario import load  # noqa: E402
from asyncnet.schemes.stlp.physics import Dense  # noqa: E402
from asyncnet.schemes.stlp.reference import Leaky, free_run, train  # noqa: E402
from asyncnet.schemes.stlp.tasks import sequences  # noqa: E402

TASKS = ("stlp_sine", "stlp_sines", "stlp_square")


def setup(name: str, steps: int | None = None):
    """Network, rule, stream arrays for a task (``steps``: shorten the stream)."""
    sc = load(ROOT / "scenarios" / f"{name}.toml")
    net = sc.build_network()
    stream = sc.build_stream(net)
    rule = sc.build_rule()
    T = int(sc.duration) - 1 if steps is None else steps
    H = int(2 * stream.period)
    U, Y = sequences(stream, T + H)
    d = Dense(net)
    ref = Leaky(d.mask, d.act_names, d.inputs, d.outputs, rule.dt, rule.q)
    return sc, d, ref, rule, U, Y, T, H


def summarise(se: np.ndarray, se_free: np.ndarray, n_out: int) -> dict:
    """Tracking (whole, last 20%) and free-run MSE per output unit."""
    T = len(se)
    return {"tracking": float(np.nanmean(se) / n_out),
            "tracking_last20": float(np.nanmean(se[int(0.8 * T):]) / n_out),
            "free_run": float(np.nanmean(se_free) / n_out) if np.all(np.isfinite(se_free))
            else float("inf")}


TUNED = {"theta": 0.05, "beta": 0.3, "r_w": 0.1}
"""A second setting (found by a small search on stlp_sine): weaker weight decay."""


def run_task(name: str, quick: bool = False, tuned: bool = False) -> dict:
    """Every learner on one task; returns ``{learner: figures (+ "se" trace)}``."""
    sc, d, ref, rule, U, Y, T, H = setup(name, 3000 if quick else None)
    if tuned:
        rule = replace(rule, **TUNED)
    n_out = len(d.outputs)
    x0 = np.zeros(d.N)
    UT, YT = U[:T + 1], Y[:T + 1]
    out = {}
    t0 = time.perf_counter()
    st, se = d.run(rule, UT, YT, d.initial(x0), 0, T)
    _, se_f = d.run(replace(rule, beta=0.0, learn_bias=False), U, Y, st, T, H)
    out["STLP"] = {**summarise(se, se_f, n_out), "se": se, "seconds": time.perf_counter() - t0}
    mu = 1.0 - rule.theta
    grid = (1e-6, 1e-5, 1e-4)
    for label, method, k in (("RTRL", "rtrl", 0), ("TBPTT k=10", "tbptt", 10),
                             ("TBPTT k=50", "tbptt", 50), ("BPTT (epochs)", "bptt", 0)):
        best = None
        for lr in (grid if method != "bptt" else (1e-7, 1e-6, 1e-5)):
            t0 = time.perf_counter()
            with np.errstate(all="ignore"):
                r = train(method, ref, d.W, d.b, UT, YT, x0, lr, mu, k=k or 10,
                          epochs=5 if quick else 20, r_w=rule.r_w)
                se_f = free_run(ref, r["W"], r["b"], U[T:], Y[T:], r["x"])
            res = {**summarise(r["se"], se_f, n_out), "se": r["se"], "lr": lr,
                   "seconds": time.perf_counter() - t0}
            if not np.isfinite(res["tracking_last20"]):
                continue
            if best is None or res["tracking_last20"] < best["tracking_last20"]:
                best = res
        out[label] = best
    se0 = free_run(ref, d.W, d.b, U, Y, x0)
    out["frozen"] = {"tracking": float(np.nanmean(se0[:T]) / n_out),
                     "tracking_last20": float(np.nanmean(se0[int(0.8 * T):T]) / n_out),
                     "free_run": float(np.nanmean(se0[T:]) / n_out), "se": se0[:T]}
    out["_meta"] = {"steps": T, "free_run_steps": H, "period": float(U.shape[0] and H / 2)}
    return out


def table(results: dict) -> str:
    """A markdown table of every task and learner."""
    rows = ["| task | learner | tracking MSE | last 20% | free run after freezing | lr |",
            "|---|---|---:|---:|---:|---:|"]
    for task, res in results.items():
        for learner, r in res.items():
            if learner.startswith("_") or r is None:
                continue
            lr = f"{r['lr']:g}" if "lr" in r else ""
            rows.append(f"| {task} | {learner} | {r['tracking']:.4f} | "
                        f"{r['tracking_last20']:.4f} | {r['free_run']:.4f} | {lr} |")
    return "\n".join(rows)


def figure(results: dict, path: str) -> None:
    """Running mean (one period) of the squared error against time, per task."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n = len(results)
    cols = min(n, 3)
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(5 * cols, 3.4 * ((n + 2) // 3)),
                             squeeze=False)
    for ax, (task, res) in zip(axes.ravel(), results.items(), strict=False):
        win = int(res["_meta"]["period"])
        for learner, r in res.items():
            if learner.startswith("_") or r is None:
                continue
            se = np.nan_to_num(r["se"], nan=0.0)
            run = np.convolve(se, np.ones(win) / win, mode="valid")
            ax.semilogy(np.arange(len(run)) + win, run, label=learner, lw=1)
        ax.set_title(task)
        ax.set_xlabel("step")
        ax.set_ylabel("squared error (running mean, 1 period)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    """Run the comparison; print the table (and JSON with --json)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3,000 steps, 5 BPTT epochs")
    ap.add_argument("--fig", default=None, help="write the loss-vs-time figure here")
    ap.add_argument("--json", default=None, help="write the figures (no traces) here")
    args = ap.parse_args()
    with threadpool_limits(1):
        results = {t: run_task(t, args.quick) for t in TASKS}
        results.update({f"{t} (tuned)": run_task(t, args.quick, True) for t in TASKS})
    print(table(results))
    if args.fig:
        figure(results, args.fig)
    if args.json:
        slim = {t: {k: {kk: vv for kk, vv in v.items() if kk != "se"} if v else None
                    for k, v in r.items()} for t, r in results.items()}
        Path(args.json).write_text(json.dumps(slim, indent=1))


if __name__ == "__main__":
    main()
