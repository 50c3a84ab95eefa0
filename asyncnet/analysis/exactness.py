"""``exactness``: every synapse's gradient against plain backprop, frame by frame."""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx

from ..messages import QUANTA
from ..metrics import rel_error
from ..reference import backprop
from . import Analysis, AnalysisError, Context

EXACT_TOL = 1e-12


def synapse_layers(net) -> dict[str, int]:
    """Synapse agent -> the layer of its pre-population (DAGs only)."""
    layer = net.layer_of()
    return {p.name: layer[p.pre] for p in net.projections.values()}


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

        def result() -> dict:
            L = net.depth()
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
                rows.append({"layer": lay, "max_error_from_2L": max(after) if after else None,
                             "error_at_2L_minus_1": before[0] if before else None,
                             "exact_from_frame": first})
            worst = [r["max_error_from_2L"] for r in rows if r["max_error_from_2L"] is not None]
            return {"depth": L, "tolerance": EXACT_TOL, "layers": rows,
                    "max_error_from_2L": max(worst) if worst else None,
                    "exact": bool(worst) and max(worst) <= EXACT_TOL}

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
        """The per-layer table."""
        lines = [f"exactness vs plain numpy backprop, L={ex['depth']} "
                 f"(normwise relative error, max|g-g*|/max|g*|):",
                 "          layer  error at t=2L-1  max error t>=2L  exact from t"]
        for row in ex["layers"]:
            lines.append(f"          {row['layer']:5d}  {_e(row['error_at_2L_minus_1']):>15}"
                         f"  {_e(row['max_error_from_2L']):>15}"
                         f"  {_t(row['exact_from_frame']):>12}")
        verdict = "EXACT" if ex["exact"] else "NOT exact"
        lines.append(f"          {verdict} from t=2L={2 * ex['depth']} on "
                     f"(tolerance {ex['tolerance']:g})")
        return lines


def _e(x) -> str:
    return "n/a" if x is None else f"{x:.2e}"


def _t(x) -> str:
    return "n/a" if x is None else f"{x:g}"
