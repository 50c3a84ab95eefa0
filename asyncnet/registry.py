"""The scheme registry: a scenario's ``[rule] name`` -> the scheme's class.

Built-in schemes are listed here by import path; another installed package
adds its own through the entry-point group ``asyncnet.schemes``::

    [project.entry-points."asyncnet.schemes"]
    echo = "mypackage.echo:Echo"

(:func:`register` does the same for the current process only: cluster
workers are separate processes and find schemes through entry points.)
A scheme that fails to import is an error that says so, never "unknown".
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from importlib.metadata import entry_points
from typing import Any

from .outputs import missing_extra

GROUP = "asyncnet.schemes"
EXTRAS = {"gradep": "gradep"}
"""Built-in rules whose optional dependencies an extra installs: rule -> extra."""
BUILTIN: dict[str, str] = {
    "diffusion": "asyncnet.schemes.diffusion:Diffusion",
    "leastaction": "asyncnet.schemes.leastaction:LeastAction",
    "continuous": "asyncnet.schemes.continuous:Continuous",
    "ep": "asyncnet.schemes.ep:EP",
    "coupled": "asyncnet.schemes.coupled:Coupled",
    "stlp": "asyncnet.schemes.stlp:STLPScheme",
    "gradep": "asyncnet.schemes.gradep.scheme:GradEPScheme",
}
_REGISTERED: dict[str, Any] = {}


class SchemeError(ValueError):
    """A scheme is unknown or cannot be loaded."""


def register(name: str, scheme: Any) -> None:
    """Make ``scheme`` (a class) available as ``[rule] name`` in this process.

    Parameters
    ----------
    name:
        The name scenarios use.
    scheme:
        The scheme's parameter class (see :mod:`asyncnet.api`).

    Raises
    ------
    SchemeError
        ``name`` is no name or a built-in rule's (as for a plugin, a
        built-in is never taken over), or ``scheme`` is no class with the
        two factories ``neuron`` and ``synapse``.
    """
    if not isinstance(name, str) or not name.strip():
        raise SchemeError(f"register: a rule's name is a non-empty string, got {name!r}")
    if name in BUILTIN:
        raise SchemeError(f"register: {name!r} is a built-in rule; register under another name")
    if not isinstance(scheme, type):
        raise SchemeError(f"register: rule {name!r} must be a class (called with the "
                          f"scenario's [rule] parameters), got {type(scheme).__name__}")
    missing = [f"{f}()" for f in ("neuron", "synapse") if not callable(getattr(scheme, f, None))]
    if missing:
        raise SchemeError(f"register: rule {name!r}: {scheme.__name__} has no "
                          f"{' and no '.join(missing)} (see asyncnet.api.Scheme)")
    if not dataclasses.is_dataclass(scheme):
        try:
            takes = [p for p in inspect.signature(scheme).parameters.values()
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        except (TypeError, ValueError):
            takes = []
        if takes:  # every key given to it was refused: 'unknown key (known: )'
            raise SchemeError(f"register: rule {name!r}: {scheme.__name__} takes "
                              f"{', '.join(p.name for p in takes)} but is no dataclass: the "
                              f"[rule] keys are a scheme's dataclass fields (decorate it with "
                              f"@dataclasses.dataclass; see asyncnet.api.Scheme)")
    _REGISTERED[name] = scheme


def only_here(name: str) -> bool:
    """Whether rule ``name`` exists in this process only (:func:`register`): a
    worker process, which finds schemes by name, would not know it."""
    return name in _REGISTERED


def _targets() -> dict[str, str]:
    found = dict(BUILTIN)
    for ep in entry_points(group=GROUP):
        if ep.name in BUILTIN:
            continue  # a built-in name cannot be taken over by a plugin
        found.setdefault(ep.name, ep.value)
    return found


def known() -> list[str]:
    """Every scheme name available, sorted.

    Returns
    -------
    The built-in names, those of installed plugins (entry points) and those
    :func:`register` added in this process.
    """
    return sorted(set(_targets()) | set(_REGISTERED))


def get_scheme(name: str) -> Any:
    """The scheme class called ``name``.

    Parameters
    ----------
    name:
        A scheme name.

    Returns
    -------
    The class; calling it with the scenario's ``[rule]`` parameters gives
    the scheme object.

    Raises
    ------
    SchemeError
        The name is unknown, or its module fails to import.
    """
    if name in _REGISTERED:
        return _REGISTERED[name]
    # a built-in name is never a plugin's: no scan of every installed package
    # (hundreds of metadata files, ~20 ms, on each scenario loaded)
    target = BUILTIN.get(name) or _targets().get(name)
    if target is None:
        raise SchemeError(f"unknown rule {name!r} (known: {', '.join(known())})")
    module, _, attr = target.partition(":")
    try:
        mod = importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - any failure of a plugin's import is reported
        # a built-in scheme's optional dependency (GradEP's scipy): the extra named
        hint = missing_extra(e, f"rule {name!r}", EXTRAS[name]) \
            if isinstance(e, ModuleNotFoundError) and name in EXTRAS else None
        if hint:
            raise SchemeError(hint) from None
        raise SchemeError(f"rule {name!r}: its module {module} failed to import "
                          f"({type(e).__name__}: {e})") from e
    try:
        return getattr(mod, attr)
    except AttributeError:
        raise SchemeError(f"rule {name!r}: {module} has no {attr!r}") from None
