"""How far dissipation θ biases STLP's costates away from the exact delta.

Frozen weights and a constant input and target, on the networks of
``scenarios/stlp_fixedpoint_dag.toml`` and ``stlp_fixedpoint_cyclic.toml``:
the synchronous recursion runs until the costates stop moving; its costates
are compared (max-abs relative error, max|p − p*| / max|p*|) with the exact delta — backprop on
the DAG, Almeida–Pineda on the cyclic graph — from an independent solve
(``stlp_reference.fixed_point``, θ = 0), for θ against Δt. The last column
checks the prediction ``p = γ((1 + θ/Δt) I − Jᵀ)⁻¹ ∇ℓ`` (θ acts as a rate θ/Δt).

    python tools/stlp_theta_bias.py
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asyncnet.scenario import load  # noqa: E402
from asyncnet.schemes.stlp.physics import Dense  # noqa: E402
from asyncnet.schemes.stlp.reference import fixed_point  # noqa: E402
from asyncnet.schemes.stlp.tasks import sequences  # noqa: E402


def settle(name: str, theta: float, dt: float) -> tuple[float, float]:
    """Relative errors vs the exact delta and vs the θ-prediction at the settled state."""
    sc = load(ROOT / "scenarios" / name)
    net = sc.build_network()
    stream = sc.build_stream(net)
    rule = replace(sc.build_rule(), theta=theta, dt=dt)
    d = Dense(net)
    steps = int(60 / min(dt, theta + dt * 0.05) + 200)
    U, Y = sequences(stream, steps)
    st, _ = d.run(rule, U, Y, d.initial(), 0, steps, record=False)
    u, y = stream.frame_value(1.0)
    args = (d.W, d.b, d.mask, d.act_names, d.inputs, d.outputs, u, y, rule.gamma, rule.q)
    ex = fixed_point(*args)["p"]
    pr = fixed_point(*args, theta_rate=theta / dt)["p"]
    h = d.learn

    def rel(a, b):
        return float(np.max(np.abs(a[h] - b[h])) / np.max(np.abs(b[h])))

    return rel(st["p"], ex), rel(st["p"], pr)


def main() -> None:
    """Print the θ-bias table."""
    print("| graph | Δt | θ | θ/Δt | rel. error vs exact delta | vs θ-prediction |")
    print("|---|---:|---:|---:|---:|---:|")
    with threadpool_limits(1):
        for name in ("stlp_fixedpoint_dag.toml", "stlp_fixedpoint_cyclic.toml"):
            for dt in (0.05, 0.1, 0.5):
                for theta in (0.0, 0.001, 0.01, 0.1):
                    e, p = settle(name, theta, dt)
                    g = "DAG" if "dag" in name else "cyclic"
                    print(f"| {g} | {dt:g} | {theta:g} | {theta / dt:g} | {e:.3g} | {p:.1e} |")


if __name__ == "__main__":
    main()
