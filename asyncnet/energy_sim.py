"""Analyses of the energy-based rules (``ep``, ``coupled``) in a scenario run.

The run itself is the ordinary engine run (messages, log, traffic, and the
cluster); ``simulation.attach_analyses`` hands ep/coupled scenarios here.
Probes read only ``model.state()``:

- ``[analysis] kind = "gradient"``: the engine is re-run in-process (no log,
  like the alignment sweep) to the end of the first window, once with the
  scenario's nudge and once per entry of ``betas = [...]``; every synapse's
  (and bias's) estimate is compared with the gradient of the loss at the
  free equilibrium by implicit differentiation (numpy face), and the free
  state with the numpy reference (Newton-polished fixed point for ep, a
  direct linear solve for coupled).
- ``kind = "training"``: per epoch, the network's own free-state outputs on
  the batches it was shown (loss, accuracy for one-hot targets) and the
  conserved quantity ``Q = Σθ²``; at the end, held-out loss/accuracy of the
  final parameters through the numpy face.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from .scenario import Scenario, ScenarioError
from .schemes.coupled import resistor as R
from .schemes.ep import hopfield as H


def _params(eng, net) -> tuple[dict, dict]:
    """Current couplings/conductances per synapse and biases per population."""
    W = {pr.name: eng.agents[pr.name].model.state()["weight"] for pr in net.projections.values()}
    b = {nm: eng.agents[nm].model.state().get("bias") for nm in net.populations}
    return W, b


def _Q(eng, net, rule_name: str) -> float:
    W, b = _params(eng, net)
    q = sum(float(np.sum(w * w)) for w in W.values())
    if rule_name == "ep":
        q += sum(float(np.sum(v * v)) for nm, v in b.items()
                 if v is not None and net.populations[nm].role != "input")
    return q


def _numpy_face(net, W: dict, b: dict, rule_name: str):
    """The network with the given parameters as a numpy-face object."""
    if rule_name == "ep":
        from .schemes.ep import hopfield_of
        for pr in net.projections.values():
            pr.weight = np.array(W[pr.name])
        for nm, p in net.populations.items():
            if b.get(nm) is not None:
                p.bias = np.array(b[nm])
        return hopfield_of(net)
    from .schemes.coupled import resistor_of
    return resistor_of(net, W)


def _full_input(face, sl, net, X: np.ndarray, inp: str) -> np.ndarray:
    """Clamped values of a batch in the numpy face's layout (other inputs at 0)."""
    n_in = sum(net.populations[nm].size for nm in net.inputs())
    if isinstance(face, H.HopfieldNet):
        S = np.zeros((len(X), face.n))
        S[:, sl[inp]] = X
        return S
    U = np.zeros((len(X), n_in))
    pos = 0
    for nm in sorted(net.inputs()):
        if nm == inp:
            U[:, pos:pos + X.shape[1]] = X
        pos += net.populations[nm].size
    return U


def _relax_ep(face, S: np.ndarray, eps: float) -> np.ndarray:
    return H.relax(face, S, eps=eps, tol=1e-12, steps=3000)


def free_outputs(face, sl, net, X, inp: str, eps: float = 0.5) -> np.ndarray:
    """Free-state outputs of the numpy face for a batch of inputs."""
    U = _full_input(face, sl, net, X, inp)
    if isinstance(face, H.HopfieldNet):
        return _relax_ep(face, U, eps)[:, face.out]
    return R.solve(face, U)[:, face.outputs]


def _flat_estimate(eng, net, face, sl, rule_name) -> np.ndarray:
    if rule_name == "ep":
        Wg = np.zeros((face.n, face.n))
        gb = np.zeros(face.n)
        for (u, v), pr in net.projections.items():
            G = eng.agents[pr.name].model.state()["grad"]
            Wg[sl[v], sl[u]] = G
            Wg[sl[u], sl[v]] = G.T
        for nm, s in sl.items():
            gb[s] = eng.agents[nm].model.state().get("grad_bias", 0.0)
        return face.flat(Wg, gb)
    est = []
    for pr in sorted(net.projections.values(), key=lambda p: (p.pre, p.post)):
        st = eng.agents[pr.name].model.state()
        est += [st["grad"][i, j] for i, j in zip(*np.nonzero(st["weight"]), strict=True)]
    return np.array(est)


def _reference(face, sl, net, X, Y, inp, rule_name, rule):
    """(implicit gradient, free state) of the numpy face for the batch (X, Y)."""
    U = _full_input(face, sl, net, X, inp)
    if rule_name == "ep":
        gs, states = [], []
        for u, y in zip(U, Y, strict=True):
            s0 = H.relax(face, u, eps=rule.eps, tol=1e-14)
            if face.act != "hardsigmoid":  # Newton needs a smooth energy
                s0 = H.newton_polish(face, s0)
            gs.append(face.flat(*H.implicit_gradient(face, s0, y)))
            states.append(s0)
        return np.mean(gs, axis=0), np.array(states)
    g = R.implicit_gradient(face, U, Y, M=R.effective_conductance(face))
    return g, R.solve(face, U)


def _engine_state(eng, face, sl, B: int, rule_name: str) -> np.ndarray:
    n = face.n
    S = np.zeros((B, n))
    for nm, s in sl.items():
        v = eng.agents[nm].model.state()["state"]
        S[:, s] = np.broadcast_to(np.atleast_2d(v), (B, s.stop - s.start))
    return S


def _gradient_check(sc: Scenario, rule_params: dict | None = None) -> dict:
    """One engine run (no log) to the end of window 0; estimates vs references."""
    from .simulation import build_engine
    sc2 = sc if rule_params is None else replace(sc, rule_params={**sc.rule_params,
                                                                  **rule_params})
    eng, net, stream = build_engine(sc2)
    rule = sc2.build_rule()
    face, sl = _numpy_face(net, *_params(eng, net), sc.rule_name)
    rows = stream.rows(0)
    X, Y = stream.data.inputs[rows], stream.data.targets[rows]
    ref, s_ref = _reference(face, sl, net, X, Y, stream.input_node, sc.rule_name, rule)
    got: dict = {}
    t_free = stream.settle + 0.5
    eng.at(t_free, lambda e, t: got.__setitem__("free", _engine_state(e, face, sl, len(X),
                                                                       sc.rule_name)))
    eng.run(stream.hold + 0.5)
    est = _flat_estimate(eng, net, face, sl, sc.rule_name)
    nudge = rule.beta if sc.rule_name == "ep" else rule.eta
    return {"nudge": nudge, "error": float(np.abs(est - ref).max() / np.abs(ref).max()),
            "free_state_error": float(np.abs(got["free"] - s_ref).max()),
            "cosine": float(est @ ref / (np.linalg.norm(est) * np.linalg.norm(ref)))}


def attach_energy(eng, net, stream, sc: Scenario) -> dict[str, Callable]:
    """The analyses of an ep/coupled scenario: summary key -> ``result()``.

    Probes only read ``model.state()``, so this runs unchanged in a
    distributed run (the cluster gathers the states a probe reads).
    """
    rule = sc.build_rule()
    kind = sc.analysis.get("kind", "training")
    if kind == "accuracy":
        kind = "training"
    if kind not in ("training", "gradient", "none"):
        raise ScenarioError(f"{sc.path}: [analysis] kind {kind!r} does not apply to rule "
                            f"{sc.rule_name!r} (use training, gradient or none)")
    cache: dict = {}
    if kind == "gradient":
        def gradient() -> list:
            if "gradient" not in cache:
                rows = [_gradient_check(sc)]
                key = "beta" if sc.rule_name == "ep" else "eta"
                rows += [_gradient_check(sc, {key: float(b)})
                         for b in sc.analysis.get("betas", [])]
                cache["gradient"] = rows
            return cache["gradient"]

        return {"gradient": gradient,
                "report": lambda: _gradient_report(gradient(), sc.rule_name, rule)}
    if kind == "none":
        return {}
    training = _attach_training(eng, net, stream, sc, rule)
    return {"training": training,
            "report": lambda: _training_report(training(), stream)}


def _gradient_report(rows: list, rule_name: str, rule) -> list[str]:
    name = "β" if rule_name == "ep" else "η"
    side = ("symmetric ±β" if getattr(rule, "symmetric", False) else "one-sided") \
        if rule_name == "ep" else "CL (vs the H-weighted cost)"
    out = [f"gradient  engine estimate vs implicit differentiation, {side}",
           f"          {name:>8}  rel. error  cosine      free-state error"]
    for r in rows:
        out.append(f"          {r['nudge']:8.0e}  {r['error']:10.2e}  {r['cosine']:.8f}"
                   f"  {r['free_state_error']:.1e}")
    return out


def _attach_training(eng, net, stream, sc: Scenario, rule) -> Callable[[], dict | None]:
    records: list[dict] = []
    out = stream.output_node
    onehot = stream.kind == "digits"
    final: dict = {}

    def probe_start(e, t):  # the initial parameters, before anything happens
        final["start"] = _params(e, net)
        final["Q0"] = _Q(e, net, sc.rule_name)

    eng.at(0.0, probe_start)

    def probe_free(e, t, w):
        rows = stream.rows(w)
        st = e.agents[out].model.state()
        v = st["activity" if sc.rule_name == "ep" else "state"]
        v = np.broadcast_to(np.atleast_2d(v), (len(rows), net.populations[out].size))
        y = stream.data.targets[rows]
        rec = {"window": w, "loss": float(np.mean(0.5 * np.sum((v - y) ** 2, axis=1)))}
        if onehot:
            rec["accuracy"] = float(np.mean(np.argmax(v, 1) == np.argmax(y, 1)))
        records.append(rec)

    def probe_q(e, t, w):
        if records and records[-1]["window"] == w:
            records[-1]["Q"] = _Q(e, net, sc.rule_name)
        final["params"] = _params(e, net)

    for w in range(stream.windows()):
        t0 = w * stream.hold
        if t0 + stream.hold + 0.5 < sc.duration:
            eng.at(t0 + stream.settle + 0.5, lambda e, t, w=w: probe_free(e, t, w))
            eng.at(t0 + stream.hold + 0.5, lambda e, t, w=w: probe_q(e, t, w))

    def result() -> dict | None:
        done = [r for r in records if "Q" in r]
        if not done:
            return None
        per_epoch = max(1, len(stream.data.inputs) // stream.batch)
        q0 = final["Q0"]
        face0, sl = _numpy_face(net, *final["start"], sc.rule_name)
        face, _ = _numpy_face(net, *final["params"], sc.rule_name)
        X, Y = stream.data.test_inputs, stream.data.test_targets
        eps = getattr(rule, "eps", 0.5)
        o0 = free_outputs(face0, sl, net, X, stream.input_node, eps)
        o1 = free_outputs(face, sl, net, X, stream.input_node, eps)
        res = {"windows": len(done), "epochs": len(done) / per_epoch, "Q0": q0,
               "Q_end": done[-1]["Q"], "test_patterns": len(X),
               "test_loss_start": float(np.mean(0.5 * np.sum((o0 - Y) ** 2, 1))),
               "test_loss": float(np.mean(0.5 * np.sum((o1 - Y) ** 2, 1)))}
        if onehot:
            res["test_accuracy_start"] = float(np.mean(o0.argmax(1) == Y.argmax(1)))
            res["test_accuracy"] = float(np.mean(o1.argmax(1) == Y.argmax(1)))
        res["Q_drift"] = (res["Q_end"] - q0) / q0
        epochs = []
        for e in range(int(math.ceil(len(done) / per_epoch))):
            chunk = done[e * per_epoch:(e + 1) * per_epoch]
            ep_ = {"epoch": e + 1, "windows": len(chunk),
                   "loss": float(np.mean([r["loss"] for r in chunk])), "Q": chunk[-1]["Q"]}
            if onehot:
                ep_["accuracy"] = float(np.mean([r["accuracy"] for r in chunk]))
            epochs.append(ep_)
        res["per_epoch"] = epochs
        return res

    return result


def _training_report(res: dict | None, stream) -> list[str]:
    if res is None:
        return ["training  no window completed (duration shorter than one window)"]
    onehot = "test_accuracy" in res
    out = [f"training  {res['windows']} windows of batch {stream.batch} "
           f"({res['epochs']:.2f} epochs of {len(stream.data.inputs)} patterns)",
           "          epoch  free-output loss" + ("  accuracy" if onehot else "")
           + "   Q = Σθ²"]
    epochs = res["per_epoch"]
    show = epochs if len(epochs) <= 12 else epochs[:3] + epochs[-8:]
    for r in show:
        acc = f"  {100 * r['accuracy']:7.1f}%" if onehot else ""
        out.append(f"          {r['epoch']:5d}  {r['loss']:16.4g}{acc}   {r['Q']:.6g}")
    out.append(f"          Q: {res['Q0']:.6g} -> {res['Q_end']:.6g} "
               f"(relative drift {res['Q_drift']:+.2e})")
    held = (f"held-out ({res['test_patterns']} patterns, numpy face, final parameters): "
            f"loss {res['test_loss_start']:.4g} -> {res['test_loss']:.4g}")
    if onehot:
        held += (f", accuracy {100 * res['test_accuracy_start']:.1f}% -> "
                 f"{100 * res['test_accuracy']:.1f}%")
    out.append("          " + held)
    return out
