"""Learning schemes: one module per scheme, each only local physics.

``RULES`` maps a scenario's ``rule.name`` to a factory ``params -> rule``;
scheme modules register themselves here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

RULES: dict[str, Callable[..., Any]] = {}


def register(name: str) -> Callable:
    """Class decorator: make a rule available to scenarios by ``name``."""
    def deco(factory: Callable) -> Callable:
        RULES[name] = factory
        return factory
    return deco


def get_rule(name: str) -> Callable[..., Any]:
    """The rule factory called ``name``; imports the built-in schemes first."""
    from . import diffusion  # noqa: F401  (registers itself)
    for mod in ("leastaction", "continuous", "ep", "coupled"):
        try:
            __import__(f"{__name__}.{mod}")
        except ImportError:
            pass
    try:  # schemes that live in asyncnet/schemes/ (issue 9's layout)
        from ..schemes.gradep import agents as _gradep  # noqa: F401
    except ImportError:
        pass
    if name not in RULES:
        raise KeyError(name)
    return RULES[name]
