"""asyncnet: asynchronous neurons and synapses exchanging timestamped messages.

The public API::

    import asyncnet
    g = asyncnet.layered([2, 4, 1])                 # or any networkx.DiGraph
    sc = asyncnet.Scenario(g, "diffusion", params={"eta": 0.05},
                           data={"kind": "xor", "hold": 8}, duration=4000, seed=1)
    res = asyncnet.run(sc, workers=2, log="runs/xor.log", record={"l2": ["state"]})
    res.summary["result"], res.recorded["l2"]["state"], res.state("l1->l2")
    log = asyncnet.open_log("runs/xor.log")         # the event log: scan, records, tables

Submodules (``asyncnet.plots``, ``asyncnet.tables``, ``asyncnet.waves``, ...)
are imported when first named, as numpy's are: ``import asyncnet`` stays
light (matplotlib and pandas are optional extras).
"""

import importlib
import pkgutil
from typing import Any

from ._version import __version__
from .api import Model, Ports, Scheme
from .logfile import open_log
from .messages import Kind
from .network import Network, expand_to_neurons, layered
from .registry import SchemeError, get_scheme, known, register
from .runner import Recorder, Result, resume, run
from .scenario import Scenario, ScenarioError

__all__ = [
    "__version__", "Kind", "Model", "Network", "Ports", "Recorder", "Result", "Scenario",
    "ScenarioError", "Scheme", "SchemeError", "expand_to_neurons", "get_scheme", "known",
    "layered", "open_log", "register", "resume", "run",
]

_SUBMODULES = frozenset(m.name for m in pkgutil.iter_modules(__path__))


def __getattr__(name: str) -> Any:
    """A submodule named for the first time (``asyncnet.plots``): imported then."""
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'asyncnet' has no attribute {name!r}")
