"""The ``asyncnet`` command: run, replay, stats (and more as schemes land).

Every failure the user can cause — a bad scenario, a corrupt log, a missing
file — ends with one ``asyncnet: error: ...`` line and exit status 2, never
a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

from .data import DataError
from .eventlog import EventLog, LogError
from .messages import KIND_NAMES, LocalityError
from .network import NetworkError
from .scenario import ScenarioError

USER_ERRORS = (ScenarioError, NetworkError, DataError, LogError, LocalityError,
               FileNotFoundError, PermissionError, IsADirectoryError)
COMMANDS: dict = {}


def command(name: str, help: str):
    """Register a subcommand: ``fn(args)`` plus ``fn.configure(parser)``."""
    def deco(fn):
        COMMANDS[name] = (fn, help)
        return fn
    return deco


class Progress:
    """Progress on stderr: a live line on a terminal, a line per 10% otherwise."""

    def __init__(self, total: float, label: str, enabled: bool = True):
        self.total, self.label, self.enabled = total, label, enabled
        self.tty = sys.stderr.isatty()
        self.start = time.perf_counter()
        self.shown = -1

    def __call__(self, now: float) -> None:
        if not self.enabled or self.total <= 0:
            return
        frac = min(1.0, now / self.total)
        pct = int(frac * 100)
        el = time.perf_counter() - self.start
        if self.tty:
            bar = "#" * int(frac * 30)
            sys.stderr.write(f"\r{self.label} [{bar:<30}] {pct:3d}%  t={now:g}/{self.total:g}"
                             f"  {el:.1f}s")
            if frac >= 1:
                sys.stderr.write("\n")
            sys.stderr.flush()
        elif pct // 10 > self.shown:
            self.shown = pct // 10
            print(f"{self.label}: {pct}% (t={now:g}/{self.total:g}, {el:.1f}s)",
                  file=sys.stderr, flush=True)


def _fmt_t(x) -> str:
    return "n/a" if x is None else f"{x:g}"


def format_summary(s: dict) -> str:
    """The human-readable summary of a run."""
    net = s["network"]
    lines = [f"scenario  {s['scenario']} ({s['path']}), rule {s['rule']}, seed {s['seed']}",
             f"network   {net['populations']} populations, {net['projections']} projections, "
             f"{net['neurons']} neurons, {net['synapses']} synapses"
             + (f", depth L={net['depth']}" if net.get("depth") is not None else ", cyclic")]
    r = s.get("result") or {}
    if r.get("loss") is not None:
        acc = "" if r.get("accuracy") is None else f"   accuracy {100 * r['accuracy']:.1f}%"
        lines.append(f"result    loss {r['loss']:.3g}{acc}  "
                     f"(network output at {r['evaluated']} response times, end of run)")
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
    lines.append(f"          input change -> first weight update: "
                 f"{_fmt_t(lat['input_to_first_update_forward'])} by the forward wave, "
                 f"{_fmt_t(lat['input_to_first_update_credit'])} by its credit "
                 f"(mean of {lat['input_changes_traced']} changes)")
    lines.extend(s.get("report", []))  # rule-specific analyses (energy_sim.py)
    if "exactness" in s:
        ex = s["exactness"]
        lines.append(f"exactness vs plain numpy backprop, L={ex['depth']} "
                     f"(normwise relative error, max|g-g*|/max|g*|):")
        lines.append("          layer  error at t=2L-1  max error t>=2L  exact from t")
        for row in ex["layers"]:
            lines.append(f"          {row['layer']:5d}  {_e(row['error_at_2L_minus_1']):>15}"
                         f"  {_e(row['max_error_from_2L']):>15}"
                         f"  {_fmt_t(row['exact_from_frame']):>12}")
        verdict = "EXACT" if ex["exact"] else "NOT exact"
        lines.append(f"          {verdict} from t=2L={2 * ex['depth']} on "
                     f"(tolerance {ex['tolerance']:g})")
    if "alignment" in s:
        al = s["alignment"]
        layers = sorted({int(k) for row in al["rows"] for k in row["current"]})
        lines.append(f"alignment cosine with the exact gradient, L={al['depth']}, "
                     f"frames t >= {al['warmup']:g}")
        for ref in ("current", "wave"):
            lines.append(f"          vs the {ref} frame" + (
                " (shown at the input now)" if ref == "current"
                else " (whose input the forward wave brought to the synapse)"))
            lines.append("            hold k " + "".join(f"{'l' + str(x):>7}" for x in layers))
            for row in al["rows"]:
                vals = "".join(f"{row[ref].get(x, float('nan')):7.3f}" for x in layers)
                lines.append(f"            {row['hold']:6g} {vals}")
    if "settling" in s:
        from .analyses import format_settling
        lines += format_settling(s["settling"])
    if "tracking" in s:
        from .analyses import format_tracking
        lines += format_tracking(s["tracking"])
    if "cluster" in s:
        from .cluster.report import format_cluster
        lines += format_cluster(s["cluster"])
    lines.append(f"speed     {s['wall_seconds']:.2f} s wall, "
                 f"{s['messages_per_second'] or 0:,.0f} messages/s")
    if "log" in s:
        lg = s["log"]
        lines.append(f"log       {lg['path']} ({lg['records']:,} records, "
                     f"{lg['bytes'] / 1e6:.2f} MB)")
    if "state" in s:
        lines.append(f"state     {s['state']}")
    return "\n".join(lines)


def _e(x) -> str:
    return "n/a" if x is None else f"{x:.2e}"


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


# -- run --------------------------------------------------------------------
@command("run", "run a scenario file")
def cmd_run(args) -> int:
    from .scenario import load
    from .simulation import simulate
    sc = load(args.scenario)
    own = getattr(sc.build_rule(), "run_scenario", None)
    if own is not None:  # a scheme with its own training loop (gradep: checkpoints, shards)
        return own(sc, quiet=args.quiet, json_out=args.json)
    no_log = args.no_log or sc.output.get("write_log") is False
    log_path = None if no_log else (
        args.log or sc.output.get("log") or os.path.join("runs", f"{sc.name}.log"))
    show = sc.output.get("progress", True) and not args.quiet
    prog = Progress(sc.duration, sc.name, show)
    workers = args.workers or sc.cluster.get("workers", 1)
    if (workers and workers > 1) or args.cluster:
        from .cluster import simulate_distributed
        s = simulate_distributed(sc, workers=args.workers or (None if args.cluster else workers),
                                 cluster_file=args.cluster, bind=args.bind,
                                 notice=lambda msg: print(f"asyncnet: {msg}", file=sys.stderr),
                                 log_path=log_path, progress=prog,
                                 save_state=args.save_state or sc.output.get("save_state"))
    else:
        s = simulate(sc, log_path=log_path, progress=prog,
                     save_state=args.save_state or sc.output.get("save_state"))
    if args.json:
        print(json.dumps(s, default=_json_default))
    else:
        print(format_summary(s))
    return 0


cmd_run.configure = lambda p: (
    p.add_argument("scenario", help="a scenario TOML file"),
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object"),
    p.add_argument("--save-state", metavar="FILE.npz", help="save the final state"),
    p.add_argument("--log", metavar="PATH", help="event log path (default runs/<name>.log)"),
    p.add_argument("--no-log", action="store_true", help="write no event log"),
    p.add_argument("--workers", type=int, default=0, help="run on N local worker processes"),
    p.add_argument("--cluster", metavar="FILE", help="a cluster file (distributed/*.toml)"),
    p.add_argument("--bind", metavar="tcp://ADDR:PORT",
                   help="where the coordinator listens (default tcp://127.0.0.1:<free port>)"),
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output"),
)


# -- replay -----------------------------------------------------------------
@command("replay", "re-run a log's scenario and compare every message")
def cmd_replay(args) -> int:
    from .replay import verify
    if not args.verify:
        print("asyncnet: error: replay needs --verify (the only replay mode so far)",
              file=sys.stderr)
        return 2
    log = EventLog(args.log)
    from .scenario import load
    sc = load(log.header.get("scenario_path", args.log), text=log.header["scenario"])
    r = verify(args.log, progress=Progress(sc.duration, "replay", not args.quiet))
    if args.json:
        print(json.dumps(r))
    elif r["identical"]:
        tail = " (log truncated: compared up to its last whole record)" if r["truncated"] else ""
        print(f"identical: {r['compared']:,} messages{tail}")
    else:
        print(f"DIVERGED after {r['compared']:,} identical messages: {r['divergence']}")
    return 0 if r["identical"] else 1


cmd_replay.configure = lambda p: (
    p.add_argument("log", help="an event log"),
    p.add_argument("--verify", action="store_true", help="compare every message"),
    p.add_argument("--json", action="store_true"),
    p.add_argument("-q", "--quiet", action="store_true"),
)


# -- stats ------------------------------------------------------------------
@command("stats", "locality, latency and counts, from a log alone")
def cmd_stats(args) -> int:
    from .stats import log_stats
    s = log_stats(args.log)
    if args.json:
        print(json.dumps(s, default=_json_default))
        return 0
    from .stats import format_stats
    print(format_stats(s))
    return 0


cmd_stats.configure = lambda p: (
    p.add_argument("log", help="an event log"),
    p.add_argument("--json", action="store_true"),
)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``asyncnet`` console script."""
    _load_plugins()
    parser = argparse.ArgumentParser(prog="asyncnet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name, (fn, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_)
        fn.configure(p)
        p.set_defaults(fn=fn)
    args = parser.parse_args(argv)
    warnings.simplefilter("default")
    warnings.formatwarning = lambda msg, *a, **k: f"asyncnet: warning: {msg}\n"
    try:
        return args.fn(args)
    except USER_ERRORS as e:
        msg = str(e) if not isinstance(e, OSError) else f"{e.filename}: {e.strerror}"
        print(f"asyncnet: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("asyncnet: interrupted; the log keeps every record written so far",
              file=sys.stderr)
        return 130


def _load_plugins() -> None:
    """Import modules that add subcommands (plot, worker, ...), if present."""
    for mod in ("asyncnet.plots", "asyncnet.cluster.cli", "asyncnet.isolate",
                "asyncnet.schemes.gradep.cli"):
        try:
            __import__(mod)
        except ImportError:
            pass


if __name__ == "__main__":
    sys.exit(main())
