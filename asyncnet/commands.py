"""The command table and progress display shared by the CLI's modules.

``asyncnet.cli`` builds its parser from ``COMMANDS``; modules that add a
subcommand (plot, inspect, worker, keys) register it here with
:func:`command`, and the exceptions that mean "the user gave bad input"
with :func:`add_user_errors`. Nothing here imports the modules that
register, so the CLI depends on them and not the other way round.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable

from .api import ModelError
from .checkpoint import CheckpointError
from .ckstate import StateError
from .data import DataError
from .eventlog import LogError
from .messages import LocalityError
from .network import NetworkError
from .outputs import OutputError
from .registry import SchemeError
from .scenario import ScenarioError

COMMANDS: dict[str, tuple[Callable, str]] = {}
_USER_ERRORS: list[type[BaseException]] = [
    ScenarioError, NetworkError, DataError, LogError, LocalityError, SchemeError, OutputError,
    CheckpointError, StateError, ModelError,
    FileNotFoundError, PermissionError, IsADirectoryError]


def command(name: str, help: str) -> Callable:
    """Register a subcommand: ``fn(args)`` plus ``fn.configure(parser)``.

    Parameters
    ----------
    name:
        The subcommand (``asyncnet NAME ...``).
    help:
        One line for ``asyncnet --help``.

    Returns
    -------
    The decorator.
    """
    def deco(fn: Callable) -> Callable:
        COMMANDS[name] = (fn, help)
        return fn
    return deco


def add_user_errors(*errors: type[BaseException]) -> None:
    """Exceptions that end a command with one ``asyncnet: error:`` line, exit 2."""
    _USER_ERRORS.extend(errors)


def user_errors() -> tuple[type[BaseException], ...]:
    """Every exception class that is the user's input being wrong."""
    return tuple(_USER_ERRORS)


class Progress:
    """Progress of a run in simulated time, on stderr.

    A bar with rate and ETA (tqdm) on a terminal or in a notebook; one plain
    line per 10% when stderr is a file (a batch job's log stays readable).

    Parameters
    ----------
    total:
        The simulated time at the end.
    label:
        What runs (the scenario's name).
    enabled:
        ``False`` for ``-q``.
    """

    def __init__(self, total: float, label: str, enabled: bool = True):
        self.total, self.label, self.enabled = total, label, enabled
        self.start = time.perf_counter()
        self.shown = 0  # tenths printed: the first line at 10%, as the docs say
        self.bar = None
        interactive = sys.stderr.isatty() or "ipykernel" in sys.modules
        if enabled and total > 0 and interactive:
            tqdm = _tqdm_class()
            self.bar = tqdm(total=float(total), desc=label, unit="t", leave=True,
                            bar_format="{desc} {percentage:3.0f}%|{bar}| t={n:g}/{total:g} "
                                       "[{elapsed}<{remaining}, {rate_fmt}]")

    def __call__(self, now: float) -> None:
        if not self.enabled or self.total <= 0:
            return
        # to a thousandth of the total's order (t=0.999999/1: a distributed run's last
        # window ends a quantum before the end; an in-process run reports fiftieths)
        now = round(now, 3 - math.floor(math.log10(self.total)))
        if self.bar is not None:
            self.bar.update(min(now, self.total) - self.bar.n)
            if now >= self.total:
                self.bar.close()
            return
        pct = int(min(1.0, now / self.total) * 100)
        if pct // 10 > self.shown:
            self.shown = pct // 10
            el = time.perf_counter() - self.start
            print(f"{self.label}: {pct}% (t={now:g}/{self.total:g}, {el:.1f}s)",
                  file=sys.stderr, flush=True)


def _tqdm_class() -> type:
    """tqdm's notebook widget in a Jupyter kernel with ipywidgets, else its text bar
    (which a notebook shows too; ``tqdm.auto`` would warn about the widgets)."""
    if "ipykernel" in sys.modules:
        try:
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm
            return tqdm
        except ImportError:
            pass
    from tqdm.std import tqdm
    return tqdm


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1.

    Parameters
    ----------
    text:
        The option's value as typed.

    Returns
    -------
    The integer; ``argparse.ArgumentTypeError`` if it is not one or is below 1.
    """
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def positive_time(text: str) -> float:
    """argparse type: a finite time above 0 (``plot --until``).

    Parameters
    ----------
    text:
        The option's value as typed.

    Returns
    -------
    The time; ``argparse.ArgumentTypeError`` if it is not a finite positive number.
    """
    x = finite_float(text)
    if x <= 0:
        raise argparse.ArgumentTypeError(f"must be a time above 0, got {text!r}")
    return x


def finite_float(text: str) -> float:
    """argparse type: a finite number (no nan, no inf).

    Parameters
    ----------
    text:
        The option's value as typed.

    Returns
    -------
    The number; ``argparse.ArgumentTypeError`` if it is not a finite one.
    """
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(x):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return x
