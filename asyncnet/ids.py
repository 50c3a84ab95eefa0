"""Agent ids: the one place that builds and parses them.

A neuron agent is named after its population (``"h1"``), a synapse agent
after its projection (``"h0->h1"``), a data source after the population it
feeds (``"src:h0"``). Population names may contain neither ``->`` nor ``:``
(``network.py`` refuses them), so the three forms never collide.
"""

from __future__ import annotations

from typing import Literal

SYNAPSE_SEP = "->"
SOURCE_PREFIX = "src:"
AgentKind = Literal["neuron", "synapse", "source"]


def synapse_id(pre: str, post: str) -> str:
    """The id of the synapse agent of projection ``pre -> post``."""
    return f"{pre}{SYNAPSE_SEP}{post}"


def source_id(node: str) -> str:
    """The id of the data source feeding population ``node``."""
    return f"{SOURCE_PREFIX}{node}"


def is_source(agent: str) -> bool:
    """Whether ``agent`` is a data source."""
    return agent.startswith(SOURCE_PREFIX)


def is_synapse(agent: str) -> bool:
    """Whether ``agent`` is a synapse (projection) agent."""
    return SYNAPSE_SEP in agent


def kind_of(agent: str) -> AgentKind:
    """``"source"``, ``"synapse"`` or ``"neuron"``."""
    if is_source(agent):
        return "source"
    return "synapse" if is_synapse(agent) else "neuron"


def split_synapse(agent: str) -> tuple[str, str]:
    """``(pre, post)`` of a synapse id."""
    pre, sep, post = agent.partition(SYNAPSE_SEP)
    if not sep:
        raise ValueError(f"{agent!r} is not a synapse id")
    return pre, post


def source_node(agent: str) -> str:
    """The population a source id feeds."""
    if not is_source(agent):
        raise ValueError(f"{agent!r} is not a source id")
    return agent[len(SOURCE_PREFIX):]
