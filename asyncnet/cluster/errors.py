"""Errors of distributed runs (no ZeroMQ import, so the CLI can name them)."""

from __future__ import annotations


class ClusterError(RuntimeError):
    """A distributed run cannot go on: a worker died, hung or failed."""


class WorkerLost(ClusterError):
    """A worker died or stopped answering (``--restart-workers`` restarts from a checkpoint)."""


class KeysError(ValueError):
    """CURVE key files are missing or unreadable."""
