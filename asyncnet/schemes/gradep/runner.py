"""One training run end to end: processes, batch shards, checkpoints, progress.

:func:`train` is the entry point (the CLI's ``asyncnet run`` of a gradep
scenario comes here through :mod:`.scheme`). Layout of the state directory: see :mod:`.train`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from multiprocessing.connection import wait
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits  # the scheme's extra: a missing one is named

from ...analysis.divergence import LIMIT
from ...outputs import lock_alone
from . import train as T
from .agents import GradEP
from .cli import WorkerDied
from .data import make_batch

if importlib.util.find_spec("sklearn") is None:  # the digits it trains on, read in each
    # worker: said once here, at the scheme's import, not as a worker's traceback
    raise ModuleNotFoundError("No module named 'sklearn'", name="sklearn")

PEER_LOST = 75
"""A worker's exit code when a peer's pipe closed under it (the peer died first)."""
DIVERGED_STOP = 76
"""Shard 0's exit code when it stopped the run at a checkpoint whose loss diverged."""
CONFIG_KEYS = ("lam", "alpha", "beta", "eps", "free_steps", "nudge_steps", "lr", "adam_b1",
               "adam_b2", "adam_eps", "clip", "clip_mode", "dtype", "sizes", "kernel")


def _die_with_parent() -> None:
    """Linux: end this process when the run's main process ends (killed or not)."""
    try:
        import ctypes
        import signal
        # a forked worker inherits the CLI's SIGTERM handler (unwind, write a footer):
        # it has no log to close, and the run ends it with SIGTERM
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PDEATHSIG
    except (OSError, AttributeError):
        pass


def keep_freed_memory() -> bool:
    """Linux/glibc: keep freed memory in this process instead of returning it to the system.

    Every relaxation step makes new ``batch × n`` arrays (messages are never
    written to) and frees the old ones, about half a megabyte each. By default
    glibc hands such blocks back to the kernel (mmap, heap trimming), so each
    new array pays page faults on first touch: that doubled the time of a
    population's elementwise step here. With a 32 MB mmap threshold and no
    trimming, freed blocks are reused. Returns whether the settings took.
    """
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        # M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3 (mallopt returns 1 on success)
        return bool(libc.mallopt(-1, 1 << 30)) and bool(libc.mallopt(-3, 32 << 20))
    except (OSError, AttributeError):
        return False


def _shard_rows(batch: int, shard: int, workers: int) -> slice:
    lo = batch * shard // workers
    return slice(lo, batch * (shard + 1) // workers)


class _SharedBatches:
    """Every worker makes one batch in W, all at the same step, and they swap rows.

    A batch's exact assignment is one indivisible ~0.3 s piece of work. Made by
    one process beside the workers, it delays one of them (or both wait for it).
    Here, at every W-th step, worker k makes the batch of step ``base + k`` and
    sends each peer that peer's rows: the workers do equal work in every step
    and meet again in step. The batches are the same as anywhere else (each is
    ``make_batch(seed, step)``), so the run's numbers do not change.
    """

    def __init__(self, seed: int, batch: int, dtype: str, start: int, steps: int, shard: int,
                 workers: int, conns: dict):
        self.seed, self.batch, self.dtype = seed, batch, dtype
        self.start, self.steps, self.shard, self.W, self.conns = start, steps, shard, workers, conns
        self.ready: dict[int, tuple] = {}

    def _rows(self, xt: np.ndarray, u: np.ndarray, shard: int) -> tuple:
        r = _shard_rows(self.batch, shard, self.W)
        return np.ascontiguousarray(xt[r]), np.ascontiguousarray(u[r])

    def __call__(self, step: int) -> tuple:
        if step not in self.ready:
            base = step - (step - self.start) % self.W
            mine = base + self.shard
            own = None
            if mine < self.steps:
                own = make_batch(self.seed, mine, self.batch, dtype=self.dtype)
                self.ready[mine] = self._rows(*own, self.shard)
            for peer in sorted(self.conns):  # the reducer's fixed pairwise order
                c, theirs = self.conns[peer], base + peer
                out = b"" if own is None else b"".join(a.tobytes() for a in
                                                         self._rows(*own, peer))
                if self.shard < peer:
                    c.send_bytes(out)
                    got = c.recv_bytes()
                else:
                    got = c.recv_bytes()
                    c.send_bytes(out)
                if theirs < self.steps:
                    n = _shard_rows(self.batch, self.shard, self.W)
                    flat = np.frombuffer(got, self.dtype).reshape(2, n.stop - n.start, -1)
                    self.ready[theirs] = (flat[0].copy(), flat[1].copy())
        return self.ready.pop(step)


class _Reducer:
    """Sum a batch partial over all shards, in shard order (identical in every shard)."""

    def __init__(self, shard: int, conns: dict):
        self.shard, self.conns = shard, conns

    def __call__(self, key: str, a: np.ndarray) -> np.ndarray:
        a = np.ascontiguousarray(a)
        parts = {self.shard: a}
        tag = key.encode()
        for peer in sorted(self.conns):  # a fixed pairwise order: no deadlock
            c = self.conns[peer]
            if self.shard < peer:
                c.send_bytes(tag + b"\0" + a.tobytes())
                got = c.recv_bytes()
            else:
                got = c.recv_bytes()
                c.send_bytes(tag + b"\0" + a.tobytes())
            k, _, raw = got.partition(b"\0")
            if k != tag:
                raise RuntimeError(f"shards out of step: {key!r} vs {k.decode()!r}")
            parts[peer] = np.frombuffer(raw, a.dtype).reshape(a.shape)
        total = parts[0]
        for s in range(1, len(parts)):
            total = total + parts[s]
        return total


def _config(rule: GradEP, seed: int, batch: int, backend: str, workers: int) -> dict:
    cfg = {k: getattr(rule, k) for k in CONFIG_KEYS}
    cfg["sizes"] = list(cfg["sizes"])
    cfg.update(seed=seed, batch=batch, backend=backend, workers=workers)
    return cfg


def _worker(foreign: list, *args: Any) -> None:
    """A worker process: :func:`_work`, ending with :data:`PEER_LOST` (no traceback)
    when a peer's pipe closes under it (the parent names the peer that died).

    ``foreign``: the pipe ends of other workers, inherited through the fork;
    closed first, so that a peer's death closes its pipe everywhere.
    """
    # Ctrl-C reaches the whole process group: the parent ends the workers (SIGTERM)
    # and says what is kept; a worker unwinding on its own would print a traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for c in foreign:
        c.close()
    try:
        _work(*args)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        os._exit(PEER_LOST)


def _work(backend: str, params: dict, seed: int, batch: int, steps: int, start: int,
          ck: dict | None, shard: int, workers: int, conns: dict, state_dir: str,
          every: int, threads: int, losses0: list, say: bool = True) -> None:
    _die_with_parent()
    keep_freed_memory()
    threadpool_limits(threads)
    rule = GradEP(**params)
    if workers > 1:
        rule.reduce = _Reducer(shard, conns)
    rows = _shard_rows(batch, shard, workers)
    data = None  # one process: make_run makes each batch itself
    if workers > 1:
        data = _SharedBatches(seed, batch, params["dtype"], start, steps, shard, workers, conns)
    run = T.make_run(backend, rule, seed, batch, steps, start, data, rows, tuple(rule.sizes))
    if ck is not None:
        run.load(ck)
    if shard != 0:
        for k in _boundaries(start, steps, every):
            run.run_to(k)
        return
    _lead(run, rule, seed, batch, backend, workers, start, steps, every, state_dir, losses0,
          say)


def _boundaries(start: int, steps: int, every: int) -> list[int]:
    ks = list(range((start // every + 1) * every, steps, every))
    return ks + [steps]


def _lead(run, rule, seed, batch, backend, workers, start, steps, every, state_dir,
          losses0, say: bool = True) -> None:
    """Shard 0: run, checkpoint, report progress (a line a checkpoint on stderr if
    ``say``: stdout is the summary's, one JSON object with ``--json``)."""
    from tqdm import tqdm
    cfg = _config(rule, seed, batch, backend, workers)
    os.makedirs(os.path.join(state_dir, "steps"), exist_ok=True)
    with open(os.path.join(state_dir, "progress.txt"), "a") as pf:
        bar = tqdm(total=steps, initial=start, file=pf, mininterval=10, ascii=True,
                   dynamic_ncols=False, ncols=100, unit="step")
        t0 = time.perf_counter()
        for k in _boundaries(start, steps, every):
            run.run_to(k)
            losses = losses0 + run.losses()
            arrays = {**run.state(), "step": np.array(k), "losses": np.array(losses),
                      "config": np.array(json.dumps(cfg))}
            T.save_atomic(os.path.join(state_dir, "checkpoint.npz"), arrays)
            T.save_atomic(os.path.join(state_dir, "steps", f"step_{k:05d}.npz"), arrays)
            with open(os.path.join(state_dir, "losses.txt"), "w") as f:
                f.write("".join(f"{i} {v:.6f}\n" for i, v in enumerate(losses)))
            bar.update(k - bar.n)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=True)
            el = time.perf_counter() - t0
            if say:
                print(f"gradep: step {k}/{steps} loss {losses[-1]:.4f} "
                      f"({el / (k - start):.2f} s/step this session)", file=sys.stderr,
                      flush=True)
            if k < steps and diverged_at(losses) is not None:
                break  # every later step is NaN or worse: the checkpoint shows where
        bar.close()
    if k < steps:
        raise SystemExit(DIVERGED_STOP)  # the parent stops the other shards


def train(rule: GradEP, *, seed: int, batch: int, state_dir: str, backend: str | None = None,
          steps: int | None = None, progress: bool = True,
          scenario_text: str | None = None) -> dict:
    """Train (or continue training) into ``state_dir``; return a summary.

    Parameters
    ----------
    rule: the scheme's parameters (``workers``, ``threads``, ``checkpoint_every``).
    seed: the run's seed. batch: pairs per step (1797 = the full data set).
    state_dir: where checkpoints live; an existing checkpoint is continued.
    backend: ``"engine"`` or ``"face"`` (default ``rule.backend``). steps: default
    ``rule.steps``. progress: a line on stderr at each checkpoint (the
    state directory's ``progress.txt`` is written either way). scenario_text:
    written as the directory's ``scenario.toml`` once its checkpoint (if any)
    is known to be of this run (``asyncnet resume`` reads it).

    The directory is locked while the run trains (another process training
    into it is refused before it writes a byte).

    Returns
    -------
    ``{"steps", "losses", "wall_seconds", "state_dir", "resumed_from"}``.
    """
    steps = steps or rule.steps
    backend = backend or rule.backend
    if rule.workers > batch:  # a worker without rows died on an empty shard
        raise T.P.GradEPError(f"workers = {rule.workers} is more than batch = {batch}: each "
                              f"worker takes a share of the batch")
    os.makedirs(state_dir, exist_ok=True)
    with _locked(state_dir):
        return _train(rule, seed, batch, state_dir, backend, steps, progress, scenario_text)


@contextlib.contextmanager
def _locked(state_dir: str) -> Iterator[None]:
    """Hold ``state_dir``'s ``.lock`` (flock) while a run trains into it: a second run
    would overwrite the first's checkpoints with its own, step by step."""
    f = open(os.path.join(state_dir, ".lock"), "ab")
    try:
        lock_alone(f)
    except BlockingIOError:
        f.close()
        raise T.P.GradEPError(f"{state_dir}: another asyncnet process trains into this state "
                              f"directory; this run stopped without touching it (wait for "
                              f"that one, or give this one another state_dir)") from None
    try:
        yield
    finally:
        f.close()  # the forked workers have ended: closing drops the lock


def _train(rule, seed, batch, state_dir, backend, steps, progress, scenario_text) -> dict:
    ck = T.load_checkpoint(state_dir)
    start, losses0 = 0, []
    cfg = _config(rule, seed, batch, backend, rule.workers)
    if ck is not None:
        old = T.run_config(ck)
        old.setdefault("kernel", "exact")  # checkpoints from before the key: exact
        diff = {k for k in cfg if old.get(k) != cfg[k] and k not in ("workers", "backend")}
        if diff:
            raise T.P.GradEPError(f"{state_dir} holds a run with other settings "
                                  f"({', '.join(sorted(diff))}); use another state directory")
        start, losses0 = int(ck["step"]), [float(v) for v in ck["losses"]]
    if scenario_text is not None:  # the scenario beside its checkpoints: what resume reads
        T.save_text_atomic(os.path.join(state_dir, "scenario.toml"), scenario_text)
    t0 = time.perf_counter()
    if start < steps:
        _spawn(rule, seed, batch, steps, start, ck, backend, state_dir, losses0, progress)
    ck = T.load_checkpoint(state_dir)
    return {"steps": int(ck["step"]), "losses": [float(v) for v in ck["losses"]],
            "wall_seconds": time.perf_counter() - t0, "state_dir": state_dir,
            "resumed_from": start}


def _spawn(rule, seed, batch, steps, start, ck, backend, state_dir, losses0, say=True):
    W = rule.workers
    params = {k: v for k, v in asdict(rule).items() if k not in ("name", "requires_dag")}
    ctx = mp.get_context("fork")
    pipes = {}
    for a in range(W):
        for b in range(a + 1, W):
            pipes[(a, b)] = ctx.Pipe()
    procs = []
    for s in range(W):
        conns = {}
        for (a, b), (ca, cb) in pipes.items():
            if s == a:
                conns[b] = ca
            elif s == b:
                conns[a] = cb
        foreign = [c for (a, b), ends in pipes.items() for c, owner in zip(ends, (a, b),
                                                                          strict=True)
                   if owner != s]
        procs.append(ctx.Process(target=_worker, args=(
            foreign, backend, params, seed, batch, steps, start, ck, s, W, conns, state_dir,
            rule.checkpoint_every, rule.threads, losses0, say)))
    for p in procs:
        p.start()
    # only the workers hold their own ends (each closed the others' it inherited):
    # when one dies, its peers read EOF at once (were any other process to keep
    # an end open, a peer would wait for the dead one forever)
    for ca, cb in pipes.values():
        ca.close()
        cb.close()
    try:
        live = {p.sentinel: s for s, p in enumerate(procs)}
        while live:
            for sentinel in wait(list(live)):
                s = live.pop(sentinel)
                procs[s].join()
                if procs[s].exitcode != 0:
                    if _stopped_diverged(procs, s):
                        return  # the checkpoint holds the diverged loss: reported by the caller
                    raise WorkerDied(_failure(procs, s, state_dir))
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()


def _stopped_diverged(procs: list, first: int) -> bool:
    """Whether shard 0 stopped the run on a diverged loss (a peer that lost it
    may be seen to end first)."""
    if first != 0 and procs[first].exitcode == PEER_LOST:
        procs[0].join(timeout=5.0)
    return procs[0].exitcode == DIVERGED_STOP


def _failure(procs: list, first: int, state_dir: str) -> str:
    """What went wrong, naming the worker that failed first on its own account."""
    culprit = first
    if procs[first].exitcode == PEER_LOST:  # it lost a peer: look for the peer that died
        for p in procs:
            p.join(timeout=2.0)
        culprit = next((s for s, p in enumerate(procs)
                        if p.exitcode not in (0, None, PEER_LOST)), first)
    code = procs[culprit].exitcode
    how = (f"was killed by signal {-code}" if code is not None and code < 0
           else f"ended with exit code {code}")
    if code == PEER_LOST:
        how = "lost its connection to a peer"
    return (f"gradep worker {culprit} of {len(procs)} {how}; the other workers were "
            f"stopped. The same command resumes from the last checkpoint in {state_dir}")


def diverged_at(losses: list[float]) -> dict | None:
    """The first step whose flow loss is not finite or above
    :data:`~asyncnet.analysis.divergence.LIMIT` in magnitude, or ``None``.

    Parameters
    ----------
    losses:
        the loss of every step so far.

    Returns
    -------
    ``{"step", "loss", "limit"}`` or ``None``.
    """
    for k, v in enumerate(losses):
        if not np.isfinite(v) or abs(v) > LIMIT:
            return {"step": k, "loss": float(v), "limit": LIMIT}
    return None
