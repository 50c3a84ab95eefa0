"""Execute a scenario: build the engine, attach recorders, run, summarise.

This is the Nengo-style split: ``scenario`` describes, ``simulation``
executes. ``simulate`` returns the summary as a plain dict; the CLI prints it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

import networkx as nx
import numpy as np

from . import __version__
from .analyses import attach_settling, attach_tracking
from .engine import Engine
from .eventlog import EventLogWriter
from .messages import QUANTA, to_quanta
from .metrics import Traffic, cosine, rel_error
from .network import Network
from .reference import backprop
from .scenario import Scenario

EXACT_TOL = 1e-12


def build_engine(sc: Scenario, net: Network | None = None, hold: float | None = None,
                 **kw) -> tuple[Engine, Network, object]:
    """A ready engine for a scenario (optionally with another hold time)."""
    net = net or sc.build_network()
    stream = sc.build_stream(net, hold)
    kw.setdefault("source_period", getattr(stream, "source_period", 1.0))
    eng = Engine(net, sc.build_rule(), seed=sc.seed, sources=stream.sources(), **kw)
    return eng, net, stream


def log_header(sc: Scenario, agents: list[str]) -> dict:
    """What a log carries to be replayed: the scenario text, seed, agents."""
    return {"scenario": sc.text, "scenario_path": sc.path, "seed": sc.seed,
            "agents": agents, "asyncnet": __version__}


def response_delay(net: Network) -> float:
    """Time for an input change to reach the outputs (longest delay path)."""
    if not nx.is_directed_acyclic_graph(net.graph):
        return 0.0
    g = nx.DiGraph()
    g.add_weighted_edges_from((u, v, p.delay) for (u, v), p in net.projections.items())
    return float(nx.dag_longest_path_length(g, weight="weight"))


def simulate(sc: Scenario, *, log_path: str | None = None,
             progress: Callable[[float], None] | None = None,
             save_state: str | None = None) -> dict:
    """Run a scenario in this process; return its summary."""
    eng, net, stream = build_engine(sc)
    traffic = Traffic(eng.links, net.inputs(), net.outputs(),
                      horizon=to_quanta(4 * response_delay(net) + 4))
    eng.sinks.append(traffic)
    writer = EventLogWriter(log_path, log_header(sc, eng.names)) if log_path else None
    if writer:
        eng.sinks.append(writer)
    kind = sc.analysis.get("kind", "accuracy")
    analyses = attach_analyses(eng, net, stream, sc)
    t0 = time.perf_counter()
    complete = False
    try:
        eng.run(sc.duration, progress)
        complete = True
    finally:
        footer = writer.close(complete=complete) if writer else None
    wall = time.perf_counter() - t0
    summary = {
        "scenario": sc.name, "path": sc.path, "seed": sc.seed, "rule": sc.rule_name,
        "network": describe(net), "duration": sc.duration,
        "wall_seconds": wall, "messages_per_second": eng.messages() / wall if wall else None,
        **traffic.summary(),
    }
    summary.update((key, result()) for key, result in analyses.items())
    if kind == "alignment":
        summary["alignment"] = alignment_sweep(sc, net, progress)
    if writer:
        summary["log"] = {"path": log_path, "records": footer["count"],
                          "bytes": os.path.getsize(log_path), "digest": footer["digest"]}
    if summary.get("diverged") is None:  # any rule: a non-finite or exploded final state
        dv = check_divergence(eng)
        if dv is not None:
            summary["diverged"] = dv
    if save_state:
        np.savez(save_state, **final_state(eng))
        summary["state"] = save_state
    return summary


DIVERGE_LIMIT = 1e12


def check_divergence(eng: Engine) -> dict | None:
    """The first agent (by name) whose final state is not finite or exceeds ``DIVERGE_LIMIT``.

    Returns ``{"agent", "key", "t", "how", "limit"}`` or ``None``; ``t`` is
    ``None``: the state was found so at the end of the run (a scheme that
    watches its own state, as ``stlp`` does, reports the instant instead).
    """
    for name in sorted(eng.agents):
        for key, val in eng.agents[name].model.state().items():
            arr = np.asarray(val)
            if arr.dtype.kind != "f" or not arr.size:
                continue
            bad = not np.all(np.isfinite(arr))
            if bad or np.max(np.abs(arr)) > DIVERGE_LIMIT:
                return {"agent": name, "key": key, "t": None, "limit": DIVERGE_LIMIT,
                        "how": f"{key} {'not finite' if bad else 'exploded'} at the end"}
    return None


def attach_analyses(eng: Engine, net: Network, stream, sc: Scenario) -> dict[str, Callable]:
    """Every analysis the scenario asks for, attached: summary key -> ``result()``.

    Add new analyses here, so distributed runs get them too. An analysis that
    reads agents only through probes (``eng.at``) runs unchanged on any number
    of workers (the cluster gathers the states a probe reads); one that uses
    per-wake monitors needs a merge rule in ``asyncnet/cluster/gather.py``.
    """
    kind = sc.analysis.get("kind", "accuracy")
    if hasattr(eng.rule, "attach"):  # a scheme with its own analyses
        try:
            return eng.rule.attach(eng, net, stream, sc)
        except ValueError as e:
            from .scenario import ScenarioError
            raise ScenarioError(f"{sc.path}: [analysis] {e}") from None
    if getattr(eng.rule, "nudged", False):  # ep, coupled: batches and a nudging teacher
        from .energy_sim import attach_energy
        return attach_energy(eng, net, stream, sc)
    out: dict[str, Callable] = {"result": _attach_evaluation(eng, net, stream, sc)}
    if kind == "exactness":
        out["exactness"] = _attach_exactness(eng, net, stream)
    if kind == "settling":
        out["settling"] = attach_settling(eng, net, stream, sc.analysis)
    if kind == "tracking":
        out["tracking"] = attach_tracking(eng, net, stream, sc.analysis, sc.duration)
    return out


def describe(net: Network) -> dict:
    """Sizes of the network, for the summary."""
    dag = nx.is_directed_acyclic_graph(net.graph)
    return {"populations": len(net.populations), "projections": len(net.projections),
            "neurons": sum(p.size for p in net.populations.values()),
            "synapses": int(sum(p.weight.size for p in net.projections.values())),
            "depth": net.depth() if dag else None, "acyclic": dag}


def final_state(eng: Engine) -> dict[str, np.ndarray]:
    """The ``--save-state`` arrays, keyed as documented in the README."""
    out: dict[str, np.ndarray] = {}
    for name, agent in eng.agents.items():
        if name.startswith("src:"):
            continue
        st = agent.model.state()
        for key, val in st.items():
            if key in ("weight", "grad", "bias", "state", "delta", "input", "target"):
                out[f"{key}/{name}"] = np.asarray(val)
    return out


# -- evaluation: what the network outputs, sampled where a response is due --
def _attach_evaluation(eng: Engine, net: Network, stream, sc: Scenario) -> Callable[[], dict]:
    out = stream.output_node
    D = response_delay(net)
    samples: list[tuple[np.ndarray, np.ndarray]] = []

    def probe(engine: Engine, t: float, shown: float | None = None) -> None:
        # compare the output with the target of the frame whose input caused it
        if out not in engine.agents:
            return
        x = np.array(engine.agents[out].model.state()["state"])
        y = stream.value(out, t if shown is None else shown)
        samples.append((x, np.asarray(y, dtype=float)))

    if stream.kind in ("xor", "piecewise"):
        n_eval = len(stream.inputs)
        frames = []
        f = 0
        while True:
            last = math.ceil((f + 1) * stream.hold) - 1  # last arrival of frame f
            t = last + D + 0.25
            if t >= sc.duration:
                break
            frames.append((t, float(last)))
            f += 1
        for t, shown in frames[-n_eval:]:
            eng.at(t, lambda e, tt, shown=shown: probe(e, tt, shown))
    else:
        start = max(D + 1, sc.duration * 0.9)
        for t in np.arange(math.floor(start) + 0.25, sc.duration, 1.0):
            eng.at(float(t), lambda e, tt: probe(e, tt))

    def result() -> dict:
        if not samples:
            return {"loss": None, "accuracy": None, "evaluated": 0}
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


# -- exactness: every synapse against plain backprop, frame by frame -------
def _synapse_layers(net: Network) -> dict[str, int]:
    layer = net.layer_of()
    return {p.name: layer[p.pre] for p in net.projections.values()}


def _attach_exactness(eng: Engine, net: Network, stream) -> Callable[[], dict]:
    if stream.kind != "constant":
        raise ValueError("the exactness analysis needs a constant data stream")
    u, y = stream.frame_value(0.0)
    ref = backprop(net, {stream.input_node: u}, {stream.output_node: y})["grad"]
    layers = _synapse_layers(net)
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

    eng.monitors.append(monitor)

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

    result.errs = errs  # the accumulator, merged across workers by the cluster
    return result


# -- alignment: streams held k ticks, cosine with the current frame's gradient --
def alignment_sweep(sc: Scenario, net: Network, progress=None) -> dict:
    """Per-layer cosine with the exact gradient, for each hold time k.

    Two references per meeting at frame t: the gradient of the frame shown
    at the input at t ("current"), and of the frame whose input the forward
    wave has carried to the synapse's pre-layer ("wave": shown at t - l).
    """
    holds = sc.analysis.get("holds") or [sc.data.get("hold", 1)]
    L = net.depth()
    warm = float(sc.analysis.get("warmup", 2 * L))
    layers = _synapse_layers(net)
    legs = {p.name: p.legs[0] for p in net.projections.values()}
    rows = []
    for k in holds:
        eng, _, stream = build_engine(sc, net, hold=float(k))
        refs = [backprop(net, {stream.input_node: stream.inputs[i]},
                         {stream.output_node: stream.targets[i]})["grad"]
                for i in range(len(stream.inputs))]
        got: dict[tuple[int, float], dict] = {}

        def monitor(agent, t: int, got=got) -> None:
            if agent.name in layers:
                frame = (t - legs[agent.name]) / QUANTA
                got.setdefault((layers[agent.name], frame), {})[agent.name] = agent.model.grad

        eng.monitors.append(monitor)
        eng.run(sc.duration)
        cur: dict[int, list[float]] = {}
        wave: dict[int, list[float]] = {}
        names = sorted(layers)
        for (lay, f), grads in got.items():
            if f < warm:
                continue
            ns = [n for n in names if n in grads]
            g = np.concatenate([grads[n].ravel() for n in ns])
            for store, shown in ((cur, f), (wave, f - lay)):
                r = refs[stream.pattern(shown)]
                gr = np.concatenate([r[tuple(n.split("->"))].ravel() for n in ns])
                c = cosine(g, gr)
                if not math.isnan(c):
                    store.setdefault(lay, []).append(c)
        rows.append({"hold": k,
                     "current": {lay: float(np.mean(v)) for lay, v in sorted(cur.items())},
                     "wave": {lay: float(np.mean(v)) for lay, v in sorted(wave.items())}})
    return {"depth": L, "warmup": warm, "rows": rows}
