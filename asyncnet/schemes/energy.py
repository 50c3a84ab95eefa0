"""What the energy-based schemes (``ep``, ``coupled``) share beyond the relay.

Their data come from a teacher with a nudge schedule
(:class:`asyncnet.nudge.NudgeStream`), and they have two analyses. Both read
agents only through ``model.state()`` probes, so they run unchanged on the
cluster. Everything scheme-specific comes from the scheme's ``face`` (its
numpy face: :class:`asyncnet.schemes.ep.face.EPFace`,
:class:`asyncnet.schemes.coupled.face.CoupledFace`).

- ``[analysis] kind = "gradient"``: the engine is re-run (no log) to the end
  of the first window, once with the scenario's nudge and once per entry of
  ``betas = [...]``; every synapse's (and bias's) estimate is compared with
  the gradient of the loss at the free equilibrium by implicit
  differentiation (numpy face), and the free state with the numpy reference.
- ``kind = "training"`` (the default): per epoch, the network's own
  free-state outputs on the batches it was shown (loss, accuracy for one-hot
  targets) and the conserved quantity ``Q = Σθ²``; at the end, held-out
  loss/accuracy of the final parameters through the numpy face.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from ..analysis import Analysis, AnalysisError, Context
from ..data import DataError
from ..network import layout
from ..nudge import DATASET_KEYS, NudgeStream, load_dataset

SCHEDULE_KEYS = ("batch", "settle", "leg", "release")
NOT_FOR_ENERGY = ("hold", "order", "period", "lag", "target_scale")


def _params(states: Callable[[str], dict], net) -> tuple[dict, dict]:
    """Current couplings/conductances per synapse and biases per population."""
    W = {pr.name: states(pr.name)["weight"] for pr in net.projections.values()}
    b = {nm: states(nm).get("bias") for nm in net.populations}
    return W, b


def _reader(eng) -> Callable[[str], dict]:
    return lambda name: eng.agents[name].model.state()


def _Q(eng, net, face) -> float:
    W, b = _params(_reader(eng), net)
    q = sum(float(np.sum(w * w)) for w in W.values())
    if face.biases_in_Q:
        q += sum(float(np.sum(v * v)) for nm, v in b.items()
                 if v is not None and net.populations[nm].role != "input")
    return q


class EnergyScheme:
    """Mixin for an energy scheme's parameter class: its stream and analyses.

    The class sets ``face`` (its numpy-face hooks) and ``symmetric`` (±β phases).
    """

    face: ClassVar[Any]
    nudged: ClassVar[bool] = True
    default_analysis: ClassVar[str] = "training"

    def stream(self, data: dict, net, inp: str, out: str, seed: int, duration: float):
        """Batches and teacher schedule (:mod:`asyncnet.nudge`) for ``[data]``."""
        d = dict(data)
        kind = d.pop("kind", "constant")
        sched = {k: d.pop(k) for k in SCHEDULE_KEYS if k in d}
        for k in NOT_FOR_ENERGY:
            if k in d:
                raise DataError(f"key {k!r} does not apply to rule {self.name!r} "
                                f"(use settle, leg, batch)")
        extra = sorted(set(d) - DATASET_KEYS.get(kind, set(d)))
        if extra:  # ignored before: "target = [...]" for a linear teacher did nothing
            raise DataError(f"key {extra[0]!r} does not apply to data kind {kind!r} (its "
                            f"keys: {', '.join(sorted(DATASET_KEYS[kind] | set(SCHEDULE_KEYS)))})")
        ds = load_dataset(kind, n_in=net.populations[inp].size,
                          n_out=net.populations[out].size, seed=seed, **d)
        return NudgeStream(kind, ds, inp, out, sched.get("batch", 1),
                           sched.get("settle", 50), sched.get("leg", 50),
                           2 if getattr(self, "symmetric", False) else 1,
                           seed, duration, sched.get("release", 0))


class Training(Analysis):
    """Per-epoch free-output loss and ``Q``; held-out figures through the face."""

    key = "training"

    def attach(self, ctx: Context) -> Callable[[], dict | None]:
        """Probe every window's free state and end; return ``result()``."""
        eng, net, stream, rule = ctx.engine, ctx.net, ctx.stream, ctx.rule
        layout(net)  # the face flattens the net: too large for it is refused now, not at the end
        face_of = rule.face
        records: list[dict] = []
        out = stream.output_node
        onehot = stream.kind == "digits"
        final: dict = {}

        def probe_start(e, t):  # the initial parameters, before anything happens
            final["start"] = _params(_reader(e), net)
            final["Q0"] = _Q(e, net, face_of)

        eng.at(0.0, probe_start)

        def probe_free(e, t, w):
            rows = stream.rows(w)
            v = e.agents[out].model.state()[face_of.activity_key]
            v = np.broadcast_to(np.atleast_2d(v), (len(rows), net.populations[out].size))
            y = stream.data.targets[rows]
            rec = {"window": w, "loss": float(np.mean(0.5 * np.sum((v - y) ** 2, axis=1)))}
            if onehot:
                rec["accuracy"] = float(np.mean(np.argmax(v, 1) == np.argmax(y, 1)))
            records.append(rec)

        def probe_q(e, t, w):
            if records and records[-1]["window"] == w:
                records[-1]["Q"] = _Q(e, net, face_of)
            final["params"] = _params(_reader(e), net)

        for w in range(stream.windows()):
            t0 = w * stream.hold
            if t0 + stream.hold + 0.5 < ctx.scenario.duration:
                eng.at(t0 + stream.settle + 0.5, lambda e, t, w=w: probe_free(e, t, w))
                eng.at(t0 + stream.hold + 0.5, lambda e, t, w=w: probe_q(e, t, w))

        def result() -> dict | None:
            done = [r for r in records if "Q" in r]
            if not done:
                return None
            per_epoch = max(1, len(stream.data.inputs) // stream.batch)
            q0 = final["Q0"]
            face0, sl = face_of.build(net, *final["start"])
            face, _ = face_of.build(net, *final["params"])
            X, Y = stream.data.test_inputs, stream.data.test_targets
            eps = getattr(rule, "eps", 0.5)
            o0 = face_of.free_outputs(face0, sl, net, X, stream.input_node, eps)
            o1 = face_of.free_outputs(face, sl, net, X, stream.input_node, eps)
            res = {"windows": len(done), "epochs": len(done) / per_epoch, "Q0": q0,
                   "Q_end": done[-1]["Q"], "test_patterns": len(X),
                   "test_loss_start": float(np.mean(0.5 * np.sum((o0 - Y) ** 2, 1))),
                   "test_loss": float(np.mean(0.5 * np.sum((o1 - Y) ** 2, 1)))}
            if onehot:
                res["test_accuracy_start"] = float(np.mean(o0.argmax(1) == Y.argmax(1)))
                res["test_accuracy"] = float(np.mean(o1.argmax(1) == Y.argmax(1)))
            res["Q_drift"] = (res["Q_end"] - q0) / q0
            epochs = []
            for k in range(int(math.ceil(len(done) / per_epoch))):
                chunk = done[k * per_epoch:(k + 1) * per_epoch]
                row = {"epoch": k + 1, "windows": len(chunk),
                       "loss": float(np.mean([r["loss"] for r in chunk])), "Q": chunk[-1]["Q"]}
                if onehot:
                    row["accuracy"] = float(np.mean([r["accuracy"] for r in chunk]))
                epochs.append(row)
            res["per_epoch"] = epochs
            return res

        self.batch, self.patterns = stream.batch, len(stream.data.inputs)

        return result

    def report(self, res: dict | None) -> list[str]:
        """Per-epoch table, Q drift and held-out figures."""
        if res is None:
            return ["training  no window completed (duration shorter than one window)"]
        onehot = "test_accuracy" in res
        out = [f"training  {res['windows']} windows of batch {self.batch} "
               f"({res['epochs']:.2f} epochs of {self.patterns} patterns)",
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


CHECK_SPAN = 1000
"""A gradient check may simulate at most this many times the scenario's duration."""


class Gradient(Analysis):
    """Engine estimates against implicit differentiation, for several nudges."""

    key = "gradient"
    options = ("betas",)

    def attach(self, ctx: Context) -> Callable[[], list]:
        """Nothing to watch in the main run: the checks run when asked for."""
        hold, duration = ctx.stream.hold, ctx.scenario.duration
        layout(ctx.net)  # the reference flattens the net: refused now if too large for it
        if hold > CHECK_SPAN * duration:
            # each check simulates window 0 to its end, whatever the duration: a window
            # many times longer than the run is a mistake (a huge leg would run for ever)
            raise DataError(f"the gradient analysis simulates one whole window (settle + legs "
                            f"+ release = {hold:g}), more than {CHECK_SPAN} times the "
                            f"scenario's duration {duration:g}: shorten [data] settle/leg or "
                            f"lengthen [scenario] duration")
        self.side = ctx.rule.face.side(ctx.rule)
        self.symbol = ctx.rule.face.nudge_symbol
        cache: dict = {}

        def result() -> list:
            if "rows" not in cache:
                key = ctx.rule.face.nudge_key
                rows = [self.check(ctx, None)]
                rows += [self.check(ctx, {key: float(b)})
                         for b in ctx.scenario.analysis.get("betas", [])]
                cache["rows"] = rows
            return cache["rows"]

        return result

    @staticmethod
    def check(ctx: Context, rule_params: dict | None) -> dict:
        """One engine run (no log) to the end of window 0; estimates vs references."""
        eng, net, stream = ctx.rebuild(rule_params=rule_params)
        rule = eng.rule
        face_of = rule.face
        face, sl = face_of.build(net, *_params(_reader(eng), net))
        rows = stream.rows(0)
        X, Y = stream.data.inputs[rows], stream.data.targets[rows]
        ref, s_ref = face_of.reference(face, sl, net, X, Y, stream.input_node, rule)
        got: dict = {}

        def free(e, t):
            S = np.zeros((len(X), face.n))
            for nm, s in sl.items():
                v = e.agents[nm].model.state()["state"]
                S[:, s] = np.broadcast_to(np.atleast_2d(v), (len(X), s.stop - s.start))
            got["free"] = S

        eng.at(stream.settle + 0.5, free)
        eng.run(stream.hold + 0.5)
        states = {n: a.model.state() for n, a in eng.agents.items()}
        est = face_of.flat_estimate(states, net, face, sl)
        nudge = getattr(rule, face_of.nudge_key)
        return {"nudge": nudge, "error": float(np.abs(est - ref).max() / np.abs(ref).max()),
                "free_state_error": float(np.abs(got["free"] - s_ref).max()),
                "cosine": float(est @ ref / (np.linalg.norm(est) * np.linalg.norm(ref)))}

    def report(self, rows: list) -> list[str]:
        """The per-nudge table."""
        out = [f"gradient  engine estimate vs implicit differentiation, {self.side}",
               f"          {self.symbol:>8}  rel. error  cosine      free-state error"]
        for r in rows:
            out.append(f"          {r['nudge']:8.0e}  {r['error']:10.2e}  {r['cosine']:.8f}"
                       f"  {r['free_state_error']:.1e}")
        return out


ENERGY_ANALYSES: dict[str, tuple] = {"training": (Training,), "accuracy": (Training,),
                                     "gradient": (Gradient,), "none": ()}


__all__ = ["EnergyScheme", "Training", "Gradient", "ENERGY_ANALYSES", "AnalysisError"]
