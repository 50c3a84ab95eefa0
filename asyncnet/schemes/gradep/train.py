"""Training runs: the engine or the numpy face, checkpoints, batch shards, progress.

A run lives in a *state directory*: ``checkpoint.npz`` (parameters, every
agent's Adam state, the step reached, the flow losses so far, the
configuration; written atomically: temp file, fsync, rename), a copy per
checkpoint under ``steps/`` (for figures at chosen steps), ``progress.txt``
(tqdm: loss and ETA) and ``losses.txt``. Running the same command again
continues from the last checkpoint; the result is the same bits as an
uninterrupted run, because a checkpoint falls between windows and every
step's batch depends only on ``(seed, step)``.

``workers > 1`` splits the batch: each process runs the whole network (engine
or face) on its rows, and every agent merges its batch sums with its twins
(pipes, in shard order, so all copies stay identical). A separate process
makes the batches (noise, exact OT, pairs) ahead of time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import networkx as nx
import numpy as np

from ...engine import Engine
from ...network import Network
from ...outputs import save_npz, write_whole
from . import physics as P
from .agents import GradEP, Teacher
from .data import make_batch
from .face import Face

NAMES = {"W0": ("x->h1", "weight"), "W1": ("h1->h2", "weight"), "c0": ("h1", "bias"),
         "c1": ("h2", "bias"), "bx": ("x", "bias")}


def graph(sizes: tuple = (64, 128, 128)) -> nx.DiGraph:
    """The scheme's network: x → h1 → h2, unit delays (symmetric couplings).

    Parameters
    ----------
    sizes: ``(n_x, n_h1, n_h2)``.

    Returns
    -------
    A DiGraph for :meth:`asyncnet.network.Network.from_graph`.
    """
    g = nx.DiGraph()
    for name, n, role in zip(P.POPS, sizes, ("input", "hidden", "output"), strict=True):
        g.add_node(name, size=n, activation="linear", role=role)
    g.add_edge("x", "h1", delay=1.0)
    g.add_edge("h1", "h2", delay=1.0)
    return g


PIXELS = 64
"""The size of a digit (8×8), and so of population ``x``."""


def sizes_of(net: Network) -> tuple:
    """The population sizes, checking the network is the scheme's.

    Parameters
    ----------
    net: a built network.

    Returns
    -------
    ``(n_x, n_h1, n_h2)``; raises :class:`GradEPError` for another shape.
    """
    if set(net.populations) != set(P.POPS) or set(net.projections) != {("x", "h1"),
                                                                        ("h1", "h2")}:
        have = ", ".join(net.populations) or "none"  # in the file's order
        edges = ", ".join(f"{a}->{b}" for a, b in net.projections) or "none"
        raise P.GradEPError(f"rule gradep needs populations x, h1, h2 and edges x->h1, "
                            f"h1->h2; this network has populations {have} and edges {edges}")
    if any(p.delay_q != net.projections[("x", "h1")].delay_q for p in net.projections.values()):
        raise P.GradEPError("rule gradep needs equal delays on both projections")
    return tuple(net.populations[n].size for n in P.POPS)


class EngineRun:
    """The engine training one shard: run to a step boundary, read/load parameters."""

    def __init__(self, rule: GradEP, net: Network, seed: int, steps: int,
                 batch: Callable[[int], tuple], start: int = 0):
        self.teacher = Teacher(rule, steps - start, batch, "x", ("h1", "h2"), start)
        self.start = start
        self.eng = Engine(net, rule, seed=seed, sources=self.teacher.sources(),
                          source_period=self.teacher.period, source_delay=1.0)

    def run_to(self, step: int) -> None:
        """Advance until every update of steps ``< step`` is applied."""
        self.eng.run(self.teacher.arrival(step - self.start) + 0.75, chunks=1)

    def losses(self) -> list[float]:
        """Flow losses measured by x so far (this run)."""
        return list(self.eng.agents["x"].model.losses)

    def state(self) -> dict:
        """Parameters and Adam states in the face's layout."""
        out = {}
        for k, (agent, key) in NAMES.items():
            st = self.eng.agents[agent].model.state()
            out[f"param/{k}"] = st[key]
            out.update({f"adam/{k}/{n}": st[f"adam/{n}"] for n in ("m", "v", "t")})
        return out

    def load(self, st: dict) -> None:
        """Give every agent its parameter and Adam state."""
        for k, (agent, key) in NAMES.items():
            self.eng.agents[agent].model.load(
                {key: st[f"param/{k}"], **{f"adam/{n}": st[f"adam/{k}/{n}"]
                                           for n in ("m", "v", "t")}})


class FaceRun:
    """The numpy face with the same interface as :class:`EngineRun`."""

    def __init__(self, rule: GradEP, sizes: tuple, seed: int, batch_total: int,
                 batch: Callable[[int], tuple], start: int = 0,
                 reduce: Callable | None = None):
        self.face = Face(rule.config(), P.init_params(sizes, seed), batch_total, reduce)
        self.batch = batch
        self.step = start
        self._losses: list[float] = []

    def run_to(self, step: int) -> None:
        """Train until ``step`` steps are done."""
        while self.step < step:
            self._losses.append(self.face.train_step(*self.batch(self.step)))
            self.step += 1

    def losses(self) -> list[float]:
        """Flow losses of the steps run so far (this run)."""
        return list(self._losses)

    def state(self) -> dict:
        """Parameters and Adam states."""
        return self.face.state()

    def load(self, st: dict) -> None:
        """Restore parameters and Adam states."""
        self.face.load(st)


def make_run(backend: str, rule: GradEP, seed: int, batch: int, steps: int, start: int = 0,
             data: Callable | None = None, rows: slice | None = None,
             sizes: tuple = (64, 128, 128), net: Network | None = None):
    """A training run of one shard, through the engine or the numpy face.

    Parameters
    ----------
    backend: ``"engine"`` or ``"face"``. rule: the parameters. seed: the run's
    seed (init and batches). batch: the full batch. steps: the last step.
    start: the first step (after a checkpoint). data: ``step -> (x_t, u)`` of
    this shard (default: made here). rows: this shard's rows. sizes: the
    population sizes. net: a network to use (engine; default :func:`graph`).

    Returns
    -------
    An :class:`EngineRun` or :class:`FaceRun` (``run_to``, ``losses``,
    ``state``, ``load``).
    """
    rows = rows or slice(0, batch)
    dt = rule.dtype
    data = data or (lambda s: tuple(a[rows] for a in make_batch(seed, s, batch, dtype=dt)))
    rule.batch_total = batch
    if backend == "engine":
        if rule.clip_mode == "global":
            raise P.GradEPError("clip_mode 'global' needs every agent's gradient: the engine "
                                "offers 'local' or 'none' (the numpy face has 'global')")
        net = net or Network.from_graph(graph(sizes), seed=seed)
        sizes_of(net)
        return EngineRun(rule, net, seed, steps, data, start)
    if backend == "face":
        return FaceRun(rule, sizes, seed, batch, data, start, rule.reduce)
    raise P.GradEPError(f"backend must be engine or face, got {backend!r}")


# -- checkpoints ----------------------------------------------------------------
def save_atomic(path: str, arrays: dict) -> None:
    """Write arrays so that a reader (or a crash) sees the old file or the new, never half.

    Parameters
    ----------
    path: the ``.npz`` to write. arrays: name -> array (no objects: no pickle).
    """
    save_npz(path, arrays, "the GradEP state")


def save_text_atomic(path: str, text: str) -> None:
    """Write a text file whole or not at all (temporary file, fsync, rename).

    Parameters
    ----------
    path: the file. text: its contents.
    """
    write_whole(path, lambda f: f.write(text.encode("utf-8")), "the GradEP state")


def load_checkpoint(state_dir: str) -> dict | None:
    """The last checkpoint of a run.

    Parameters
    ----------
    state_dir: the run's state directory.

    Returns
    -------
    name -> array (read without pickle), or None if there is none yet.
    """
    path = os.path.join(state_dir, "checkpoint.npz")
    if not os.path.exists(path):
        return None
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def run_config(ck: dict) -> dict:
    """The configuration a checkpoint was written with."""
    return json.loads(str(ck["config"]))
