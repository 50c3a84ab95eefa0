"""``result``: what the network outputs, sampled where a response is due."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..network import response_delay
from . import Analysis, AnalysisError, Context

MAX_PROBES = 1_000_000


class Evaluation(Analysis):
    """Loss ½‖x − y‖² (and accuracy for xor and latch) of the network's own output.

    For ``xor`` and ``piecewise`` streams the output is read once per frame
    of the last epoch, a response time after the frame's last input; for
    other streams every unit of the last 10% of the run. With batched data
    every row of a read-out is one sample (loss and accuracy are per sample).
    """

    key = "result"

    def attach(self, ctx: Context) -> Callable[[], dict]:
        """Schedule the read-out probes; return ``result()``."""
        eng, net, stream, duration = ctx.engine, ctx.net, ctx.stream, ctx.scenario.duration
        D = response_delay(net)
        samples: list[tuple[np.ndarray, np.ndarray]] = []

        def probe(engine, t: float, shown: float | None = None) -> None:
            # compare the output with the target of the frame whose input caused it
            try:
                x = stream.read_output(engine)
            except KeyError:  # a scheme's model with no "state" (the protocol asks none):
                return  # no output to read (it failed the run with KeyError: 'state')
            if x is None:
                return
            y = stream.frame_value(t if shown is None else shown)[1]
            samples.append((x, np.asarray(y, dtype=float)))

        if stream.kind in ("xor", "piecewise"):
            batch = getattr(stream, "batch", 1)
            n_eval = -(-len(stream.inputs) // batch)  # frames of one epoch
            frames = []
            f = 0
            while True:
                last = math.ceil((f + 1) * stream.hold) - 1  # last arrival of frame f
                t = last + D + 0.25
                if t >= duration:
                    break
                frames.append((t, float(last)))
                f += 1
            for t, shown in frames[-n_eval:]:
                eng.at(t, lambda e, tt, shown=shown: probe(e, tt, shown))
        else:
            start = max(D + 1, duration * 0.9)
            if duration - start > MAX_PROBES:
                raise AnalysisError(f"reading the output every unit of the last 10% of the run "
                                    f"would take {duration - start:.3g} probes (at most "
                                    f"{MAX_PROBES:,}): shorten the run")
            for t in np.arange(math.floor(start) + 0.25, duration, 1.0):
                eng.at(float(t), lambda e, tt: probe(e, tt))

        def result() -> dict:
            if not samples:
                return {"loss": None, "accuracy": None, "evaluated": 0}
            rows = [(xr, yr) for x, y in samples
                    for xr, yr in zip(*np.broadcast_arrays(np.atleast_2d(x), np.atleast_2d(y)),
                                      strict=True)]
            if len(rows) != len(samples):  # batched read-outs: one sample per row
                samples[:] = rows
            losses = [0.5 * float(np.sum((x - y) ** 2)) for x, y in samples]
            res = {"loss": float(np.mean(losses)), "evaluated": len(samples), "accuracy": None}
            if stream.kind == "xor":
                hits = sum(bool(np.all(np.sign(x) == np.sign(y))) for x, y in samples)
                res["accuracy"] = hits / len(samples)
            elif stream.kind == "latch":  # right sign, and at least half the target's size
                hits = sum(bool(np.all((x * y > 0) & (np.abs(x) >= 0.5 * np.abs(y))))
                           for x, y in samples)
                res["accuracy"] = hits / len(samples)
            return res

        return result

    def report(self, r: dict) -> list[str]:
        """One line: loss and accuracy."""
        if not r or r.get("loss") is None:
            return []
        acc = "" if r.get("accuracy") is None else f"   accuracy {100 * r['accuracy']:.1f}%"
        return [f"result    loss {r['loss']:.3g}{acc}  "
                f"(network output at {r['evaluated']} response times, end of run)"]
