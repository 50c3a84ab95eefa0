"""The Python API's argument checks, made before a run or a resume touches anything.

A wrong argument failed deep inside the run (``open``, the engine, a
progress call), sometimes after the log at that path was already cut:
here each is a ``TypeError`` (or a ``ScenarioError`` / ``OutputError``)
naming the argument, raised before any file is opened.
"""

from __future__ import annotations

import os

import numpy as np

from .outputs import OutputError
from .scenario import ScenarioError


def check_path(name: str, value: object) -> None:
    """A path argument is a path (a number there failed deep inside ``open``), not empty.

    Parameters
    ----------
    name:
        the argument's name, for the message.
    value:
        what was given (``None``: none).
    """
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got "
                        f"{type(value).__name__} {value!r}")
    if value is not None and not os.fspath(value):  # log="": ": is a directory"
        raise OutputError(f"{name}: an empty path")


def check_progress(progress: object) -> None:
    """A ``progress`` argument is True, False, None or a function (called deep in the run).

    Parameters
    ----------
    progress:
        what was given.
    """
    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise TypeError(f"progress must be True, False, None or a function of the simulated "
                        f"time, got {type(progress).__name__} {progress!r}"[:200])


def check_workers(workers: object) -> int:
    """The number of worker processes, a positive integer (bool refused).

    Parameters
    ----------
    workers:
        what was given.

    Returns
    -------
    It, as an ``int``.
    """
    if not isinstance(workers, (int, np.integer)) or isinstance(workers, bool) or workers < 1:
        raise ScenarioError(f"workers must be a positive integer, got {workers!r}")
    return int(workers)
