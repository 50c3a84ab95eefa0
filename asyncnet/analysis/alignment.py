"""``alignment``: streams held k ticks, cosine with the current frame's gradient."""

from __future__ import annotations

import math
from collections.abc import Callable

import networkx as nx
import numpy as np

from ..ids import split_synapse
from ..messages import QUANTA
from ..metrics import cosine
from ..reference import backprop
from . import Analysis, AnalysisError, Context
from .exactness import predicted_frames, synapse_layers, wave_times


class Alignment(Analysis):
    """Per-layer cosine with the exact gradient, for each hold time k.

    Extra unlogged runs, one per ``holds`` entry. Two references per
    meeting at frame t: the gradient of the frame shown at the input at t
    ("current"), and of the frame whose input the forward wave has carried
    to the synapse's pre-layer ("wave": shown at t - l with unit delays; in
    general the forward wave's time from the input to the pre-layer, l·d with
    delays d). The default warm-up is the time the waves need to fill the net
    (:func:`~asyncnet.analysis.exactness.predicted_frames`: 2L with unit delays).
    """

    key = "alignment"
    options = ("holds", "warmup")

    def attach(self, ctx: Context) -> Callable[[], dict]:
        """Nothing to watch in the main run: the sweep runs when asked for."""
        if not nx.is_directed_acyclic_graph(ctx.net.graph):
            raise AnalysisError("the alignment analysis needs an acyclic network")
        if not hasattr(ctx.stream, "pattern"):
            raise AnalysisError("the alignment analysis needs a stream of patterns")
        if getattr(ctx.stream, "batch", 1) != 1:
            raise AnalysisError("the alignment analysis compares single patterns' gradients: "
                                "it needs unbatched data (batch = 1)")
        _check_options(ctx.scenario.analysis)
        cache: dict = {}

        def result() -> dict:
            if "v" not in cache:
                cache["v"] = self.sweep(ctx)
            return cache["v"]

        return result

    def sweep(self, ctx: Context) -> dict:
        """Run the sweep (one engine per hold time)."""
        sc, net = ctx.scenario, ctx.net
        holds = sc.analysis.get("holds") or [sc.data.get("hold", 1)]
        L = net.depth()
        layers = synapse_layers(net)
        legs = {p.name: p.legs[0] for p in net.projections.values()}
        # in time, not hops: with delays d the waves need 1 + (2L - 1) d to fill the
        # net, and a layer-l synapse holds the input shown l·d ago (2L and l at d = 1)
        reach, _ = wave_times(net, ctx.engine.links)
        shown = min(reach[n] for n in net.inputs())
        lags: dict[int, float] = {}
        for p in net.projections.values():
            lay = layers[p.name]
            lags[lay] = max(lags.get(lay, 0.0), (reach[p.pre] - shown) / QUANTA)
        warm = float(sc.analysis.get("warmup", max(
            predicted_frames(net, ctx.engine.links).values(), default=2 * L)))
        rows = []
        for k in holds:
            eng, _, stream = ctx.rebuild(hold=float(k))
            refs = [backprop(net, stream.input_map(stream.inputs[i]),
                             stream.target_map(stream.targets[i]))["grad"]
                    for i in range(len(stream.inputs))]
            frames = _Frames(layers, legs, warm, refs, stream, lags)
            eng.monitors.append(frames.monitor)
            eng.run(sc.duration)
            frames.flush(math.inf)
            rows.append({"hold": k,
                         "current": {lay: float(np.mean(v))
                                     for lay, v in sorted(frames.cur.items())},
                         "wave": {lay: float(np.mean(v))
                                  for lay, v in sorted(frames.wave.items())}})
        return {"depth": L, "warmup": warm, "rows": rows}

    def report(self, al: dict) -> list[str]:
        """The per-hold, per-layer cosine tables."""
        layers = sorted({int(k) for row in al["rows"] for k in row["current"]})
        lines = [f"alignment cosine with the exact gradient, L={al['depth']}, "
                 f"frames t >= {al['warmup']:g}"]
        for ref in ("current", "wave"):
            lines.append(f"          vs the {ref} frame" + (
                " (shown at the input now)" if ref == "current"
                else " (whose input the forward wave brought to the synapse)"))
            lines.append("            hold k " + "".join(f"{'l' + str(x):>7}" for x in layers))
            for row in al["rows"]:
                vals = "".join(f"{row[ref].get(x, float('nan')):7.3f}" for x in layers)
                lines.append(f"            {row['hold']:6g} {vals}")
        return lines


def _check_options(options: dict) -> None:
    """Refuse ``holds = []`` (it swept the data's hold instead, saying nothing), a hold
    that is no positive time, and a negative ``warmup`` (frames before the run)."""
    holds = options.get("holds")
    if holds is not None and len(holds) == 0:
        raise AnalysisError("key 'holds' is empty: give the hold times to sweep (e.g. "
                            "holds = [2, 4]), or leave it out for the data's hold")
    for k in holds or ():
        if not k > 0:
            raise AnalysisError(f"key 'holds': every hold time must be positive, got {k!r}")
    warmup = options.get("warmup")
    if warmup is not None and not warmup >= 0:
        raise AnalysisError(f"key 'warmup' must be a time of 0 or more (frames scored from "
                            f"t = warmup on), got {warmup!r}")


class _Frames:
    """One hold's run: each synapse's gradient by (layer, frame), scored by cosine.

    A (layer, frame) is scored as soon as no synapse of the layer can add to it
    (its instant plus the layer's longest leg), in the order the frames were first
    seen: the same cosines appended in the same order as scoring every frame after
    the run, which held every synapse's gradient of every frame (a layer of 10⁷
    weights ran this box's 24 GiB out).
    """

    def __init__(self, layers: dict[str, int], legs: dict[str, int], warm: float,
                 refs: list, stream, lags: dict[int, float]) -> None:
        self.layers, self.legs, self.warm, self.refs, self.stream = \
            layers, legs, warm, refs, stream
        self.lags = lags  # layer -> how long ago its synapses' input was shown
        self.names = sorted(layers)
        self.longest: dict[int, int] = {}  # a layer's longest leg
        for n, lay in layers.items():
            self.longest[lay] = max(self.longest.get(lay, 0), legs[n])
        self.got: dict[tuple[int, float], dict] = {}
        self.last_t: dict[tuple[int, float], int] = {}
        self.cur: dict[int, list[float]] = {}
        self.wave: dict[int, list[float]] = {}

    def monitor(self, agent, t: int) -> None:
        """The engine's monitor: keep a synapse's gradient at its frame."""
        lay = self.layers.get(agent.name)
        if lay is None:
            return
        self.flush(t)
        leg = self.legs[agent.name]
        frame = (t - leg) / QUANTA
        if frame < self.warm:
            return  # not scored
        slot = self.got.get((lay, frame))
        if slot is None:
            slot = self.got[lay, frame] = {}
            self.last_t[lay, frame] = t - leg + self.longest[lay]
        slot[agent.name] = agent.model.grad

    def flush(self, now: float) -> None:
        """Score the frames no synapse can add to before ``now``, first seen first."""
        got = self.got
        while got:
            key = next(iter(got))
            if self.last_t[key] >= now:
                return
            del self.last_t[key]
            self._score(*key, got.pop(key))

    def _score(self, lay: int, f: float, grads: dict) -> None:
        ns = [n for n in self.names if n in grads]
        g = np.concatenate([grads[n].ravel() for n in ns])
        for store, shown in ((self.cur, f), (self.wave, f - self.lags[lay])):
            r = self.refs[self.stream.pattern(shown)]
            gr = np.concatenate([r[split_synapse(n)].ravel() for n in ns])
            c = cosine(g, gr)
            if not math.isnan(c):
                store.setdefault(lay, []).append(c)
