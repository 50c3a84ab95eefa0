"""The ZeroMQ runtime: the same run spread over worker processes and machines.

Importing this package does not import ZeroMQ (the ``asyncnet`` command loads
``asyncnet.cluster.cli`` on every start); ``pyzmq`` is imported only when a
distributed run or a worker actually starts.
"""

from __future__ import annotations

from typing import Any


def simulate_distributed(sc: Any, *, workers: int | None = None,
                         cluster_file: str | None = None, bind: str | None = None,
                         **kw: Any) -> dict:
    """Run a scenario over worker processes (see ``coordinator.simulate_distributed``).

    ``cluster_file`` (a TOML file, see ``distributed/``) gives the workers, the
    bind address, timeouts and keys; ``workers`` and ``bind`` override it.
    """
    from .coordinator import simulate_distributed as run
    opts: dict[str, Any] = {}
    if cluster_file:
        from .config import load_cluster
        opts = load_cluster(cluster_file)
    if workers:
        if cluster_file and workers != opts["workers"]:
            opts["local"] = max(0, workers - (opts["workers"] - opts["local"]))
        opts["workers"] = workers
    if bind:
        opts["bind"] = bind
    opts.setdefault("workers", 1)
    return run(sc, **opts, **kw)


__all__ = ["simulate_distributed"]
