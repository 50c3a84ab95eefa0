"""The ``asyncnet sample`` subcommand (GradEP / FlowEqProp)."""

from __future__ import annotations

import os

from ...commands import add_user_errors, command, positive_int
from ...outputs import check_apart, missing_extra
from .errors import GradEPError


class WorkerDied(RuntimeError):
    """A training worker process died; the run stopped (the message says which and why)."""


# one ``asyncnet: error:`` line, no traceback (settings that cannot work, a state
# directory that holds another run, a dead worker)
add_user_errors(WorkerDied, GradEPError)

MODES = ("energy", "spring")
"""Sampling modes (:data:`.sampling.MODES`; here so that ``asyncnet --help`` does
not import scipy, numba and the scheme for every command)."""


@command("sample", "draw samples from a trained gradep (FlowEqProp) run")
def cmd_sample(args) -> int:
    """Sample, write FILE.npz and FILE.png, print the paths."""
    try:
        import matplotlib  # noqa: F401 - the grid it draws: missing, said before sampling
        from threadpoolctl import threadpool_limits

        from .sampling import is_checkpoint, sample, sample_stem, save_samples
    except ModuleNotFoundError as e:  # the scheme's extra (scipy, threadpoolctl, matplotlib)
        hint = missing_extra(e, "asyncnet sample", "gradep")
        if hint is None:
            raise
        raise GradEPError(hint) from None
    stem = sample_stem(args.output)
    check_apart({"samples": stem + ".npz", "samples' figure": stem + ".png"},
                {"state": _state_file(args.state)})
    if is_checkpoint(stem + ".npz"):
        raise GradEPError(f"{stem}.npz: a gradep checkpoint; the samples would overwrite it "
                          f"(give -o another path)")
    with threadpool_limits(args.threads):
        xs = sample(args.state, n=args.n, steps=args.steps, mode=args.mode, seed=args.seed)
    t_end = (args.steps - 1) * 0.01
    npz, png = save_samples(xs, stem, f"{args.mode} mode, t = {t_end:.1f}")
    print(f"samples   {npz} ({xs.shape[0]}×{xs.shape[1]}), grid {png}")
    return 0


def _state_file(state: str) -> str:
    """The checkpoint file ``asyncnet sample`` reads from ``state``."""
    return os.path.join(state, "checkpoint.npz") if os.path.isdir(state) else state


cmd_sample.configure = lambda p: (
    p.add_argument("state", help="a run's state directory (or a checkpoint .npz)"),
    p.add_argument("--steps", type=positive_int, default=101,
                   help="Euler steps: 101 (t1=1.0) or 121 (t1=1.2)"),
    p.add_argument("--mode", choices=MODES, default="energy"),
    p.add_argument("-n", type=positive_int, default=64, help="number of samples"),
    p.add_argument("-o", "--output", required=True, help="output stem: FILE.npz and FILE.png"),
    p.add_argument("--seed", type=int, default=0, help="seed of the noise"),
    p.add_argument("--threads", type=positive_int, default=1, help="BLAS threads"),
)
