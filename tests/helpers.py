"""Shared test helpers: random graphs and small runs."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator

import networkx as nx
import numpy as np
import pytest

from asyncnet.engine import Engine
from asyncnet.messages import QUANTA
from asyncnet.network import Network


def random_dag(seed: int, n_hidden: int = 6, p: float = 0.5, delay=1.0) -> nx.DiGraph:
    """A random DAG: one input, hidden nodes in random order, one output.

    Every hidden node gets at least one parent and one child so every path
    leads from the input to the output. ``delay`` may be a callable(rng).
    """
    rng = np.random.default_rng(seed)
    g = nx.DiGraph()
    g.add_node("in", size=int(rng.integers(1, 4)), activation="linear", role="input")
    names = [f"h{i}" for i in range(n_hidden)]
    for n in names:
        g.add_node(n, size=int(rng.integers(1, 4)), activation="tanh", role="hidden")
    g.add_node("out", size=int(rng.integers(1, 3)), activation="tanh", role="output")
    order = ["in", *names, "out"]

    def d():
        return float(delay(rng)) if callable(delay) else delay

    for i, v in enumerate(order[1:], start=1):
        parents = [u for u in order[:i] if u != "out" and rng.random() < p]
        if not parents:
            parents = [order[int(rng.integers(0, i))]]
        for u in parents:
            g.add_edge(u, v, delay=d())
    for i, u in enumerate(order[:-1]):
        if g.out_degree(u) == 0:
            v = order[int(rng.integers(i + 1, len(order)))]
            g.add_edge(u, v, delay=d())
    return g


def gradient_trace(net: Network, rule, u, y, until: float, seed: int = 0):
    """Run with constant input/target; return {(synapse, frame): grad}."""
    inp, out = net.inputs()[0], net.outputs()[0]
    eng = Engine(net, rule, seed=seed, sources={inp: lambda t: u, out: lambda t: y})
    trace = {}
    legs = {p.name: p.legs[0] for p in net.projections.values()}

    def mon(agent, t):
        if agent.name in legs:
            trace[(agent.name, (t - legs[agent.name]) / QUANTA)] = agent.model.grad.copy()

    eng.monitors.append(mon)
    eng.run(until)
    return trace, eng


def free_port() -> int:
    """A TCP port on 127.0.0.1 that the OS just reported free.

    Tests that must name the coordinator's port in advance (a fake or remote
    worker connects to it) ask the OS instead of picking a fixed number, which
    could collide with an ephemeral port another connection holds.
    """
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def exact_problem(net: Network, seed: int):
    """A random input and target for ``net`` and the exact gradient of its loss,
    from the from-scratch backprop of ``tests/npref.py`` (shares no code with
    asyncnet). Returns ``(u, y, {(pre, post): dV/dW})``."""
    from . import npref

    rng = np.random.default_rng(seed)
    inp, out = net.inputs()[0], net.outputs()[0]
    u = rng.standard_normal(net.populations[inp].size)
    y = rng.uniform(-0.8, 0.8, net.populations[out].size)
    order, parents, W, b, act = npref.from_network(net)
    return u, y, npref.grads(order, parents, W, b, act, {inp: u}, {out: y})


def openblas_kernel() -> str | None:
    """The OpenBLAS kernel numpy computes with (``Haswell``, ``SkylakeX``, ...), or None."""
    from asyncnet.numerics import numpy_blas
    lib = numpy_blas() or {}
    return lib.get("architecture") if lib.get("internal_api") == "openblas" else None


@contextlib.contextmanager
def small_tmpfs(tmp_path, size: str) -> Iterator:
    """A tmpfs of ``size`` (``"16k"``) mounted under ``tmp_path``: a disk that fills up
    for real. Skips the test where it cannot be mounted (not root, no ``mount``)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def unfinish(log) -> None:
    """Cut a finished log's last byte: as a run killed while writing its footer.

    ``asyncnet resume`` continues such a run from its checkpoint; a log that is
    complete is left alone (the run is done), so a test that resumes a run it
    let finish makes it unfinished first.
    """
    with open(log, "r+b") as f:
        f.truncate(os.path.getsize(log) - 1)
