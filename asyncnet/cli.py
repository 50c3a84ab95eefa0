"""asyncnet: run scenarios of asynchronous neurons; replay, inspect, plot and export their logs.

Every failure the user can cause — a bad scenario, a corrupt log, a missing
file — ends with one ``asyncnet: error: ...`` line and exit status 2, never
a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import warnings

from . import commands, export, isolate, plots  # noqa: F401  (their commands)
from ._version import __version__
from .clisafety import interrupted_note, resume_note
from .cluster import cli as cluster_cli  # noqa: F401  (worker, keys)
from .cluster.errors import WorkerLost
from .commands import COMMANDS, Progress, command, finite_float, positive_int  # noqa: F401
from .jsonout import dumps
from .messages import KIND_NAMES
from .metrics import NO_CHANGE_TRACED
from .outputs import check_apart, check_output, npz_name
from .schemes.gradep import cli as gradep_cli  # noqa: F401  (sample)

MPI_ALONE = ("--mpi needs an MPI job (mpiexec -n N asyncnet ... --mpi with N >= 2: rank 0 "
             "coordinates, N - 1 workers); this process runs alone")
"""What ``--mpi`` outside ``mpiexec`` says (it said "not --workers" with none given)."""


def _fmt_t(x) -> str:
    return "n/a" if x is None else f"{x:g}"


def format_summary(s: dict) -> str:
    """The human-readable summary of a run."""
    net = s["network"]
    lines = [f"scenario  {s['scenario']} ({s['path']}), rule {s['rule']}, seed {s['seed']}",
             f"network   {net['populations']} populations, {net['projections']} projections, "
             f"{net['neurons']:,} neurons, {net['synapses']:,} synapses"
             + (f", depth L={net['depth']}" if net.get("depth") is not None else ", cyclic")]
    from .analysis.evaluation import Evaluation
    lines += Evaluation().report(s.get("result") or {})
    m = s["messages"]
    kinds = ", ".join(f"{k} {m[k]:,}" for k in KIND_NAMES)
    lines.append(f"messages  {m['total']:,} delivered: {kinds}")
    loc = s["locality"]
    lines.append(f"locality  {100 * loc['share']:.1f}% travelled exactly one link "
                 f"({loc['one_link']:,}/{m['total']:,})")
    d = s["link_delay"]
    lines.append("latency   link delay " + "; ".join(
        f"{k} {_fmt_t(v['min'])}/{v['mean']:.3g}/{_fmt_t(v['max'])}" for k, v in d.items())
        + " (min/mean/max)")
    lat = s["latency"]
    if lat["input_changes_traced"]:
        lines.append(f"          input change -> first weight update: "
                     f"{_fmt_t(lat['input_to_first_update_forward'])} by the forward wave, "
                     f"{_fmt_t(lat['input_to_first_update_credit'])} by its credit "
                     f"(mean of {lat['input_changes_traced']} changes)")
    else:
        lines.append(f"          input change -> first weight update: {NO_CHANGE_TRACED}")
    lines.extend(s.get("report", []))  # the scheme's analyses, as they print themselves
    if "cluster" in s:
        from .cluster.report import format_cluster
        lines += format_cluster(s["cluster"])
    wall = s["wall_seconds"]  # a tiny run in ms: "0.00 s" read as no time at all
    lines.append(f"speed     {f'{wall:.2f} s' if wall >= 0.01 else f'{wall * 1e3:.2g} ms'} wall, "
                 f"{s['messages_per_second'] or 0:,.0f} messages/s")
    if "log" in s:
        lg = s["log"]
        lines.append(f"log       {lg['path']} ({lg['records']:,} records, "
                     f"{lg['bytes'] / 1e6:.2f} MB)")
    if "state" in s:
        lines.append(f"state     {s['state']}")
    return "\n".join(lines)




# -- run --------------------------------------------------------------------
@command("run", "run a scenario file")
def cmd_run(args) -> int:
    from .scenario import load
    sc = load(args.scenario)
    own = getattr(sc.build_rule(), "run_scenario", None)
    keys = sc.output.get("checkpoint_every") is not None or sc.output.get("checkpoint_dir")
    if own is not None and (args.checkpoint_every is not None or args.checkpoint_dir or keys):
        what = "[output] checkpoint_every/checkpoint_dir" if keys else "--checkpoint-every"
        print(f"asyncnet: error: {what}: rule {sc.rule_name!r} runs its own "
              f"training loop with its own step checkpoints ([rule] checkpoint_every); "
              f"run the scenario again, or asyncnet resume its state directory, to continue",
              file=sys.stderr)
        return 2
    if own is not None:  # a scheme with its own training loop (gradep: checkpoints, shards)
        # flags of the logged pipeline were silently ignored (no log, no saved state)
        unused = [flag for flag, given in (
            ("--log", args.log), ("--save-state", args.save_state), ("--cluster", args.cluster),
            ("--mpi", args.mpi), ("--restart-workers", args.restart_workers),
            ("--bind", args.bind)) if given]
        if unused:
            print(f"asyncnet: error: {', '.join(unused)}: not for rule {sc.rule_name!r}, which "
                  f"runs its own training loop (no event log; its state, checkpoints and "
                  f"losses go to its state directory; --workers N splits its batch)",
                  file=sys.stderr)
            return 2
        more = {"workers": args.workers} if args.workers else {}
        return own(sc, quiet=args.quiet, json_out=args.json, **more)
    for flag, given in (("--log", args.log), ("--save-state", args.save_state),
                        ("--checkpoint-dir", args.checkpoint_dir)):
        if given is not None and not given.strip():  # an unset $VAR: not the default
            print(f"asyncnet: error: {flag}: an empty path", file=sys.stderr)
            return 2
    no_log = args.no_log or sc.output.get("write_log") is False
    log_path = None if no_log else (
        args.log or sc.output.get("log") or os.path.join("runs", f"{sc.name}.log"))
    show = sc.output.get("progress", True) and not args.quiet
    prog = Progress(sc.duration, sc.name, show)
    if args.mpi:  # every rank runs this command; ranks 1.. are the workers
        from .cluster.mpi import comm_world, serve_worker, stop_workers
        comm = comm_world()
        if comm.Get_rank() > 0:
            return serve_worker()
        why = None
        if comm.Get_size() < 2:
            why = MPI_ALONE
        elif args.workers or args.cluster:
            why = ("--mpi takes its workers from the MPI job (mpiexec -n N with N >= 2: "
                   "rank 0 coordinates, N - 1 workers), not --workers or --cluster")
        elif args.restart_workers:
            why = ("--restart-workers does not work with --mpi (an MPI job cannot restart "
                   "a lost rank): resume the checkpoint with a new mpiexec job")
        if why:
            print(f"asyncnet: error: {why}", file=sys.stderr, flush=True)
            stop_workers()  # they wait for work that never comes
            return 2
    with _released(args.mpi):
        return _run(args, sc, log_path, prog)


def _run(args, sc, log_path: str | None, prog: Progress) -> int:
    """``cmd_run`` once the scenario, log and MPI rank are settled."""
    workers = args.workers or sc.cluster.get("workers", 1)
    save_state = args.save_state or sc.output.get("save_state")
    # outputs are checked before anything runs: a run that cannot be kept never starts
    if save_state:
        save_state = npz_name(save_state)
        check_output(save_state, create_dirs=False)
    if log_path:
        check_output(log_path, create_dirs=True)
    ck = {}
    # the flags win over the scenario's [output] keys
    every, where = args.checkpoint_every, "--checkpoint-every"
    if every is None:
        every, where = sc.output.get("checkpoint_every"), f"{sc.path}: [output] checkpoint_every"
    ck_dir = args.checkpoint_dir or sc.output.get("checkpoint_dir")
    if every is not None:
        from .runner import check_period, default_checkpoint_dir
        ck = {"checkpoint_every": check_period(every, sc.duration, where),
              "checkpoint_dir": ck_dir or default_checkpoint_dir(sc.name, log_path)}
        if os.path.exists(ck["checkpoint_dir"]) and not os.path.isdir(ck["checkpoint_dir"]):
            print(f"asyncnet: error: {ck['checkpoint_dir']}: a file, not a checkpoint "
                  f"directory", file=sys.stderr)
            return 2
        check_output(os.path.join(ck["checkpoint_dir"], "ck-probe"), create_dirs=True)
    elif ck_dir:
        given = ("--checkpoint-dir" if args.checkpoint_dir
                 else f"{sc.path}: [output] checkpoint_dir")
        print(f"asyncnet: error: {given} needs --checkpoint-every T "
              f"([output] checkpoint_every)", file=sys.stderr)
        return 2
    check_apart({"log": log_path, "saved state": save_state,
                 "checkpoint directory": ck.get("checkpoint_dir")},
                {"scenario": args.scenario, "cluster file": args.cluster})
    distributed = (workers and workers > 1) or args.cluster
    if args.cluster and args.workers:  # the --workers won over the cluster file's list
        print("asyncnet: error: --workers N or --cluster FILE, not both (the cluster file "
              "lists its workers)", file=sys.stderr)
        return 2
    if args.bind and not distributed:  # an in-process run binds nothing
        print("asyncnet: error: --bind is for a distributed run (--workers N with N >= 2, "
              "or --cluster FILE)", file=sys.stderr)
        return 2
    if args.restart_workers and not (ck and distributed):
        print("asyncnet: error: --restart-workers needs --workers N (or --cluster) and "
              "--checkpoint-every T", file=sys.stderr)
        return 2
    from .ckfile import held
    try:  # the checkpoint directory's lock first: a refusal leaves the log untouched
        with held(ck.get("checkpoint_dir")):
            s = _dispatch(args, sc, log_path, prog, workers, save_state, ck, distributed)
    except KeyboardInterrupt as e:  # what the run leaves behind, for the message
        e.kept = interrupted_note(log_path, ck.get("checkpoint_dir"))  # type: ignore[attr-defined]
        raise
    except WorkerLost as e:  # the cluster names the worker; how to go on is said here
        note = resume_note(ck.get("checkpoint_dir"))
        if note is None:
            raise
        raise WorkerLost(f"{e}; {note}") from None
    return finish_run(s, args)


def _dispatch(args, sc, log_path, prog, workers, save_state, ck, distributed) -> dict:
    """The run of ``cmd_run``, in-process or distributed: its summary."""
    from .simulation import simulate
    if args.mpi:
        from .cluster import simulate_distributed
        from .cluster.mpi import comm_world
        s = simulate_distributed(sc, workers=comm_world().Get_size() - 1, mpi=True,
                                 log_path=log_path,
                                 progress=prog, save_state=save_state, **ck)
    elif args.restart_workers:
        from .runner import distributed_restarting
        s = distributed_restarting(sc, restarts=args.restart_workers,
                                   workers=args.workers or (None if args.cluster else workers),
                                   cluster_file=args.cluster, bind=args.bind,
                                   notice=lambda msg: print(f"asyncnet: {msg}", file=sys.stderr),
                                   log_path=log_path, progress=prog, save_state=save_state, **ck)
    elif distributed:
        from .cluster import simulate_distributed
        s = simulate_distributed(sc, workers=args.workers or (None if args.cluster else workers),
                                 cluster_file=args.cluster, bind=args.bind,
                                 notice=lambda msg: print(f"asyncnet: {msg}", file=sys.stderr),
                                 log_path=log_path, progress=prog, save_state=save_state, **ck)
    else:
        s = simulate(sc, log_path=log_path, progress=prog, save_state=save_state, **ck)
    return s


def finish_run(s: dict, args) -> int:
    """Print a run's summary (text or ``--json``); the exit status.

    Parameters
    ----------
    s:
        The summary.
    args:
        The parsed arguments (``json``).

    Returns
    -------
    0, or 3 if the run diverged.
    """
    if args.json:
        print(dumps(s))
    else:
        print(format_summary(s))
    dv = s.get("diverged")
    if dv:  # not a normal success: exit 3 (2 is bad input)
        when = f"at t={dv['t']:g}" if dv.get("t") is not None else "by the end of the run"
        print(f"asyncnet: error: the run diverged: agent {dv['agent']} {when} "
              f"({dv['how']}, limit {dv['limit']:g})", file=sys.stderr)
        return 3
    return 0


def _log_options(p: argparse.ArgumentParser) -> None:
    """``--log PATH`` or ``--no-log``, not both (the log was silently not written)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--log", metavar="PATH", help="event log path (default runs/<name>.log)")
    g.add_argument("--no-log", action="store_true", help="write no event log")


cmd_run.configure = lambda p: (
    p.add_argument("scenario", help="a scenario TOML file"),
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object"),
    p.add_argument("--save-state", metavar="FILE.npz", help="save the final state"),
    _log_options(p),
    p.add_argument("--workers", type=positive_int, default=0,
                   help="run on N local worker processes (N >= 1)"),
    p.add_argument("--cluster", metavar="FILE", help="a cluster file (distributed/*.toml)"),
    p.add_argument("--mpi", action="store_true",
                   help="run on an MPI job: mpiexec -n N asyncnet run SCENARIO --mpi "
                        "(rank 0 coordinates, N - 1 workers)"),
    p.add_argument("--bind", metavar="tcp://ADDR:PORT",
                   help="where the coordinator listens (default tcp://127.0.0.1:<free port>)"),
    p.add_argument("--checkpoint-every", type=finite_float, metavar="T",
                   help="write a checkpoint at simulated times T, 2T, ... (asyncnet resume)"),
    p.add_argument("--checkpoint-dir", metavar="DIR",
                   help="where checkpoints go (default LOG.ckpt, or runs/<name>.ckpt)"),
    p.add_argument("--restart-workers", type=positive_int, nargs="?", const=5, default=0,
                   metavar="N", help="with --workers and --checkpoint-every: restart every "
                   "worker from the last checkpoint when one is lost (at most N times, "
                   "default 5)"),
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output"),
)


# -- resume -----------------------------------------------------------------
@command("resume", "continue a checkpointed run to the same end, log and summary")
def cmd_resume(args) -> int:
    from .runner import resume
    own = _own_loop(args.path)
    if own is not None:  # a scheme with its own training loop continues its state directory
        sc, fn = own
        if args.mpi:  # every rank would train into the one directory
            print(f"asyncnet: error: --mpi: not for rule {sc.rule_name!r}, which runs its own "
                  f"training loop (--workers N splits its batch)", file=sys.stderr)
            return 2
        more = {"workers": args.workers} if args.workers else {}
        return fn(sc, quiet=args.quiet, json_out=args.json, state_dir=args.path, **more)
    workers, mpi = args.workers or 1, False
    if args.mpi:  # every rank runs this command; ranks 1.. are the workers
        from .cluster.mpi import comm_world, serve_worker, stop_workers
        comm = comm_world()
        if comm.Get_rank() > 0:
            return serve_worker()
        if comm.Get_size() < 2 or args.workers:
            why = MPI_ALONE if comm.Get_size() < 2 else (
                "--mpi takes its workers from the MPI job (mpiexec -n N with N >= 2: rank 0 "
                "coordinates, N - 1 workers), not --workers")
            print(f"asyncnet: error: {why}", file=sys.stderr, flush=True)
            stop_workers()  # they wait for work that never comes
            return 2
        workers, mpi = comm.Get_size() - 1, True
    from .ckcheck import RunComplete
    try:
        with _released(mpi):
            res = resume(args.path, progress=not args.quiet, workers=workers, mpi=mpi,
                         rerun=False,
                         notice=None if args.quiet else
                         lambda msg: print(f"asyncnet: {msg}", file=sys.stderr, flush=True))
    except RunComplete as e:  # not a failure: the run is done (exit 0, its log untouched)
        print(f"asyncnet: {e}", file=sys.stderr)
        return 0
    except KeyboardInterrupt as e:
        e.kept = (f"asyncnet resume {args.path} again continues from "  # type: ignore[attr-defined]
                  f"the newest checkpoint (a log ends at its last whole instant)")
        raise
    return finish_run(res.summary, args)


def _released(mpi: bool):
    """With ``--mpi`` (rank 0): the worker ranks are stopped if the command fails
    before the run takes them; otherwise nothing."""
    if not mpi:
        return contextlib.nullcontext()
    from .cluster.mpi import workers_released
    return workers_released()


def _own_loop(path: str):
    """``(scenario, run_scenario)`` if ``path`` is the state directory of a scheme with
    its own training loop and checkpoints (gradep), else ``None``."""
    from .checkpoint import CheckpointError, candidates
    from .scenario import load
    if not os.path.isdir(path) or candidates(path):
        return None
    text = os.path.join(path, "scenario.toml")
    if not os.path.exists(text):
        if os.path.exists(os.path.join(path, "checkpoint.npz")):
            raise CheckpointError(f"{path}: a training state directory without its scenario: "
                                  f"continue it with asyncnet run SCENARIO (the scenario whose "
                                  f"[output] state_dir is this directory)")
        return None
    sc = load(text)
    fn = getattr(sc.build_rule(), "run_scenario", None)
    return None if fn is None else (sc, fn)


cmd_resume.configure = lambda p: (
    p.add_argument("path", help="a checkpoint directory (by default LOG.ckpt), or the "
                                "run's event log LOG, whose LOG.ckpt is then used"),
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object"),
    p.add_argument("--workers", type=positive_int, default=0,
                   help="resume on N local worker processes (N >= 1)"),
    p.add_argument("--mpi", action="store_true",
                   help="resume on an MPI job: mpiexec -n N asyncnet resume PATH --mpi"),
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output"),
)


# -- replay -----------------------------------------------------------------
@command("replay", "re-run a log's scenario and compare every message")
def cmd_replay(args) -> int:
    from .replay import verify
    r = verify(args.log, make_progress=lambda d: Progress(d, "replay", not args.quiet))
    if args.json:
        print(dumps(r))
    elif r["identical"]:
        tail = (" (log truncated: compared up to its last whole record)" if r["truncated"]
                else " (log of an interrupted run: compared up to its end)"
                if r["interrupted"] else "")
        print(f"identical: {r['compared']:,} messages{tail}")
    else:
        print(f"DIVERGED after {r['compared']:,} identical messages: {r['divergence']}")
    return 0 if r["identical"] else 1


cmd_replay.configure = lambda p: (
    p.add_argument("log", help="an event log"),
    # required: comparing is the only replay mode so far (the usage line says so)
    p.add_argument("--verify", action="store_true", required=True,
                   help="compare every message with the log's"),
    p.add_argument("--json", action="store_true",
                   help="print the result as one JSON object (identical, compared, divergence)"),
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output"),
)


# -- stats ------------------------------------------------------------------
@command("stats", "locality, latency and counts, from a log alone")
def cmd_stats(args) -> int:
    from .stats import log_stats
    s = log_stats(args.log)
    if args.json:
        print(dumps(s))
        return 0
    from .stats import format_stats
    print(format_stats(s))
    return 0


cmd_stats.configure = lambda p: (
    p.add_argument("log", help="an event log"),
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object"),
)


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one ``asyncnet: error:`` line (exit 2)."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        where = self.prog.removeprefix("asyncnet").strip()
        print(f"asyncnet: error: {where + ': ' if where else ''}{message} "
              f"(see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch system's time limit, ``kill``), unwound as Ctrl-C is: a log
    being written gets its footer, and a checkpointed run can be resumed."""


def _terminated(_signum: int, _frame: object) -> None:
    # once: a second SIGTERM while the log is being closed ends the process at once
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``asyncnet`` console script."""
    parser = _Parser(prog="asyncnet", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"asyncnet {__version__}")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    for name, (fn, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_)
        fn.configure(p)
        p.set_defaults(fn=fn)
    args = parser.parse_args(argv)
    if argv is None and "matplotlib" not in sys.modules:
        # the console script draws to files: a file backend, for its own process only
        # (called in-process with argv, the caller's environment is left alone)
        os.environ.setdefault("MPLBACKEND", "agg")
    if argv is None and args.cmd != "worker" and not getattr(args, "mpi", False):
        # the console script's own process only; a cluster worker is ended by its
        # coordinator, and an MPI rank by mpiexec (each rank must reach MPI's end)
        signal.signal(signal.SIGTERM, _terminated)
    warnings.simplefilter("default")
    warnings.formatwarning = lambda msg, *a, **k: f"asyncnet: warning: {msg}\n"
    try:
        return args.fn(args)
    except BrokenPipeError:  # e.g. `asyncnet stats LOG | head`: the reader left
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except (*commands.user_errors(), OSError) as e:
        # OSError: a file that vanished or a disk that filled up under us
        msg = str(e)
        if isinstance(e, OSError):  # pyarrow's name no file
            msg = f"{e.filename}: {e.strerror or e}" if e.filename else str(e.strerror or e)
        print(f"asyncnet: error: {msg}", file=sys.stderr)
        return 2
    except MemoryError as e:  # numpy says how much it wanted: a size the input asked for
        print(f"asyncnet: error: not enough memory{': ' + str(e) if str(e) else ''} "
              f"(a smaller size, -n, batch or network fits)", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        how = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
        kept = getattr(e, "kept", None)  # what a run leaves (export, replay: nothing)
        print(f"asyncnet: {how}" + (f"; {kept}" if kept else ""), file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
