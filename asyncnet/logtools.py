"""What every log tool needs from a log beyond its bytes: its scenario and engine.

``eventlog.open_log`` reads a log (header, streamed records, footer) and
knows nothing of scenarios; this module is the one place where a log's
embedded scenario text becomes a :class:`~asyncnet.scenario.Scenario` and a
ready engine — used by ``replay``, ``stats``, ``inspect``, ``plot`` and
``waves``.
"""

from __future__ import annotations

from typing import Any

from .logfile import EventLog, LogError
from .scenario import Scenario, ScenarioError, load
from .simulation import build_engine


def scenario_of(log: EventLog) -> Scenario:
    """The scenario a log embeds, validated like a scenario file.

    Parameters
    ----------
    log:
        an opened log (``eventlog.open_log``).

    Returns
    -------
    The :class:`Scenario` (its ``path`` is the one recorded in the header).

    Raises
    ------
    ScenarioError
        the embedded scenario does not load (named after the log file).
    """
    try:
        return load(log.header["scenario_path"], text=log.scenario_text)
    except ScenarioError as e:
        raise ScenarioError(f"{log.path}: the scenario it embeds does not load: {e}") from None
    except RecursionError:
        raise LogError(f"{log.path}: the scenario it embeds is nested too deeply") from None


def engine_of(log: EventLog, sc: Scenario | None = None, **kw: Any) -> tuple[Any, Any, Any]:
    """A fresh engine for the log's scenario, checked against the log's agents.

    Parameters
    ----------
    log:
        an opened log.
    sc:
        its scenario, if already loaded (default: ``scenario_of(log)``).
    **kw:
        passed to ``simulation.build_engine`` (e.g. ``local``, ``remote``).

    Returns
    -------
    ``(engine, network, stream)`` as ``build_engine`` gives them.

    Raises
    ------
    LogError
        the scenario's network does not have the log's agent table.
    """
    sc = sc or scenario_of(log)
    eng, net, stream = build_engine(sc, **kw)
    if eng.names != log.agents:
        raise LogError(f"{log.path}: the log's agent table differs from the network of the "
                       f"scenario it embeds")
    return eng, net, stream


__all__ = ["scenario_of", "engine_of"]
