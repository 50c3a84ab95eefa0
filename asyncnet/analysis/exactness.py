"""``exactness``: every synapse's gradient against plain backprop, frame by frame."""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx

from ..ids import source_id
from ..messages import QUANTA
from ..metrics import rel_error
from ..reference import backprop
from . import Analysis, AnalysisError, Context

EXACT_TOL = 1e-12


def synapse_layers(net) -> dict[str, int]:
    """Synapse agent -> the layer of its pre-population (DAGs only)."""
    layer = net.layer_of()
    return {p.name: layer[p.pre] for p in net.projections.values()}


def wave_times(net, links: dict[str, dict[str, int]]) -> tuple[dict[str, int], dict[str, int]]:
    """When each population's activity, and its delta, are the waves' (quanta).

    A neuron's activity is right once every path from a source has delivered
    (``reach``: the source's delay plus the longest path in time, each
    projection its full delay); its delta once that is so at every output
    below it and the deltas have come back (``back``: the longest path in time
    down to an output and back up; an output also waits for its target).

    Parameters
    ----------
    net:
        the network (a DAG).
    links:
        the engine's link table (quanta; its sources' delays are read there).

    Returns
    -------
    ``(reach, back)``: population -> quanta.
    """
    order = [str(n) for n in nx.topological_sort(net.graph)]
    src = {n: links.get(source_id(n), {}).get(n) for n in order}
    reach: dict[str, int] = {}
    for n in order:
        come = [reach[p] + net.projections[p, n].delay_q for p in net.pre(n)]
        reach[n] = max(come + ([src[n]] if src[n] is not None else []), default=0)
    outputs = set(net.outputs())
    back: dict[str, int] = {}
    for n in reversed(order):
        come = [back[m] + net.projections[n, m].delay_q for m in net.post(n)]
        if n in outputs and src[n] is not None:
            come.append(src[n])
        back[n] = max([reach[n], *come])
    return reach, back


def predicted_frames(net, links: dict[str, dict[str, int]]) -> dict[str, float]:
    """Synapse agent -> the frame from which its gradient is exact, by the wave argument.

    A synapse is right once the activity and the delta (:func:`wave_times`)
    have both reached it: the frame ``max(back[post] + leg₂ - leg₁,
    reach[pre])`` (a frame is a wake's time less the first leg). With unit
    delays and one source delay of 1 this is ``2L - l`` for a synapse of
    layer ``l``, the paper's ``2L`` for the first; with delays ``d`` it is
    ``1 + (2L - l - 1) d``.

    Parameters
    ----------
    net:
        the network (a DAG).
    links:
        the engine's link table (quanta).

    Returns
    -------
    Synapse agent -> frame (time units).
    """
    reach, back = wave_times(net, links)
    frames = {}
    for pr in net.projections.values():
        first, second = pr.legs
        frames[pr.name] = max(back[pr.post] + second - first, reach[pr.pre]) / QUANTA
    return frames


class Exactness(Analysis):
    """Constant input and target: from which frame each layer's gradient is exact.

    A per-wake monitor compares every synapse's ``grad`` with an
    independent backprop (:func:`asyncnet.reference.backprop`).
    """

    key = "exactness"
    monitors = True

    def attach(self, ctx: Context) -> Callable[[], dict]:
        """Watch every synapse wake; return ``result()`` (its ``errs`` is the accumulator)."""
        net, stream = ctx.net, ctx.stream
        if not nx.is_directed_acyclic_graph(net.graph):
            raise AnalysisError("the exactness analysis needs an acyclic network (its frames "
                                "count layers); on a graph with cycles use settling")
        if stream.kind != "constant":
            raise AnalysisError("the exactness analysis needs a constant data stream")
        u, y = stream.frame_value(0.0)
        ref = backprop(net, stream.input_map(u), stream.target_map(y))["grad"]
        layers = synapse_layers(net)
        legs = {p.name: p.legs[0] for p in net.projections.values()}
        keys = {p.name: (p.pre, p.post) for p in net.projections.values()}
        errs: dict[tuple[int, float], float] = {}

        def monitor(agent, t: int) -> None:
            name = agent.name
            if name in layers:
                frame = (t - legs[name]) / QUANTA
                e = rel_error(agent.model.grad, ref[keys[name]])
                k = (layers[name], frame)
                errs[k] = max(errs.get(k, 0.0), e)

        ctx.engine.monitors.append(monitor)

        predicted = predicted_frames(net, ctx.engine.links)
        by_layer: dict[int, float] = {}
        for name, lay in layers.items():
            by_layer[lay] = max(by_layer.get(lay, 0.0), predicted[name])

        def result() -> dict:
            L = net.depth()
            # the paper's 2L is the waves' time where every layer's t* is 2L - layer
            # (unit delays, a layered net): the entry is then what it always was
            in_hops = all(t == 2 * L - lay for lay, t in by_layer.items())
            rows = []
            for lay in sorted({k[0] for k in errs}):
                by_f = sorted((f, e) for (l_, f), e in errs.items() if l_ == lay)
                first = None
                for f, _ in by_f:
                    if all(e <= EXACT_TOL for ff, e in by_f if ff >= f):
                        first = f
                        break
                after = [e for f, e in by_f if f >= 2 * L]
                before = [e for f, e in by_f if f == 2 * L - 1]
                row = {"layer": lay, "max_error_from_2L": max(after) if after else None,
                       "error_at_2L_minus_1": before[0] if before else None,
                       "exact_from_frame": first}
                if not in_hops:
                    t_star = by_layer[lay]
                    after = [e for f, e in by_f if f >= t_star]
                    before = [e for f, e in by_f if f < t_star][-1:]
                    row.update(predicted_exact_from=t_star,
                               max_error_from_predicted=max(after) if after else None,
                               error_before_predicted=before[0] if before else None)
                rows.append(row)
            worst = [r["max_error_from_2L"] for r in rows if r["max_error_from_2L"] is not None]
            out = {"depth": L, "tolerance": EXACT_TOL, "layers": rows,
                   "max_error_from_2L": max(worst) if worst else None}
            if not in_hops:
                worst = [r["max_error_from_predicted"] for r in rows
                         if r["max_error_from_predicted"] is not None]
                out.update(predicted_exact_from=max(by_layer.values(), default=None),
                           max_error_from_predicted=max(worst) if worst else None)
            out["exact"] = bool(worst) and max(worst) <= EXACT_TOL
            return out

        result.errs = errs  # the accumulator, merged across workers
        return result

    def share(self, ctx: Context) -> Callable[[], dict]:
        """This partition's errors, per (layer, frame)."""
        res = self.attach(ctx)
        return lambda: {"exact_errs": [[k[0], k[1], v] for k, v in res.errs.items()]}

    def merge(self, result, shares: list[dict], through) -> None:
        """The worst error per (layer, frame) over all partitions."""
        for r in shares:
            for lay, frame, err in r.get("exact_errs", []):
                k = (lay, frame)
                result.errs[k] = max(result.errs.get(k, 0.0), err)

    def report(self, ex: dict) -> list[str]:
        """The per-layer table: against ``2L`` where the links' delays make that the
        wave's time (unit delays), else against the predicted time of each layer."""
        L = ex["depth"]
        head = f"exactness vs plain numpy backprop, L={L} (normwise relative error, " \
               f"max|g-g*|/max|g*|)"
        in_time = "predicted_exact_from" in ex  # else every layer's t* is 2L - layer
        if not in_time:
            lines = [head + ":", "          layer  error at t=2L-1  max error t>=2L"
                                 "  exact from t"]
            cols = ("error_at_2L_minus_1", "max_error_from_2L")
            end = f"from t=2L={2 * L} on"
        else:
            lines = [head + ",", "          each layer from t*: the waves there and back, in "
                                 "time (not 2L-layer here: the delays or paths differ)",
                     "          layer        t*  error before t*  max error t>=t*  exact from t"]
            cols = ("error_before_predicted", "max_error_from_predicted")
            end = f"from each layer's t* on, the last t*={_t(ex['predicted_exact_from'])}"
        for row in ex["layers"]:
            t_star = f"  {_t(row['predicted_exact_from']):>8}" if in_time else ""
            lines.append(f"          {row['layer']:5d}{t_star}  {_e(row[cols[0]]):>15}"
                         f"  {_e(row[cols[1]]):>15}  {_t(row['exact_from_frame']):>12}")
        verdict = "EXACT" if ex["exact"] else "NOT exact"
        lines.append(f"          {verdict} {end} (tolerance {ex['tolerance']:g})")
        return lines


def _e(x) -> str:
    return "n/a" if x is None else f"{x:.2e}"


def _t(x) -> str:
    return "n/a" if x is None else f"{x:g}"
