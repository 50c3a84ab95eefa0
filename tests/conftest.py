"""Shared fixtures: the ``backend`` every scheme test can run on.

``backend`` is a function ``(scenario, **run_kwargs) -> Result`` that runs
through the public API (:func:`asyncnet.run`) in this process, or on the
ZeroMQ cluster with 2 workers (default suite) and 1 or 3 workers (``-m slow``).
"""

from __future__ import annotations

import pytest

import asyncnet

BACKENDS = [
    pytest.param(1, id="inprocess"),
    pytest.param(2, id="cluster2"),
    pytest.param(-1, id="cluster1", marks=pytest.mark.slow),
    pytest.param(3, id="cluster3", marks=pytest.mark.slow),
]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Run a scenario on one backend: ``backend(sc, **kw) -> Result``."""
    n = request.param

    def run(sc, **kw):
        return asyncnet.run(sc, workers=abs(n), cluster=n < 0, **kw)

    run.workers = n
    return run
