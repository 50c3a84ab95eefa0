"""EP on the 8×8 digits, numpy face, beside a backprop network of the same shape.

- EP, numpy face: the network, initial weights and batch order of
  ``scenarios/ep_digits.toml``, trained by discrete symmetric EP on relaxed
  states (physics/hopfield.py: ``relax`` with the scenario's ε, tol and step
  caps: settle ≤ 150 steps, each nudged leg ≤ 60 steps) — what the engine
  does with messages, without them.
- Backprop: scikit-learn's ``MLPClassifier`` with one hidden layer of 64
  (the same 64-64-10 shape), logistic and relu units, Adam, on the same
  fixed split (``nudge.load_dataset("digits")``: 1348 train, 449 test).

    python tools/ep_digits_compare.py [--epochs 10]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

from asyncnet.scenario import load
from asyncnet.schemes.ep import hopfield as H
from asyncnet.schemes.ep import hopfield_of
from asyncnet.simulation import build_engine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ep_numpy(epochs: int) -> tuple[list[float], float]:
    """Train the scenario's network with the numpy face; test accuracy per epoch."""
    sc = load(os.path.join(ROOT, "scenarios", "ep_digits.toml"))
    _, net, stream = build_engine(sc)
    face, sl = hopfield_of(net)
    r = sc.rule_params
    beta, lr, eps, tol = r["beta"], r["eta"], r["eps"], r["tol"]
    settle, leg = int(stream.settle), int(stream.leg)
    B = stream.batch
    per_epoch = len(stream.data.inputs) // B
    S = np.zeros((B, face.n))
    Xt = np.zeros((len(stream.data.test_inputs), face.n))
    Xt[:, sl["l0"]] = stream.data.test_inputs
    accs = []
    t0 = time.perf_counter()
    for w in range(epochs * per_epoch):
        rows = stream.rows(w)
        y = stream.data.targets[rows]
        S[:, sl["l0"]] = stream.data.inputs[rows]
        S = H.relax(face, S, eps=eps, tol=tol, steps=settle)
        Sm = H.relax(face, S, eps=eps, beta=-beta, y=y, tol=tol, steps=leg)
        Sp = H.relax(face, Sm, eps=eps, beta=beta, y=y, tol=tol, steps=leg)
        gWm, gbm = H.param_grad(face, Sm)
        gWp, gbp = H.param_grad(face, Sp)
        face.W = face.W - lr * (gWp - gWm) / (2 * beta)
        face.b = face.b - lr * (gbp - gbm) / (2 * beta)
        S = Sp
        if (w + 1) % per_epoch == 0:
            St = H.relax(face, Xt, eps=eps, tol=1e-12, steps=3000)
            accs.append(float(np.mean(St[:, face.out].argmax(1)
                                      == stream.data.test_targets.argmax(1))))
    return accs, time.perf_counter() - t0


def backprop(activation: str, seed: int) -> tuple[float, float]:
    """Test accuracy and wall time of a 64-64-10 MLP trained by backprop."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    sc = load(os.path.join(ROOT, "scenarios", "ep_digits.toml"))
    _, _, stream = build_engine(sc)
    d = stream.data
    clf = MLPClassifier(hidden_layer_sizes=(64,), activation=activation, max_iter=500,
                        random_state=seed)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(d.inputs, d.targets.argmax(1))
    return float(clf.score(d.test_inputs, d.test_targets.argmax(1))), \
        time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args(argv)
    accs, wall = ep_numpy(args.epochs)
    print("EP, numpy face (scenario's network, init and batches), test accuracy per epoch:")
    print("  " + " ".join(f"{100 * a:.1f}%" for a in accs) + f"   ({wall:.1f} s)")
    print("backprop, 64-64-10 MLP (scikit-learn, Adam), test accuracy over 5 seeds:")
    for act in ("logistic", "relu"):
        res = [backprop(act, s) for s in range(5)]
        a = np.array([r[0] for r in res])
        print(f"  {act:8s} mean {100 * a.mean():.1f}%  min {100 * a.min():.1f}%  "
              f"max {100 * a.max():.1f}%  ({np.mean([r[1] for r in res]):.1f} s each)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
