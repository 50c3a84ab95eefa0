"""The generic analyses, by ``[analysis] kind``, for schemes to pick from.

Every kind here also reports ``result`` (the network's own output).
"""

from __future__ import annotations

from .alignment import Alignment
from .evaluation import Evaluation
from .exactness import Exactness
from .relaxation import SettlingAnalysis, TrackingAnalysis

GENERIC: dict[str, tuple] = {
    "accuracy": (Evaluation,),
    "none": (Evaluation,),
    "exactness": (Evaluation, Exactness),
    "alignment": (Evaluation, Alignment),
    "settling": (Evaluation, SettlingAnalysis),
    "tracking": (Evaluation, TrackingAnalysis),
}


def kinds(*names: str) -> dict[str, tuple]:
    """The generic analyses called ``names``: kind -> analysis classes."""
    return {n: GENERIC[n] for n in names}
