"""The Python API of a run: ``run(scenario, ...) -> Result``, with recorders.

    import asyncnet
    sc = asyncnet.Scenario.from_toml("scenarios/quickstart.toml")
    res = asyncnet.run(sc, workers=2, record={"l1": ["state", "delta"]}, log="runs/q.log")
    res.summary["result"], res.recorded["l1"]["state"], res.state("l0->l1")["weight"]

The same call runs in this process (``workers=1``) or on local worker
processes (``workers=N``), with the same summary, the same recordings and
the same event log bytes.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Iterable

import numpy as np

from .apiargs import check_path, check_progress, check_workers
from .checkpoint import CheckpointError, Found, candidates, check_log, latest, scenario_id
from .ckcheck import RunComplete, check_fields, check_log_counts, completed
from .ckfile import MAGIC, held
from .messages import QUANTA, to_quanta
from .outputs import check_apart, check_output, npz_name, same_file
from .recording import Recorder, Result, recorder_for
from .scenario import Scenario, ScenarioError, load
from .simulation import simulate


def run(scenario: Scenario | str, *, workers: int = 1, log: str | None = None,
        record: dict[str, Iterable[str]] | Recorder | None = None,
        period: float | None = None,
        save_state: str | None = None,
        progress: Callable[[float], None] | bool | None = None,
        cluster: bool = False, checkpoint_every: float | None = None,
        checkpoint_dir: str | None = None, restart_workers: int = 0) -> Result:
    """Run a scenario and return its :class:`Result`.

    The arguments decide what is written and where it runs: a scenario's
    ``[output]`` (log, saved state, checkpoints) and ``[cluster]`` tables are
    the command line's (``asyncnet run FILE``) and are not read here; no log
    is written unless ``log`` is given.

    Parameters
    ----------
    scenario:
        A :class:`~asyncnet.scenario.Scenario`, or the path of a scenario file.
    workers:
        1: in this process; N > 1: on N local worker processes (same results).
    log:
        Where to write the event log (``None``: no log).
    record:
        ``{agent: [variable, ...]}`` to sample every ``period``, or a
        :class:`Recorder`.
    period:
        The sampling period of ``record`` given as a dict (default 1); refused
        without one.
    save_state:
        An ``.npz`` path for the final state.
    progress:
        Called with the simulated time as the run advances; ``True``: a
        progress bar (tqdm) on stderr or in the notebook.
    cluster:
        Run on the cluster backend even with one worker.
    checkpoint_every:
        Write a checkpoint at simulated times T, 2T, ... (see :func:`resume`).
    checkpoint_dir:
        Where (default: ``LOG.ckpt`` next to the log, else ``runs/<name>.ckpt``).
    restart_workers:
        On workers, with checkpoints: restart every worker from the last
        checkpoint when one is lost, at most this many times.

    Returns
    -------
    The :class:`Result`.
    """
    if not isinstance(scenario, (Scenario, str, os.PathLike)):
        raise TypeError(f"scenario must be an asyncnet.Scenario or a scenario file's path, "
                        f"got {type(scenario).__name__}")
    for name, value in (("log", log), ("save_state", save_state),
                        ("checkpoint_dir", checkpoint_dir)):
        check_path(name, value)
    sc = scenario if isinstance(scenario, Scenario) else Scenario.from_toml(scenario)
    _check_pipeline(sc)
    workers = check_workers(workers)
    check_progress(progress)
    if progress is True:
        from .commands import Progress
        progress = Progress(sc.duration, sc.name)
    elif progress is False:
        progress = None
    rec = recorder_for(record, period)
    attach = [rec.attach] if rec else []
    final: dict = {}
    kw = dict(log_path=log, progress=progress, save_state=save_state, attach=attach,
              final=final)
    if checkpoint_every is not None:
        kw.update(checkpoint_every=check_period(checkpoint_every, sc.duration),
                  checkpoint_dir=checkpoint_dir or default_checkpoint_dir(sc.name, log),
                  meta={"recorder": _recorder_meta(rec)})
    check_apart({"log": log, "saved state": save_state and npz_name(os.fspath(save_state)),
                 "checkpoint directory": kw.get("checkpoint_dir")},
                {"scenario": sc.path if os.path.isfile(sc.path) else None})
    # as the CLI does: an output that cannot be written stops the run before it starts
    # (a log path that is a directory failed at the first write, "after 0 records")
    if log is not None:
        check_output(os.fspath(log), create_dirs=True)
    if save_state is not None:
        check_output(npz_name(os.fspath(save_state)), create_dirs=False)
    if kw.get("checkpoint_dir"):  # a file there failed at the first checkpoint, log begun
        check_output(os.path.join(os.fspath(kw["checkpoint_dir"]), "ck-probe"), True)
    if not isinstance(restart_workers, (int, np.integer)) or isinstance(restart_workers, bool) \
            or restart_workers < 0:
        raise ScenarioError(f"restart_workers must be an integer of 0 or more, "
                            f"got {restart_workers!r}")
    if restart_workers and (checkpoint_every is None or not (workers > 1 or cluster)):
        raise ScenarioError("restart_workers needs workers > 1 and checkpoint_every")
    with held(kw.get("checkpoint_dir")):  # before the log is cut (a refusal keeps it)
        if restart_workers:
            summary = distributed_restarting(
                sc, restarts=restart_workers, workers=workers, **kw,
                reset=(lambda: (rec.times.clear(), rec.data.clear())) if rec else None)
        elif workers > 1 or cluster:
            from .cluster import simulate_distributed
            summary = simulate_distributed(sc, workers=workers, **kw)
        else:
            summary = simulate(sc, **kw)
    return Result(summary, log, np.array(rec.times if rec else [], dtype=float),
                  rec.arrays() if rec else {}, final)


def distributed_restarting(sc: Scenario, *, restarts: int, checkpoint_dir: str,
                           notice: Callable[[str], None] | None = None,
                           reset: Callable[[], None] | None = None, **kw) -> dict:
    """A distributed run that survives its workers: a lost worker restarts every worker
    from the last checkpoint (all roll back to its instant) and the run goes on.

    Parameters
    ----------
    sc:
        The scenario.
    restarts:
        At most this many restarts; the next lost worker stops the run.
    checkpoint_dir:
        Where the run writes its checkpoints (``checkpoint_every`` among ``kw``).
    notice:
        Told of each restart (one line), and passed on (remote workers to join).
    reset:
        Called before a restart from the start (no checkpoint yet): recorders
        forget the failed attempt's samples.
    **kw:
        Passed to ``cluster.simulate_distributed`` (``workers``, ``log_path``, ...).

    Returns
    -------
    The summary; its ``cluster`` section adds ``restarts``: how many, the wall
    seconds the failed attempts took, and what failed.
    """
    from .cluster import simulate_distributed
    from .cluster.errors import WorkerLost
    failed: list[dict] = []
    ck = None
    while True:
        t0 = time.perf_counter()
        try:
            summary = simulate_distributed(sc, resume=ck, checkpoint_dir=checkpoint_dir,
                                           notice=notice, **kw)
            break
        except WorkerLost as e:
            if len(failed) >= restarts:
                raise
            failed.append({"error": str(e), "seconds": time.perf_counter() - t0})
            # no checkpoint yet: from the start (the log is written anew)
            ck = latest(checkpoint_dir).ck if candidates(checkpoint_dir) else None
            if ck is None and reset is not None:
                reset()
            if notice is not None:
                at = "the start" if ck is None else f"the checkpoint at t={ck['t'] / QUANTA:g}"
                notice(f"{e}; restarting every worker from {at} "
                       f"(restart {len(failed)} of at most {restarts})")
    summary["cluster"]["restarts"] = {"count": len(failed),
                                      "seconds": sum(f["seconds"] for f in failed),
                                      "errors": [f["error"] for f in failed]}
    return summary


def _recorder_meta(rec: Recorder | None) -> dict | None:
    if rec is None:
        return None
    return {"agents": {a: list(v) for a, v in rec.agents.items()}, "period": rec.period,
            "start": rec.start}


def check_period(every: float, duration: float, what: str = "checkpoint_every") -> float:
    """A checkpoint period, checked: a positive finite number of at least one quantum,
    and no longer than the longest run (beyond, its quanta overflowed).

    Parameters
    ----------
    every:
        The period asked for.
    duration:
        The run's duration (a period past it writes no checkpoint, which is allowed).
    what:
        Where it was given, for the message (``--checkpoint-every``,
        ``FILE: [output] checkpoint_every``).

    Returns
    -------
    ``every`` as a float.
    """
    from .scenario import MAX_DURATION
    ok = isinstance(every, (int, float)) and not isinstance(every, bool) \
        and math.isfinite(every)
    if ok and every > MAX_DURATION:  # a float's quanta would be inf (an OverflowError)
        raise ScenarioError(f"{what} is too long: {every:g} (at most {MAX_DURATION:.3g}, "
                            f"the longest run; a period past the run's duration "
                            f"{duration:g} writes no checkpoint)")
    if not (ok and to_quanta(every) > 0):
        raise ScenarioError(f"{what} must be a positive number of at least "
                            f"{1 / QUANTA:g}, got {every!r}")
    return float(every)


def default_checkpoint_dir(name: str, log: str | None) -> str:
    """Where checkpoints go by default: ``LOG.ckpt``, or ``runs/<name>.ckpt`` without a log.

    Parameters
    ----------
    name:
        The scenario's name.
    log:
        The event log's path, or ``None``.

    Returns
    -------
    The directory.
    """
    return f"{log}.ckpt" if log else os.path.join("runs", f"{name}.ckpt")


def _not_one_checkpoint(path: str) -> None:
    """Refuse one checkpoint file given for its directory (it read "not an asyncnet
    event log"), naming the path that resumes it."""
    with open(path, "rb") as f:
        head = f.read(len(MAGIC))
    directory = os.path.dirname(path) or "."
    if head == MAGIC:
        raise CheckpointError(f"{path}: one checkpoint file; resume takes its directory: "
                              f"asyncnet resume {directory} continues from the newest whole "
                              f"checkpoint there")
    if path.endswith(".npz"):  # STATE/checkpoint.npz or STATE/steps/step_K.npz
        for state in (directory, os.path.dirname(directory)):
            if os.path.exists(os.path.join(state, "scenario.toml")) \
                    and os.path.exists(os.path.join(state, "checkpoint.npz")):
                raise CheckpointError(f"{path}: a checkpoint of a training run with its own "
                                      f"loop (gradep): asyncnet resume {state} continues it "
                                      f"from its newest step")


def find_checkpoint(path: str) -> Found:
    """The checkpoint to resume ``path`` from (a checkpoint directory or an event log).

    Newer checkpoints that are cut short, altered, of another scenario, or
    whose log prefix no longer matches are passed over; each is said with
    a warning.

    Parameters
    ----------
    path:
        A checkpoint directory, or an event log (its checkpoints are in ``LOG.ckpt``).

    Returns
    -------
    The :class:`~asyncnet.checkpoint.Found` checkpoint.
    """
    expect = None
    if os.path.isdir(path):
        directory = path
    elif os.path.isfile(path):
        _not_one_checkpoint(path)
        from .logfile import open_log
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            log = open_log(path, strict=False)
        expect = scenario_id(log.scenario_text, log.header["seed"])
        directory = f"{path}.ckpt"
        if not os.path.isdir(directory):
            raise CheckpointError(f"{path}: no checkpoint directory {directory} next to it "
                                  f"(give the directory the run wrote its checkpoints to)")
    else:
        raise CheckpointError(f"{path}: no such checkpoint directory or event log")

    heads: dict[str, bytes] = {}  # building the engine for a header is not free
    given_log = path if os.path.isfile(path) else None

    def accept(p: str, ck: dict) -> None:
        check_fields(p, ck)  # a digest recomputed over edited fields: refused by name
        m = ck["meta"] = relocated(ck["meta"], directory, given_log)
        if ck.get("log") is not None and m.get("log_file"):
            if ck["scenario_id"] not in heads:
                heads[ck["scenario_id"]] = _log_head(m)
            # the running digest of the prefix: the resumed writer goes on with it
            ck["log_hash"] = check_log(m["log_file"], heads[ck["scenario_id"]], ck["log"])
            check_log_counts(p, ck, m["log_file"])  # counts the digest does not cover

    found = latest(directory, expect, accept)
    for why in found.refused:
        warnings.warn(f"checkpoint refused: {why}; falling back to an older one",
                      stacklevel=2)
    return found


def relocated(meta: dict, directory: str, log: str | None) -> dict:
    """A checkpoint's paths, moved with its directory if it was copied or moved.

    A resume writes where the run wrote (whatever directory it is started
    in); but a checkpoint directory copied elsewhere was resumed into the
    original run's log and checkpoints. Found away from where it was written,
    its log is the one given (``log``) or the one beside it (``DIR`` without
    ``.ckpt``), and a saved state keeps its place relative to it.

    Parameters
    ----------
    meta:
        the checkpoint's ``meta``.
    directory:
        where the checkpoint was found.
    log:
        the event log the user named, if a log was named.

    Returns
    -------
    ``meta`` itself, or a copy with ``log``, ``log_file``, ``checkpoint_dir``
    and the saved state's paths moved.
    """
    was = meta.get("checkpoint_dir")
    if not was or same_file(was, directory):
        return meta
    m = dict(meta, checkpoint_dir=os.path.abspath(directory))
    if meta.get("log_file"):
        beside = directory[:-5] if directory.rstrip("/").endswith(".ckpt") else None
        new = log or (beside if beside and os.path.isfile(beside) else None)
        if new is None:
            raise CheckpointError(
                f"{directory}: checkpoints written at {was} (since moved or copied) of a run "
                f"that logged to {meta['log_file']}: give the log they go with "
                f"(asyncnet resume LOG, with LOG.ckpt beside it)")
        m["log"], m["log_file"] = new, os.path.abspath(new)
    if meta.get("save_state_file"):
        rel = os.path.relpath(meta["save_state_file"], os.path.dirname(os.path.abspath(was)))
        m["save_state_file"] = os.path.join(os.path.dirname(os.path.abspath(directory)), rel)
        m["save_state"] = m["save_state_file"]
    return m


def _log_head(meta: dict) -> bytes:
    """The header bytes a log of this run starts with (to check a log's prefix)."""
    from .eventlog import EventLogWriter
    from .simulation import build_engine, log_header
    sc = load(meta["scenario_path"], text=meta["scenario_text"])
    eng, _, _ = build_engine(sc)
    return EventLogWriter(meta["log_file"], log_header(sc, eng.names))._head


def _check_pipeline(sc: Scenario) -> None:
    """Refuse a scenario whose scheme runs its own training loop (``run_scenario``):
    the engine's pipeline would fail later on its data with a misleading message."""
    rule = sc.build_rule()
    if getattr(rule, "run_scenario", None) is None:
        return
    entry = getattr(rule, "python_entry", None)
    raise ScenarioError(
        f"{sc.path}: rule {sc.rule_name!r} runs its own training loop (step checkpoints "
        f"in a state directory), which asyncnet.run does not drive: "
        + (f"{entry} trains it from Python, " if entry else "")
        + (f"asyncnet run {sc.path} from the shell" if os.path.isfile(sc.path) else
           "asyncnet run FILE from the shell (FILE: the scenario's to_toml() written out)"))


def resume(path: str, *, progress: Callable[[float], None] | bool | None = None,
           workers: int = 1, notice: Callable[[str], None] | None = None,
           mpi: bool = False, rerun: bool = True) -> Result:
    """Continue a checkpointed run to its end; the same :class:`Result` as uninterrupted.

    The event log is truncated to the checkpoint's position and appended
    to: the finished log, the summary (but its wall time) and the saved
    state are byte-identical to those of a run never interrupted.

    Parameters
    ----------
    path:
        The checkpoint directory, or the run's event log (``LOG.ckpt`` beside it).
    progress:
        As for :func:`run`.
    workers:
        Resume on this many local worker processes (a checkpoint is per agent).
    notice:
        Told which checkpoint the run resumes from (one line).
    mpi:
        Resume on the MPI job this process is rank 0 of (``workers`` = its other ranks).
    rerun:
        A run whose log is complete already is run again from the checkpoint (its
        log rewritten to the same bytes); ``False`` (the command line's): raise
        :class:`~asyncnet.ckcheck.RunComplete` and change nothing (a resume killed
        while rewriting would leave the finished log cut short).

    Returns
    -------
    The :class:`Result`.
    """
    if path is None:
        raise TypeError("resume needs a path: a checkpoint directory or the run's event log")
    check_path("path", path)
    workers = check_workers(workers)
    # checked before the log is cut to the checkpoint (a bad one failed in the engine after)
    check_progress(progress)
    if not (notice is None or callable(notice)):
        raise TypeError(f"notice must be None or a function of one line of text, "
                        f"got {type(notice).__name__} {notice!r}"[:200])
    if mpi:  # the job checked before the log is cut (outside mpiexec it failed after)
        from .cluster.mpi import MPIUnavailable, comm_world
        if (workers := comm_world().Get_size() - 1) < 1:  # the workers: its other ranks
            raise MPIUnavailable("resume(mpi=True) needs an MPI job of 2 ranks or more "
                                 "(rank 0 coordinates): mpiexec -n N python ...")
    if os.path.isdir(path) and not candidates(path) \
            and os.path.exists(os.path.join(path, "scenario.toml")) \
            and os.path.exists(os.path.join(path, "checkpoint.npz")):
        raise CheckpointError(
            f"{path}: the state directory of a training run with its own loop (gradep), not "
            f"a checkpoint directory of asyncnet.run: asyncnet resume {path} continues it "
            f"from the shell, its scheme's training call from Python (the same state "
            f"directory)")
    found = find_checkpoint(path)
    ck, m = found.ck, found.ck["meta"]
    if not rerun and completed(m["log_file"]):  # else its tail rewritten (cut if killed)
        raise RunComplete(f"{m['log']}: the run of {found.path} already reached its end "
                          f"(its log is complete); nothing to resume, nothing was changed")
    if notice is not None:
        notice(f"resuming from t={ck['t'] / QUANTA:g} ({found.path})")
    try:
        sc = load(m["scenario_path"], text=m["scenario_text"])
    except (KeyError, TypeError):
        raise CheckpointError(f"{found.path}: malformed (its scenario)") from None
    if progress is True:
        from .commands import Progress
        progress = Progress(sc.duration, sc.name)
    elif progress is False:
        progress = None
    rm = m.get("recorder")
    rec = Recorder(rm["agents"], period=rm["period"], start=rm["start"]) if rm else None
    attach = [rec.attach] if rec else []
    final: dict = {}
    with held(m["checkpoint_dir"]):  # before the log is cut to the checkpoint's prefix
        summary = _continue(sc, ck, m, progress, workers, mpi, attach, final)
    return Result(summary, m["log"], np.array(rec.times if rec else [], dtype=float),
                  rec.arrays() if rec else {}, final)


def _continue(sc: Scenario, ck: dict, m: dict, progress, workers: int, mpi: bool,
              attach: list, final: dict) -> dict:
    """:func:`resume`'s run from the checkpoint ``ck`` (its ``meta`` ``m``): the summary."""
    rm = m.get("recorder")
    if workers > 1 or mpi:
        from .cluster import simulate_distributed
        summary = simulate_distributed(sc, workers=workers, mpi=mpi, log_path=m["log_file"],
                                       progress=progress, save_state=m["save_state_file"],
                                       attach=attach, final=final, resume=ck,
                                       checkpoint_every=m["checkpoint_every"],
                                       checkpoint_dir=m["checkpoint_dir"], meta={"recorder": rm})
    else:
        summary = simulate(sc, log_path=m["log"], progress=progress, save_state=m["save_state"],
                           attach=attach, final=final, checkpoint_every=m["checkpoint_every"],
                           checkpoint_dir=m["checkpoint_dir"], resume=ck,
                           meta={"recorder": rm})
    return summary
