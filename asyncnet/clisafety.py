"""What the command line says when a run stops: what it leaves behind and how to go on.

Kept apart from :mod:`asyncnet.cli` (which has no room left) so that every
message naming a run's outputs is written in one place.
"""

from __future__ import annotations

import os


def interrupted_note(log_path: str | None, ck_dir: str | None) -> str:
    """What an interrupted run leaves behind (the interrupt message's second half).

    Parameters
    ----------
    log_path:
        the run's event log, if it writes one.
    ck_dir:
        its checkpoint directory, if it writes checkpoints.

    Returns
    -------
    One clause per output, naming the command that continues the run.
    """
    said = []
    if log_path:
        said.append(f"the log {log_path} ends at its last whole instant (replay --verify "
                    f"checks it as a prefix)")
    if ck_dir:
        said.append(resume_note(ck_dir) or f"no checkpoint was written yet in {ck_dir}")
    return "; ".join(said) or "no log or checkpoint was being written"


def resume_note(ck_dir: str | None) -> str | None:
    """How a stopped run goes on from its checkpoints, if it wrote any.

    Parameters
    ----------
    ck_dir:
        the run's checkpoint directory (``None``: it wrote none).

    Returns
    -------
    ``"asyncnet resume DIR continues from its newest checkpoint (t=T)"``, or
    ``None`` if there is no checkpoint in it.
    """
    from .ckfile import candidates, instant_of
    from .messages import QUANTA
    files = candidates(ck_dir) if ck_dir and os.path.isdir(ck_dir) else []
    if not files:
        return None
    t = instant_of(files[0]) / QUANTA  # from the newest file's name: nothing read
    return f"asyncnet resume {ck_dir} continues from its newest checkpoint (t={t:g})"
