"""The one pipeline: a Scenario -> a planned run -> a backend -> a summary.

``scenario`` describes, this module executes (the Nengo split). The plan of
a run is the same for every backend: the network, the scheme, the data
stream and the analyses the scheme attaches for the scenario's ``[analysis]
kind``. :func:`simulate` runs it in this process;
:func:`asyncnet.cluster.simulate_distributed` runs it on worker processes;
both end in :func:`summarize`, so the summary is assembled in one place.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable

import networkx as nx
import numpy as np

from ._version import __version__
from .analysis import Analysis, AnalysisError, Context
from .analysis.divergence import Divergence
from .capture import Captured, send_table
from .engine import Engine
from .eventlog import EventLogWriter
from .ids import is_source
from .messages import QUANTA, Message, to_quanta
from .metrics import Traffic
from .network import Network, traffic_horizon
from .outputs import npz_name, save_npz, sidecar_path
from .scenario import Scenario, ScenarioError

SAVED_KEYS = ("weight", "grad", "bias", "state", "delta", "input", "target")
"""The ``--save-state`` keys: ``<key>/<agent>`` for every agent that exposes them."""


def build_engine(sc: Scenario, net: Network | None = None, hold: float | None = None,
                 rule_params: dict | None = None, **kw) -> tuple[Engine, Network, object]:
    """A ready engine for a scenario.

    Parameters
    ----------
    sc:
        The scenario.
    net:
        A network already built from it (else built here).
    hold:
        Another hold time for the data stream (sweeps).
    rule_params:
        Scheme parameters that override the scenario's (checks, sweeps).
    **kw:
        Passed to :class:`~asyncnet.engine.Engine` (``local``, ``remote``).

    Returns
    -------
    ``(engine, network, stream)``.
    """
    if rule_params:
        sc = sc.with_params(**rule_params)
    net = net or sc.build_network()
    stream = sc.build_stream(net, hold)
    kw.setdefault("source_period", getattr(stream, "source_period", 1.0))
    eng = Engine(net, sc.build_rule(), seed=sc.seed, sources=stream.sources(), **kw)
    return eng, net, stream


def analyses_of(sc: Scenario) -> list[Analysis]:
    """The analyses the scenario's scheme attaches for its ``[analysis] kind``."""
    rule = sc.build_rule()
    table = getattr(rule, "analyses", {"none": ()})
    kind = sc.analysis.get("kind") or getattr(rule, "default_analysis", "none")
    if kind not in table:
        raise ScenarioError(f"{sc.path}: [analysis] kind {kind!r} does not apply to rule "
                            f"{sc.rule_name!r} (use {', '.join(sorted(table))})")
    return [cls() for cls in table[kind]]


def context(sc: Scenario, eng, net: Network, stream, progress=None) -> Context:
    """The :class:`~asyncnet.analysis.Context` analyses of this run see."""
    def rebuild(rule_params: dict | None = None, hold: float | None = None):
        return build_engine(sc, net if rule_params is None else None, hold=hold,
                            rule_params=rule_params)

    return Context(eng, net, stream, sc, eng.rule, rebuild, progress)


def attach_analyses(sc: Scenario, ctx: Context) -> list[tuple[Analysis, Callable]]:
    """Attach every analysis of the run: ``[(analysis, result)]``."""
    out = []
    for a in [*analyses_of(sc), Divergence()]:
        try:
            out.append((a, a.attach(ctx)))
        except AnalysisError as e:
            raise ScenarioError(f"{sc.path}: [analysis] {e}") from None
    return out


def log_header(sc: Scenario, agents: list[str]) -> dict:
    """What a log carries to be replayed: the scenario text, seed, agents."""
    return {"scenario": sc.text, "scenario_path": sc.path, "seed": sc.seed,
            "agents": agents, "asyncnet": __version__}


def new_traffic(links: dict, net: Network) -> Traffic:
    """The traffic counter of a run (locality, delays, input-to-update latency)."""
    return Traffic(links, net.inputs(), net.outputs(), horizon=to_quanta(traffic_horizon(net)))


def feed_traffic(eng: Engine, traffic: Traffic) -> None:
    """Feed ``traffic`` every instant of ``eng``, with the instant's messages the
    engine did not send along a route (``Engine.offroute``): the others travel
    one link with its delay by construction, so only these are looked up.
    Where the engine has a recorder already (the event log's), the counts
    are taken from the sends it captures (:meth:`~asyncnet.metrics.Traffic.sends`):
    call this after the log's writer is attached.

    Parameters
    ----------
    eng:
        the engine.
    traffic:
        the counter.
    """
    if eng.recorders:  # the log's capture is on: counted from one entry a send
        held: list[list[list[Message]]] = []
        eng.instant_sinks.append(held.append)

        def recorder(captured: Captured) -> None:  # after the sinks, every instant they ran
            batches = held.pop() if held else []
            if captured.sends is None:
                traffic.instant(captured.batches or [], eng.offroute)
            elif traffic.small(batches):  # counted message by message: no send table made
                traffic.instant(batches, eng.offroute)
            else:
                traffic.sends(captured, send_table(captured.sends), batches, eng.offroute)
        eng.record(recorder)
        return
    eng.instant_sinks.append(lambda batches: traffic.instant(batches, eng.offroute))


def summarize(sc: Scenario, net: Network, traffic: Traffic,
              analyses: list[tuple[Analysis, Callable]], *, wall: float,
              log_path: str | None = None, footer: dict | None = None,
              save_state: str | None = None, log_file: str | None = None) -> dict:
    """The summary of a run, whichever backend ran it."""
    delivered = sum(traffic.count)
    summary = {
        "scenario": sc.name, "path": sc.path, "seed": sc.seed, "rule": sc.rule_name,
        "network": describe(net), "duration": sc.duration,
        "wall_seconds": wall, "messages_per_second": delivered / wall if wall else None,
        **traffic.summary(),
    }
    report: list[str] = []
    for a, result in analyses:
        value = result()
        if value is None and isinstance(a, Divergence):
            continue  # the key is there only when the run diverged
        summary[a.key] = value
        if a.key != "result":  # the result line is printed with the run's head
            report += a.report(value)
    if report:
        summary["report"] = report
    if footer is not None and log_path:
        summary["log"] = {"path": log_path, "records": footer["count"],
                          "bytes": os.path.getsize(log_file or log_path),
                          "digest": footer["digest"]}
    if save_state:
        summary["state"] = npz_name(save_state)  # the file numpy wrote ("x" -> "x.npz")
    return summary


def simulate(sc: Scenario, *, log_path: str | None = None,
             progress: Callable[[float], None] | None = None,
             save_state: str | None = None, attach: list[Callable[[Context], None]] = (),
             final: dict | None = None, checkpoint_every: float | None = None,
             checkpoint_dir: str | None = None, resume: dict | None = None,
             meta: dict | None = None) -> dict:
    """Run a scenario in this process (the in-process backend); return its summary.

    Parameters
    ----------
    sc:
        The scenario.
    log_path:
        Where to write the event log (``None``: no log).
    progress:
        Called with the simulated time as the run advances.
    save_state:
        An ``.npz`` path for the final state (keys ``<key>/<agent>``).
    attach:
        Functions called with the run's analysis context before it starts
        (recorders register their probes there).
    final:
        If given, filled with the final state arrays (as ``save_state``).
    checkpoint_every:
        Write a checkpoint at simulated times T, 2T, ... (``None``: none).
    checkpoint_dir:
        Where the checkpoints go (needed with ``checkpoint_every``).
    resume:
        A checkpoint (:func:`asyncnet.checkpoint.read`) to continue from: the
        log is truncated to its position and appended to.
    meta:
        More options to store in the checkpoints (a recorder's set-up).

    Returns
    -------
    The summary dict.
    """
    from . import checkpoint as ckp
    sc = sc.current()  # changed since validated: the log embeds what runs
    eng, net, stream = build_engine(sc)
    traffic = new_traffic(eng.links, net)
    # a resumed run writes where the first one did, whatever directory it runs in
    old = (resume or {}).get("meta", {})
    log_file = (old.get("log_file") or os.path.abspath(log_path)) if log_path else None
    state_file = (old.get("save_state_file") or os.path.abspath(save_state)) \
        if save_state else None
    writer = EventLogWriter(log_file, log_header(sc, eng.names)) if log_path else None
    if writer:
        writer.end = to_quanta(sc.duration)  # its records projected there (the packing loop)
        eng.record(writer.record)
    feed_traffic(eng, traffic)  # (after the writer: counted from its sends)
    ctx = context(sc, eng, net, stream, progress)
    analyses = attach_analyses(sc, ctx)
    for fn in attach:
        fn(ctx)
    # what a checkpoint captures beyond the agents, in an order a fresh build repeats
    roots = [*(fn for _, fn in analyses), *(a for a, _ in analyses), *attach, traffic,
             eng.monitors]
    shared = [eng.rule, net, stream, sc]
    skip = [*shared, eng, eng.env, ctx, eng.links, eng.agents, eng.sinks, eng.names, writer]
    wall0 = 0.0
    if resume is not None:
        digest = None
        if writer:  # the log's prefix, checked (again, unless the caller just did)
            digest = resume.get("log_hash") or ckp.check_log(log_file, writer._head,
                                                             resume["log"])
        for name, agent in eng.agents.items():
            if name not in resume["agents"]:
                raise ckp.CheckpointError(f"the checkpoint has no state for agent {name!r}")
            ckp.restore_agent(eng, agent, resume["agents"][name])
        ckp.restore_global(eng, roots, resume["global"])
        ckp.resume_clock(eng, resume["t"])
        if writer:
            ckp.restore_writer(writer, resume["log"], digest)
        wall0 = float(resume.get("wall", 0.0))
    stops = checkpoint_times(sc.duration, checkpoint_every, eng.env.now)
    info = checkpoint_meta(sc, log_path, log_file, save_state, state_file, checkpoint_every,
                           checkpoint_dir, meta)
    t0 = time.perf_counter()
    complete = False
    try:
        for tq in stops:
            eng.run(tq / QUANTA, progress)
            body = {"t": tq, "scenario_id": ckp.scenario_id(sc.text, sc.seed), "meta": info,
                    "agents": {n: ckp.capture_agent(eng, a, shared) for n, a in eng.agents.items()},
                    "global": ckp.capture_global(eng, roots, skip),
                    "log": ckp.log_position(writer) if writer else None,
                    "wall": wall0 + time.perf_counter() - t0}
            # a new run's first checkpoint replaces those of an earlier run
            ckp.write(checkpoint_dir, body, replace=resume is None and tq == stops[0])
        eng.run(sc.duration, progress)
        complete = True
    finally:
        ckp.release(checkpoint_dir)
        footer = writer.close(complete=complete) if writer else None
        if writer and writer.failed is None:  # the log is this run's now: an earlier
            # distributed run's figures beside it had its very digest, and stats showed them
            with contextlib.suppress(FileNotFoundError):
                os.remove(sidecar_path(log_file))
    wall = wall0 + time.perf_counter() - t0
    state = final_state(eng) if (save_state or final is not None) else {}
    if save_state:
        save_npz(state_file, state)
    if final is not None:
        final.update(state)
    return summarize(sc, net, traffic, analyses, wall=wall, log_path=log_path,
                     footer=footer, save_state=save_state, log_file=log_file)


def checkpoint_meta(sc: Scenario, log_path: str | None, log_file: str | None,
                    save_state: str | None, state_file: str | None,
                    checkpoint_every: float | None, checkpoint_dir: str | None,
                    meta: dict | None) -> dict:
    """What a checkpoint says of its run, to resume it (whichever backend wrote it).

    Parameters
    ----------
    sc:
        The scenario (its text is embedded).
    log_path, log_file:
        The log as given and as an absolute path (``None``: no log).
    save_state, state_file:
        The ``--save-state`` path as given and absolute.
    checkpoint_every, checkpoint_dir:
        The checkpoint period and directory (a resumed run goes on writing them).
    meta:
        More options (a recorder's set-up).

    Returns
    -------
    The ``meta`` map of a checkpoint.
    """
    return {"scenario_path": sc.path, "scenario_text": sc.text, "seed": sc.seed,
            "log": log_path, "log_file": log_file, "save_state": save_state,
            "save_state_file": state_file, "checkpoint_every": checkpoint_every,
            "checkpoint_dir": os.path.abspath(checkpoint_dir) if checkpoint_dir else None,
            "duration": sc.duration, "asyncnet": __version__, **(meta or {})}


def checkpoint_times(duration: float, every: float | None, now: int) -> list[int]:
    """The instants (quanta) after ``now`` and before the end at which to checkpoint.

    Parameters
    ----------
    duration:
        The run's duration.
    every:
        The checkpoint period (``None``: no checkpoints).
    now:
        The current instant (a resumed run's checkpoint).

    Returns
    -------
    Increasing instants ``k * every`` in quanta, ``now < t < duration``.
    """
    if every is None:
        return []
    step, end = to_quanta(every), to_quanta(duration)
    if step <= 0:
        raise ScenarioError(f"checkpoint period must be positive, got {every!r}")
    first = now // step + 1
    return [k * step for k in range(first, (end - 1) // step + 1)]


def describe(net: Network) -> dict:
    """Sizes of the network, for the summary."""
    dag = nx.is_directed_acyclic_graph(net.graph)
    return {"populations": len(net.populations), "projections": len(net.projections),
            "neurons": sum(p.size for p in net.populations.values()),
            "synapses": int(sum(p.shape[0] * p.shape[1] for p in net.projections.values())),
            "depth": net.depth() if dag else None, "acyclic": dag}


def final_state(eng: Engine) -> dict[str, np.ndarray]:
    """The ``--save-state`` arrays, keyed ``<key>/<agent>`` as documented."""
    out: dict[str, np.ndarray] = {}
    for name, agent in eng.agents.items():
        if is_source(name):
            continue
        st = agent.model.state()
        for key, val in st.items():
            if key in SAVED_KEYS:
                out[f"{key}/{name}"] = np.asarray(val)
    return out
