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
    from .ckfile import candidates, instant_of
    from .messages import QUANTA
    said = []
    if log_path:
        said.append(f"the log {log_path} ends at its last whole instant (replay --verify "
                    f"checks it as a prefix)")
    if ck_dir:
        files = candidates(ck_dir) if os.path.isdir(ck_dir) else []
        if files:  # the instant from the newest file's name: nothing read
            t = instant_of(files[0]) / QUANTA
            said.append(f"asyncnet resume {ck_dir} continues from its newest checkpoint "
                        f"(t={t:g})")
        else:
            said.append(f"no checkpoint was written yet in {ck_dir}")
    return "; ".join(said) or "no log or checkpoint was being written"
