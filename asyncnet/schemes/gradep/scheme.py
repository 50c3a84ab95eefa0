"""The rule ``gradep`` as registered: a scenario trained by its own loop (:mod:`.runner`).

``asyncnet run`` hands a gradep scenario to :meth:`GradEPScheme.run_scenario`;
from Python, :func:`train_scenario` does the same and returns the summary.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from ...analysis.divergence import LIMIT
from ...data import DataError
from ...jsonout import dumps
from . import train as T
from .agents import GradEP
from .runner import diverged_at, train


def train_scenario(sc, *, state_dir: str | None = None, progress: bool = False,
                   workers: int | None = None) -> dict:
    """Train a gradep scenario into its state directory (continuing a checkpoint there).

    The Python face of ``asyncnet run FILE`` for this scheme: the scenario's
    ``[data] batch`` (default 1797, the whole data set) and ``[output]
    state_dir`` (default ``runs/<name>``) apply; no event log is written
    (each step's payloads are megabytes).

    Parameters
    ----------
    sc:
        a :class:`~asyncnet.Scenario` of rule ``gradep``.
    state_dir:
        where the checkpoints go (default: the scenario's ``[output] state_dir``).
    progress:
        a line on stderr at each checkpoint.
    workers:
        processes the batch is split over (default: ``[rule] workers``); any
        number continues a checkpoint.

    Returns
    -------
    ``{"steps", "losses", "wall_seconds", "state_dir", "resumed_from", "batch",
    "workers"}``,
    and ``"diverged": {"step", "loss", "limit"}`` if the loss became
    non-finite or passed the limit (the run then stopped at the next checkpoint).
    """
    if not hasattr(sc, "build_rule"):  # (this layer does not read scenario files)
        raise TypeError(f"sc must be an asyncnet.Scenario (asyncnet.Scenario.from_toml(path) "
                        f"reads a file), got {type(sc).__name__}")
    rule = sc.build_rule()
    if not isinstance(rule, GradEP):
        raise DataError(f"{sc.path}: rule {sc.rule_name!r} is not gradep")
    if workers is not None:
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise T.P.GradEPError(f"workers must be a positive integer, got {workers!r}")
        rule.workers = workers
    try:
        rule.sizes = T.sizes_of(sc.build_network())
    except T.P.GradEPError as e:
        raise T.P.GradEPError(f"{sc.path}: [network] {e}") from None
    if rule.sizes[0] != T.PIXELS:  # the digits' batches: another size was reshaped silently
        raise T.P.GradEPError(f"{sc.path}: [network] population x must have size {T.PIXELS} "
                              f"(the 8×8 digits' pixels), got {rule.sizes[0]}")
    kind = sc.data.get("kind", "digits_flow")
    if kind != "digits_flow":
        raise DataError(f"{sc.path}: [data] kind {kind!r} does not apply to rule gradep "
                        "(use digits_flow)")
    extra = set(sc.data) - {"kind", "batch"}
    if extra:
        raise DataError(f"{sc.path}: [data] key(s) {', '.join(sorted(extra))} do not "
                        "apply to rule gradep (use kind, batch)")
    batch = sc.data.get("batch", 1797)
    if not 1 <= batch <= 1797:
        raise DataError(f"{sc.path}: [data] batch must be between 1 and 1797, got {batch}")
    if rule.workers > batch:
        raise T.P.GradEPError(f"{sc.path}: [rule] workers = {rule.workers} is more than "
                              f"[data] batch = {batch}: each worker takes a share of the "
                              f"batch")
    state_dir = state_dir or sc.output.get("state_dir") or os.path.join("runs", sc.name)
    if os.path.exists(state_dir) and not os.path.isdir(state_dir):
        raise T.P.GradEPError(f"{sc.path}: [output] state_dir {state_dir}: a file, not a "
                              f"directory (give the run a directory of its own)")
    try:
        s = train(rule, seed=sc.seed, batch=batch, state_dir=state_dir, backend=rule.backend,
                  progress=progress, scenario_text=sc.text)
    except KeyboardInterrupt as e:  # what is kept, for the interrupt's message
        e.kept = _kept(state_dir)  # type: ignore[attr-defined]
        raise
    s["batch"], s["workers"] = batch, rule.workers
    dv = diverged_at(s["losses"])
    if dv is not None:
        s["diverged"] = dv
    return s


def run_scenario(sc, *, quiet: bool = False, json_out: bool = False,
                 state_dir: str | None = None, workers: int | None = None) -> int:
    """``asyncnet run`` of a gradep scenario: :func:`train_scenario`, then the summary.

    Returns
    -------
    The exit status: 0, or 3 if the run diverged.
    """
    s = train_scenario(sc, state_dir=state_dir, progress=not quiet, workers=workers)
    if json_out:
        print(dumps(s))  # a NaN loss is null: strict JSON
    else:
        _print_summary(sc, s)
    dv = s.get("diverged")
    if dv is None:
        return 0
    # a result, not a success: exit 3, as a run of the engine's pipeline that diverged
    print(f"asyncnet: error: the run diverged: the flow loss at step {dv['step']} is "
          f"{dv['loss']:g} (limit {LIMIT:g}); a smaller lr or clip keeps it bounded",
          file=sys.stderr)
    return 3


def _print_summary(sc, s: dict) -> None:
    rule = sc.build_rule()
    L = s["losses"]
    marks = [k for k in (0, 50, 100, 300, 1000, 2000) if k < len(L)] + [len(L) - 1]
    print(f"scenario  {sc.name} ({sc.path}), rule gradep ({rule.backend}), seed {sc.seed}, "
          f"batch {s['batch']}, {s['workers']} worker(s)")
    print("loss      " + ", ".join(f"step {k}: {L[k]:.4f}" for k in sorted(set(marks))))
    print(f"run       {s['steps']} steps in {s['state_dir']} (this session from step "
          f"{s['resumed_from']}, {s['wall_seconds']:.1f} s wall)")


def _kept(state_dir: str) -> str:
    """What an interrupted training run keeps, and the command that continues it."""
    try:
        ck = T.load_checkpoint(state_dir)
    except (OSError, ValueError, KeyError):  # written atomically: unreadable only if moved
        ck = None
    if ck is None:
        return f"no checkpoint was written yet in {state_dir}: the same command starts again"
    return (f"{state_dir} keeps step {int(ck['step'])}: the same command, or asyncnet resume "
            f"{state_dir}, continues from it")


@dataclass
class GradEPScheme(GradEP):
    """The rule ``gradep`` as registered: :class:`.agents.GradEP` with its training run.

    ``asyncnet run`` hands a gradep scenario to :meth:`run_scenario` (its own
    loop: checkpoints, the batch split over processes), not to the logged
    pipeline.
    """

    python_entry = "asyncnet.schemes.gradep.scheme.train_scenario(scenario)"
    """What trains such a scenario from Python (``asyncnet.run`` refuses it, naming this)."""

    def run_scenario(self, sc, **kw) -> int:
        """Train as the scenario says; see :func:`run_scenario`."""
        return run_scenario(sc, **kw)
