"""STLP's data streams and analyses (the scheme's stream kinds and its summary).

Streams (one value per unit of time = one step) of a target signal of
period ``period`` steps and amplitude ``target_scale``: ``sine``, ``sines``
(a sum of three sinusoids, periods P, P/2, P/3) and ``square``. With
``lag`` the input is the signal itself (amplitude 1) and the target is the
signal ``lag`` steps earlier (a driven task: delay and shape it); without,
a constant input (default 1 on every input neuron) drives a network that
must *generate* the signal; ``constant`` is the fixed-point stream (input and target drawn
from the seed, or given).

Analyses (read at the end of the run through probes, so they run unchanged
on any number of workers):

- ``tracking``: the online tracking MSE (mean over steps and output units of
  ``(x − y)²``, accumulated by the output neuron itself), over the whole
  stream and over its last 20%; the **free-run MSE**: weights frozen at
  their final values, the network runs on from its final state for
  ``free_run`` steps (the numpy face, :class:`~asyncnet.schemes.stlp.Dense`)
  and is compared with the stream's continuation; and the same network with
  its *initial* weights frozen over the whole stream (the "frozen" baseline).
- ``exactness``: constant input and target, frozen weights: every costate
  and every synapse's ``δ xᵀ`` against an independent fixed-point solve
  (:func:`~asyncnet.schemes.stlp_reference.fixed_point`): the backprop delta
  on a DAG, Almeida–Pineda on a graph with cycles.

Divergence (an agent's state non-finite or past ``DIVERGE_LIMIT``, at the
agent's own simulated time) is reported by the pipeline for every scheme.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ...analysis.divergence import diverged
from ...data import DataError, Stream
from ...data import make_stream as base_stream
from ...network import Network, agent_rng, check_dense
from .physics import Dense
from .reference import fixed_point

KINDS = ("sine", "sines", "square", "constant")


class TargetStream(Stream):
    """A periodic target; the input is constant (a generator task) or the
    unlagged signal itself (``driven``: the target is the signal ``lag`` steps ago)."""

    amp: float = 0.8
    driven: bool = False

    def value(self, node: str, t: float) -> np.ndarray | None:
        """The value shown to ``node`` at time ``t``."""
        if node == self.input_node:
            if self.driven:
                return target(self.kind, t, self.period, 1.0) * np.ones(self.inputs.shape[1])
            return self.inputs[0]
        if node == self.output_node:
            return (target(self.kind, t - self.lag, self.period, self.amp)
                    * np.ones(self.targets.shape[1]))
        return None


def target(kind: str, t: float, period: float, amp: float) -> float:
    """The target signal at step ``t``.

    Parameters
    ----------
    kind : ``sine``, ``sines`` or ``square``.
    t : the step (time).
    period : steps per period.
    amp : amplitude.

    Returns
    -------
    The target value.
    """
    ph = 2 * np.pi * t / period
    if kind == "sine":
        return amp * math.sin(ph)
    if kind == "sines":
        return amp * (0.5 * math.sin(ph) + 0.3 * math.sin(2 * ph + 1.0)
                      + 0.2 * math.sin(3 * ph + 2.0))
    return amp if (t % period) < period / 2 else -amp


def make_stream(kind: str, *, n_in: int, n_out: int, input_node: str, output_node: str,
                seed: int, duration: float, period: float = 100.0,
                target_scale: float = 0.8, input: list | None = None,
                target: list | None = None, lag: float | None = None, **extra) -> Stream:
    """One of the scheme's streams (see the module docstring).

    Parameters
    ----------
    kind : ``sine``, ``sines``, ``square`` or ``constant``.
    n_in, n_out, input_node, output_node, seed, duration : as for
        :func:`asyncnet.data.make_stream`.
    period, target_scale, lag, input, target : the ``[data]`` keys.

    Returns
    -------
    A :class:`~asyncnet.data.Stream`; raises ``DataError`` on a bad key or value.
    """
    if kind not in KINDS:
        raise DataError(f"unknown data kind {kind!r} for rule 'stlp' (known: {', '.join(KINDS)})")
    if extra:
        raise DataError(f"key {sorted(extra)[0]!r} does not apply to rule 'stlp' "
                        f"(keys: kind, period, target_scale, lag, input, target)")
    if kind == "constant":
        return base_stream("constant", n_in=n_in, n_out=n_out, input_node=input_node,
                           output_node=output_node, seed=seed, duration=duration,
                           input=input, target=target)
    if target is not None:
        raise DataError(f"key 'target' does not apply to kind {kind!r} (it is generated)")
    if lag is not None and input is not None:
        raise DataError("give either 'lag' (the input is the signal) or 'input' (constant)")
    if not period >= 2:
        raise DataError(f"period must be at least 2 steps, got {period}")
    u = np.ones((1, n_in)) if input is None else np.array([input], dtype=float)
    if u.shape[1] != n_in:
        raise DataError(f"input has {u.shape[1]} values but population {input_node!r} "
                        f"has size {n_in}")
    st = TargetStream(kind, u, np.zeros((1, n_out)), 1.0, np.zeros(1, dtype=int),
                      input_node, output_node, float(period), float(lag or 0.0))
    st.amp, st.driven = float(target_scale), lag is not None
    return st


def sequences(stream: Stream, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """``(U, Y)`` for steps ``0..steps`` as the engine sees them.

    The first control value arrives at t = 1, so ``U[0] = 0`` and ``Y[0]`` is
    NaN (no target at step 0); ``U[t]``, ``Y[t]`` are the stream at ``t``.

    Parameters
    ----------
    stream : the stream; steps : the last step.

    Returns
    -------
    ``(U, Y)``, arrays of ``steps + 1`` rows.
    """
    u0, y0 = stream.frame_value(1.0)
    U = np.zeros((steps + 1, np.size(u0)))
    Y = np.full((steps + 1, np.size(y0)), np.nan)
    for t in range(1, steps + 1):
        u, y = stream.frame_value(float(t))
        U[t], Y[t] = u, y
    return U, Y


def last_probe_time(duration: float, frac: float = 1.0) -> float:
    """The probe instant ``k + 0.75`` just before ``frac × duration`` (after step k)."""
    return math.ceil(frac * duration - 0.75) - 1 + 0.75


def read_states(engine, names: list[str]) -> dict[str, dict]:
    """Copies of the named agents' states (a probe).

    Parameters
    ----------
    engine : an engine or probe engine; names : agent names.

    Returns
    -------
    ``{name: {key: array}}``.
    """
    return {n: {k: np.array(v, copy=True) for k, v in engine.agents[n].model.state().items()}
            for n in names}


def load_dense(net: Network, states: dict[str, dict]) -> tuple[Dense, dict]:
    """A :class:`Dense` network and state filled from the agents' states.

    Parameters
    ----------
    net : the network; states : every agent's state (:func:`read_states`).

    Returns
    -------
    ``(dense, state)``.
    """
    d = Dense(net)
    st = d.initial()
    for (u, v), p in net.projections.items():
        st["W"][d.slices[v], d.slices[u]] = states[p.name]["weight"]
    for n in net.populations:
        st["x"][d.slices[n]] = states[n]["state"]
        st["p"][d.slices[n]] = states[n]["p"]
        st["b"][d.slices[n]] = states[n]["bias"]
    return d, st


def initial_x(net: Network, seed: int, init_state: str, d: Dense) -> np.ndarray:
    """The activities every neuron agent starts from (its own stream's first draw).

    Parameters
    ----------
    net, seed, init_state : the scenario's; d : its :class:`Dense` layout.

    Returns
    -------
    A length-``N`` vector.
    """
    x = np.zeros(d.N)
    if init_state == "random":
        for n, p in net.populations.items():
            if p.role != "input":
                x[d.slices[n]] = agent_rng(seed, n).standard_normal(p.size)
    return x


def attach(eng, net: Network, stream, sc) -> dict[str, Callable]:
    """Attach the scenario's STLP analysis (probes only: runs on any backend).

    Parameters
    ----------
    eng : an engine or the cluster's probe engine; net, stream, sc : the run's.

    Returns
    -------
    ``{"stlp": result()}`` (empty for kind ``none``); raises ``ValueError``
    for an analysis kind the scheme does not have. Divergence is reported by
    the pipeline (:mod:`asyncnet.analysis.divergence`) from the agents'
    ``diverged_at``.
    """
    kind = sc.analysis.get("kind", "tracking")
    if kind not in ("tracking", "exactness", "none"):
        raise ValueError(f"analysis kind {kind!r} does not apply to rule 'stlp' "
                         f"(use tracking, exactness or none)")
    # the analyses flatten the net to a dense N × N face (which kind "none" does not)
    check_dense(sum(p.size for p in net.populations.values()),
                'use [analysis] kind = "none", or fewer neurons')
    steps = free_run_steps(stream)
    if kind == "tracking" and steps > FREE_RUN_SPAN * max(sc.duration, 200):
        # the free run is a step-by-step recursion after the run: 2 × a huge period
        # ran out of memory (or for ever) once the whole run was done
        raise ValueError(f"the tracking analysis's free run is 2 × [data] period = "
                         f"{float(steps):.3g} steps, more than {FREE_RUN_SPAN} times the "
                         f"scenario's duration {sc.duration:g}: shorten the period, "
                         f"lengthen the run or use [analysis] kind = \"none\"")
    names = sorted(net.populations) + sorted(p.name for p in net.projections.values())
    got: dict = {}
    t_end = last_probe_time(sc.duration)
    outs = net.outputs()
    eng.at(t_end, lambda e, t: got.update(end=read_states(e, names)))
    if kind == "tracking":
        eng.at(last_probe_time(sc.duration, 0.8),
               lambda e, t: got.update(mid=read_states(e, outs)))
    rule = eng.rule
    if kind == "tracking":
        return {"stlp": lambda: _tracking(net, stream, sc, rule, got)}
    if kind == "exactness":
        return {"stlp": lambda: _exactness(net, stream, rule, got)}
    return {}


def _mse(states: dict, outs: list[str]) -> tuple[float, int]:
    s = sum(float(states[o]["se_sum"][0]) for o in outs)
    n = sum(int(states[o]["se_count"][0]) for o in outs)
    return s, n


FREE_RUN_SPAN = 10
"""The tracking analysis's free run may be this many times the run's duration at most."""


def free_run_steps(stream: Stream) -> int:
    """Steps of the tracking analysis's free run: two of the target's periods, at least 200."""
    period = getattr(stream, "period", 0.0) or 100.0
    return int(max(200, 2 * period))


def _tracking(net: Network, stream, sc, rule, got: dict) -> dict:
    if "end" not in got:
        return {}
    end = got["end"]
    outs = net.outputs()
    s1, n1 = _mse(end, outs)
    s0, n0 = _mse(got.get("mid", end), outs)
    res = {"tracking_mse": s1 / n1 if n1 else None,
           "tracking_mse_last20": (s1 - s0) / (n1 - n0) if n1 > n0 else None}
    H = free_run_steps(stream)
    # the step index the final state belongs to: the output's own steps when
    # synchronous; with own timers, the time (one step of the stream per unit)
    t0 = (int(end[outs[0]]["steps"][0]) if rule.mode == "sync"
          else int(math.floor(last_probe_time(sc.duration))))
    frozen = replace(rule, beta=0.0, learn_bias=False)
    res["free_run_mse"] = None
    if diverged(end) is None:
        # the free run is the synchronous recursion (also after an async run)
        d, st = load_dense(net, end)
        U, Y = sequences(stream, t0 + H)
        _, se = d.run(frozen, U, Y, st, t0=t0, steps=H)
        res["free_run_mse"] = float(np.nanmean(se) / len(d.outputs))
    res["free_run_steps"] = H
    d = Dense(net)
    U, Y = sequences(stream, t0)
    st0 = d.initial(initial_x(net, sc.seed, rule.init_state, d))
    _, se0 = d.run(frozen, U, Y, st0, 0, t0)
    res["frozen_initial_mse"] = float(np.nanmean(se0) / len(d.outputs))
    res["steps"] = t0
    res["output_steps"] = int(end[outs[0]]["steps"][0])
    return res


def _exactness(net: Network, stream, rule, got: dict) -> dict:
    if "end" not in got:
        return {}
    end = got["end"]
    d, st = load_dense(net, end)
    u, y = stream.frame_value(1.0)
    ref = fixed_point(st["W"], st["b"], d.mask, d.act_names, d.inputs, d.outputs,
                      np.asarray(u, float), np.asarray(y, float), rule.gamma, rule.q)
    ref_th = fixed_point(st["W"], st["b"], d.mask, d.act_names, d.inputs, d.outputs,
                         np.asarray(u, float), np.asarray(y, float), rule.gamma, rule.q,
                         theta_rate=rule.theta / rule.dt)
    hid = d.learn
    p = st["p"]

    def rel(a, b):  # max-abs relative error max|a − b| / max|b| (absolute if b = 0)
        m = float(np.max(np.abs(b))) if b.size else 0.0
        return float(np.max(np.abs(a - b)) / m) if m > 0 else float(np.max(np.abs(a - b)))

    gref_all, g_all = [], []
    for (a_, b_), pr in net.projections.items():
        g = end[pr.name]["grad"]
        gr = np.outer(ref["delta"][d.slices[b_]], ref["x"][d.slices[a_]])
        g_all.append(g.ravel())
        gref_all.append(gr.ravel())
    g_all_v, gref_v = np.concatenate(g_all), np.concatenate(gref_all)
    gerr = rel(g_all_v, gref_v)
    import networkx as nx
    dag = nx.is_directed_acyclic_graph(net.graph)
    return {"reference": "backprop" if dag else "Almeida-Pineda (recurrent backprop)",
            "acyclic": dag, "costate_error": rel(p[hid], ref["p"][hid]),
            "grad_error": gerr, "activity_error": rel(st["x"], ref["x"]),
            "grad_cosine": float(g_all_v @ gref_v / (np.linalg.norm(g_all_v)
                                                      * np.linalg.norm(gref_v))),
            "costate_error_vs_theta_fixed_point": rel(p[hid], ref_th["p"][hid]),
            "theta": rule.theta, "dt": rule.dt,
            "spectral_radius": ref["spectral_radius"]}


def report(cache: dict) -> list[str]:
    """Summary lines for the STLP analyses.

    Parameters
    ----------
    cache : the computed ``stlp`` and ``diverged`` results.

    Returns
    -------
    Lines for the human-readable summary.
    """
    lines = []
    s = cache.get("stlp") or {}
    if "tracking_mse" in s:
        def g(v):
            return "n/a" if v is None else f"{v:.4g}"
        lines.append(f"stlp      tracking MSE {g(s['tracking_mse'])} over {s['output_steps']:,} "
                     f"output steps "
                     f"(last 20%: {g(s['tracking_mse_last20'])}); free run after freezing "
                     f"{g(s['free_run_mse'])} ({s['free_run_steps']:,} steps)")
        lines.append(f"          initial weights frozen over the stream: MSE "
                     f"{g(s['frozen_initial_mse'])}")
    if "costate_error" in s:
        lines.append(f"stlp      fixed point vs {s['reference']} (independent solve, "
                     f"max-abs relative error max|e-e*|/max|e*|): "
                     f"costates {s['costate_error']:.2e}, "
                     f"synapse grads {s['grad_error']:.2e} (cosine {s['grad_cosine']:.6f}), "
                     f"activities "
                     f"{s['activity_error']:.2e}")
        lines.append(f"          vs the dissipative fixed point (theta/dt = "
                     f"{s['theta'] / s['dt']:g}): {s['costate_error_vs_theta_fixed_point']:.2e};"
                     f" spectral radius of J {s['spectral_radius']:.3f}")
    return lines
