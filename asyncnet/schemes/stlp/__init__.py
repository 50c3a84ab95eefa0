"""STLP / Hamiltonian learning (SCHEMES.md §3), one package.

- :mod:`.physics`: parameters, neuron and synapse physics, and ``Dense``, a
  plain-numpy copy of the same recursion;
- :mod:`.tasks`: its stream kinds (``sine``, ``sines``, ``square``,
  ``constant``) and analyses (``tracking``, ``exactness``);
- :mod:`.reference`: independent references written from scratch (BPTT,
  truncated BPTT, RTRL, the fixed-point solve); imports nothing of the scheme.

The scheme class registered as ``stlp`` is :class:`STLPScheme`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from ...analysis import Analysis, AnalysisError, Context
from ...data import DataError, Stream
from . import tasks
from .physics import STLP, Dense  # noqa: F401  (re-exported)


class STLPAnalysis(Analysis):
    """``stlp``: tracking or fixed-point figures, read through probes (any backend)."""

    key = "stlp"

    def attach(self, ctx: Context) -> Callable[[], Any]:
        """The scheme's probes for the scenario's ``[analysis] kind``."""
        try:
            fns = tasks.attach(ctx.engine, ctx.net, ctx.stream, ctx.scenario)
        except ValueError as e:
            raise AnalysisError(str(e)) from None
        return fns.get("stlp", lambda: None)

    def report(self, value: Any) -> list[str]:
        """The scheme's summary lines."""
        return tasks.report({"stlp": value})


@dataclass
class STLPScheme(STLP):
    """The rule ``stlp``: :class:`~.physics.STLP`'s parameters and physics, with
    the scheme's stream kinds and analyses."""

    analyses: ClassVar[dict] = {"tracking": (STLPAnalysis,), "exactness": (STLPAnalysis,),
                                "none": ()}
    default_analysis: ClassVar[str] = "tracking"

    def stream(self, data: dict, net, inp: str, out: str, seed: int,
               duration: float) -> Stream:
        """The scheme's data stream for ``[data]`` (see :func:`.tasks.make_stream`).

        Parameters
        ----------
        data:
            The ``[data]`` table (with ``kind``), without the node names.
        net:
            The network.
        inp, out:
            The input and output populations.
        seed, duration:
            The scenario's.

        Returns
        -------
        A :class:`~asyncnet.data.Stream`.
        """
        d = dict(data)
        kind = d.pop("kind", "constant")
        unread = sorted(set(d) & {"period", "target_scale", "lag"}) if kind == "constant" else ()
        if unread:  # a constant input and target: the signal's keys did nothing
            raise DataError(f"key {unread[0]!r} does not apply to data kind 'constant' "
                            f"(its keys: input, target)")
        return tasks.make_stream(kind, n_in=net.populations[inp].size,
                                 n_out=net.populations[out].size, input_node=inp,
                                 output_node=out, seed=seed, duration=duration, **d)
