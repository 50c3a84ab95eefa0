"""Analyses of relaxation schemes: how and when the gradient settles.

``settling`` (SCHEMES.md §1 continuous time, §2): constant input and target,
frozen weights. Every time a synapse agent wakes, its gradient estimate is
compared with an independent reference — plain backprop on a DAG
(:func:`asyncnet.reference.backprop`), the Almeida–Pineda gradient of the
fixed point on a graph with cycles (:func:`asyncnet.reference.recurrent_backprop`,
Newton's method plus a linear solve). The summary says when every synapse
became exact and stayed so, after how many neuron firings and messages, and
how fast the error fell (a fitted exponential rate, against the rate the rule
predicts where it can).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import networkx as nx
import numpy as np

from ..messages import QUANTA
from ..metrics import rel_error
from ..reference import backprop, recurrent_backprop
from . import Analysis, AnalysisError, Context

EXACT_TOL = 1e-12
FIT_WINDOW = (1e-11, 1e-3)  # errors used for the rate fit: past the transient, above rounding


class Settling:
    """The settling analysis: a timeline of the worst synapse error, instant by instant.

    Each entry is ``(t, worst error, neuron firings, messages)`` with the
    counts taken through the end of instant ``t``: an instant is the unit of
    the canonical order, so the figures do not depend on which agent the
    scheduler happened to wake first — and a distributed run, which folds
    the workers' contributions instant by instant, gets the same timeline.
    """

    def __init__(self, net, stream, params: dict, rule):
        if stream.kind != "constant":
            raise AnalysisError("the settling analysis needs a constant data stream")
        u, y = stream.frame_value(0.0)
        self.dag = nx.is_directed_acyclic_graph(net.graph)
        ref_fn = backprop if self.dag else recurrent_backprop
        self.ref = ref_fn(net, stream.input_map(u), stream.target_map(y))
        self.grads = {p.name: self.ref["grad"][(p.pre, p.post)]
                      for p in net.projections.values()}
        self.tol = float(params.get("tolerance", EXACT_TOL))
        self.err = dict.fromkeys(self.grads, math.inf)
        self.fires = 0
        self.timeline: list[tuple[int, float, int, int]] = []
        self.n_neurons = len(net.populations)
        self.net, self.rule = net, rule

    def close(self, t: int, errs: dict[str, float], fires: int, messages: int) -> None:
        """Fold one instant: the synapses that woke, firings, messages through ``t``."""
        self.fires += fires
        if errs:
            self.err.update(errs)
            worst = max(self.err.values())
            if not self.timeline or self.timeline[-1][1] != worst:
                self.timeline.append((t, worst, self.fires, messages))

    def result(self, total_messages: int) -> dict:
        """The summary of the analysis."""

        timeline, dag, ref, n_neurons = self.timeline, self.dag, self.ref, self.n_neurons
        out = {"reference": "backprop" if dag else "recurrent backprop (Almeida-Pineda)",
               "tolerance": self.tol, "acyclic": dag, "neurons": n_neurons,
               "final_error": timeline[-1][1] if timeline else None,
               "exact_from": None, "firings_to_exact": None, "messages_to_exact": None,
               "firings_per_neuron_to_exact": None,
               "total_firings": self.fires, "total_messages": total_messages}
        if not dag:
            eig = np.linalg.eigvals(ref["J"]) if ref["J"].size else np.zeros(1)
            out["jacobian_spectral_radius"] = float(np.max(np.abs(eig)))
            out["jacobian_max_real_eig"] = float(np.max(eig.real))
        if timeline and timeline[-1][1] <= self.tol:
            k = len(timeline) - 1
            while k > 0 and timeline[k - 1][1] <= self.tol:
                k -= 1
            t, _, f, m = timeline[k]
            out.update(exact_from=t / QUANTA, firings_to_exact=f, messages_to_exact=m,
                       firings_per_neuron_to_exact=f / n_neurons)
        out.update(fit_rate(timeline))
        pred = getattr(self.rule, "predicted_rate", None)
        out["predicted_rate"] = pred(self.net, None if dag else ref["J"]) if pred else None
        return out


def settling_monitor(eng, grads: dict, on_instant: Callable) -> Callable[[], None]:
    """Attach a monitor that gathers each instant's contributions of this
    engine's agents and hands them to ``on_instant(t, errs, fires, messages)``
    when the instant is over; returns the function that closes the last one."""
    pending: dict = {"t": None, "errs": {}, "fires": 0, "msgs": 0}
    last_fires: dict[str, int] = {}

    def flush() -> None:
        if pending["t"] is not None:
            on_instant(pending["t"], pending["errs"], pending["fires"], pending["msgs"])
            pending.update(t=None, errs={}, fires=0)

    def monitor(agent, t: int) -> None:
        if t != pending["t"]:
            flush()
            pending["t"] = t
        name, model = agent.name, agent.model
        if name in grads:
            pending["errs"][name] = rel_error(model.grad, grads[name])
        elif hasattr(model, "fires"):
            # a neuron: count its own updates (sync: per instant; async: per timer)
            pending["fires"] += model.fires - last_fires.get(name, 0)
            last_fires[name] = model.fires
        pending["msgs"] = eng.messages()  # the last wake of an instant sees them all

    eng.monitors.append(monitor)
    return flush


def attach_settling(eng, net, stream, params: dict) -> Callable[[], dict]:
    """Watch every synapse's gradient against the reference; return ``result()``."""
    s = Settling(net, stream, params, eng.rule)
    flush = settling_monitor(eng, s.grads, s.close)

    def result() -> dict:
        flush()
        return s.result(eng.messages())

    result.settling = s  # the accumulator, folded from workers by the cluster
    return result


def fit_rate(timeline: list[tuple[int, float, int, int]]) -> dict:
    """Exponential rates fitted to the error's tail (per unit of time).

    ``measured_rate``: slope of ``-log(error)`` against time where the error
    is inside ``FIT_WINDOW``; ``measured_rate_poly``: the same with a free
    power-law prefactor, ``log e = a + b log t - r t`` — on a DAG the modes
    are degenerate (Jordan blocks) and the error is a polynomial times an
    exponential, which biases a plain exponential fit low.
    """

    pts = [(t / QUANTA, e) for t, e, _, _ in timeline
           if FIT_WINDOW[0] < e < FIT_WINDOW[1] and t > 0]
    if len(pts) < 6:
        return {"measured_rate": None, "measured_rate_poly": None, "fit_points": len(pts)}
    ts = np.array([p[0] for p in pts])
    le = np.log([p[1] for p in pts])
    slope = np.polyfit(ts, le, 1)[0]
    A = np.column_stack([np.ones_like(ts), np.log(ts), ts])
    coef = np.linalg.lstsq(A, le, rcond=None)[0]
    return {"measured_rate": float(-slope), "measured_rate_poly": float(-coef[2]),
            "fit_points": len(pts), "fit_span": [float(ts[0]), float(ts[-1])]}


def format_settling(s: dict) -> list[str]:
    """Summary lines for the settling analysis."""
    def g(x, fmt="{:.3g}"):
        return "n/a" if x is None else fmt.format(x)

    lines = [f"settling  every synapse's gradient vs {s['reference']} "
             f"(normwise relative error, tolerance {s['tolerance']:g})"]
    if s["exact_from"] is not None:
        lines.append(f"          EXACT from t={s['exact_from']:g}: after "
                     f"{s['firings_to_exact']:,} neuron updates "
                     f"({s['firings_per_neuron_to_exact']:.1f} per neuron agent) and "
                     f"{s['messages_to_exact']:,} messages")
    else:
        lines.append(f"          not exact by the end: final error {g(s['final_error'], '{:.2e}')}")
    if s.get("measured_rate") is not None:
        span = f"t={s['fit_span'][0]:g}..{s['fit_span'][1]:g}"
        pred = g(s["predicted_rate"], "{:.4f}")
        if s["acyclic"]:
            # degenerate modes: error ~ t^b e^{-rt}; a plain exponential fit is biased low
            lines.append(f"          error decay rate per unit time ({span}): fit of "
                         f"t^b e^(-rt) r={s['measured_rate_poly']:.4f} (plain exp fit "
                         f"{s['measured_rate']:.4f}); predicted {pred}")
        else:
            lines.append(f"          error decay rate per unit time ({span}): exp fit "
                         f"{s['measured_rate']:.4f}; predicted without link delays {pred}")
    if "jacobian_spectral_radius" in s:
        lines.append(f"          fixed point: spectral radius of J "
                     f"{s['jacobian_spectral_radius']:.3f}, "
                     f"max Re eig {s['jacobian_max_real_eig']:.3f}")
    lines.append(f"          final error {g(s['final_error'], '{:.2e}')}; "
                 f"{s['total_firings']:,} neuron updates, {s['total_messages']:,} messages in all")
    return lines


def attach_tracking(eng, net, stream, params: dict, duration: float) -> Callable[[], dict]:
    """How far the synapses' gradients lag the exact gradient of the input shown now.

    From ``warmup`` (default: half the run) on, four times per unit, every
    synapse's gradient is compared with plain backprop on the input and target
    the input and output populations hold at that instant (sources send one
    value per unit, arriving at integer times). Error:
    ``mean_t Σ‖G − ∇V‖ / mean_t Σ‖∇V‖`` over the projections.
    """
    warm = float(params.get("warmup", duration / 2))
    if not 0 <= warm < duration:  # before the run (a probe in the past), or nothing probed
        raise AnalysisError(f"key 'warmup' must be a time from 0 to below the run's duration "
                            f"{duration:g} (probes from t = warmup on), got {warm:g}")
    if getattr(stream, "batch", 1) != 1:
        raise AnalysisError("the tracking analysis compares with one input's gradient: "
                            "it needs unbatched data (batch = 1)")
    if 4 * (duration - warm) > 1_000_000:
        raise AnalysisError(f"tracking probes four times per unit from t={warm:g}: "
                            f"{4 * (duration - warm):.3g} probes (at most 1,000,000)")
    names = {p.name: (p.pre, p.post) for p in net.projections.values()}
    acc = {"num": 0.0, "den": 0.0, "n": 0}

    def probe(engine, t: float) -> None:
        shown = math.floor(t)
        u, y = stream.frame_value(shown)
        ref = backprop(net, stream.input_map(u), stream.target_map(y))["grad"]
        for name, key in names.items():
            g = engine.agents[name].model.grad
            acc["num"] += float(np.linalg.norm(g - ref[key]))
            acc["den"] += float(np.linalg.norm(ref[key]))
        acc["n"] += 1

    t = math.ceil(warm) + 0.125
    while t < duration:
        eng.at(t, probe)
        t += 0.25

    def result() -> dict:
        c = getattr(eng.rule, "c", None)
        err = acc["num"] / acc["den"] if acc["den"] else None
        return {"c": c, "warmup": warm, "probes": acc["n"], "relative_error": err,
                "error_times_c": err * c if (err is not None and c) else None}

    return result


def format_tracking(s: dict) -> list[str]:
    """Summary lines for the tracking analysis."""
    e = s["relative_error"]
    lines = [f"tracking  gradient vs backprop on the input shown now, t >= {s['warmup']:g} "
             f"({s['probes']} probes)"]
    lines.append("          relative error " + ("n/a" if e is None else f"{e:.4g}")
                 + ("" if s["c"] is None else f" at c = {s['c']:g}")
                 + ("" if s["error_times_c"] is None
                    else f" (error x c = {s['error_times_c']:.3f})"))
    return lines


class SettlingAnalysis(Analysis):
    """``settling``: when every synapse's gradient became exact, and how fast."""

    key = "settling"
    options = ("tolerance",)
    monitors = True
    counts_per_instant = True

    def attach(self, ctx: Context) -> Callable[[], dict]:
        """Watch every synapse wake; ``result.settling`` is the accumulator."""
        if ctx.stream.kind != "constant":
            raise AnalysisError("the settling analysis needs a constant data stream")
        return attach_settling(ctx.engine, ctx.net, ctx.stream, ctx.params)

    def share(self, ctx: Context) -> Callable[[], dict]:
        """This partition's per-instant errors and firings."""
        rows: list[list] = []
        grads = Settling(ctx.net, ctx.stream, ctx.params, ctx.rule).grads
        flush = settling_monitor(ctx.engine, grads, lambda t, errs, fires, _m: rows.append(
            [t, errs, fires]))

        def part() -> dict:
            flush()
            return {"settling": rows}

        return part

    def merge(self, result, shares: list[dict], through) -> None:
        """Fold the partitions' instants in time order."""
        merged: dict[int, list] = {}
        for r in shares:
            for t, errs, fires in r.get("settling", []):
                cur = merged.setdefault(t, [{}, 0])
                cur[0].update(errs)
                cur[1] += fires
        s = result.settling
        for t in sorted(merged):
            s.close(t, merged[t][0], merged[t][1], through(t))

    def report(self, value: dict) -> list[str]:
        """See :func:`format_settling`."""
        return format_settling(value)


class TrackingAnalysis(Analysis):
    """``tracking``: relative error of the gradient against the lagged reference."""

    key = "tracking"
    options = ("warmup",)

    def attach(self, ctx: Context) -> Callable[[], dict]:
        """Schedule the probes; return ``result()``."""
        return attach_tracking(ctx.engine, ctx.net, ctx.stream, ctx.params,
                               ctx.scenario.duration)

    def report(self, value: dict) -> list[str]:
        """See :func:`format_tracking`."""
        return format_tracking(value)
