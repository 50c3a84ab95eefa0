"""Compiled elementwise steps of the feed-forward rules (optional: numba), numpy's bits.

A population's learning step ``W -= η δ xᵀ`` is four numpy calls
(:func:`~asyncnet.schemes.batching.learn`), a neuron's delta and bias steps
three or four more; at width 64 numpy's fixed cost per call (~1 µs) is most
of their work, and a step of the width-64 benchmark made about thirty such
calls besides the engine's own work (``tools/bench_populations.py``). These
kernels do the same operations on the same operands in the same order, each
rounded to float64 as numpy rounds it (no fast-math, no fused multiply-add),
in one call each: a run gives the same bits with them or without
(``tests/test_feedforward_kernels.py`` checks every kernel against its
numpy composition, special values included, and whole runs).

They are loaded on demand: a rule calls :func:`prepare` when it builds a
model whose arrays are big enough to gain (a per-neuron net, all 1 × 1,
never imports numba); from then on the process uses them for every float64
vector step. Without numba (``pip install 'asyncnet[fast]'``) or with
``ASYNCNET_NO_NUMBA=1`` the numpy path runs.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..numbajit import cached_jit

MIN_WEIGHTS = 1024
"""A projection with at least this many weights (32 × 32) loads the kernels."""

loaded: SimpleNamespace | None = None
"""The compiled kernels once :func:`prepare` loaded them, else ``None``."""
_tried = False


# Where both operands of a product are NaN, x86 keeps the first one's (its
# sign): numpy's x * d keeps x's. The compiler may swap a product's operands,
# so a product whose operands can both be NaN takes the first NaN itself (and
# a NaN rate goes the numpy way, see fits). Scratch buffers numpy's path
# writes (the learning step's g, the bias step's product) are not written:
# they are not state (the models' SCRATCH; checkpoints leave them out).

def _learn(W, d, x, rate):
    # batching.learn: g = x in every row; g *= d[:, None]; g *= rate; W -= g
    m, n = W.shape
    for i in range(m):
        di = d[i]
        if di != di:
            for j in range(n):
                xj = x[j]
                W[i, j] = W[i, j] - (xj if xj != xj else di) * rate
        else:
            for j in range(n):
                W[i, j] = W[i, j] - (x[j] * di) * rate


def _dtanh_times(x, s, out):
    # (1.0 - np.tanh(a) ** 2) * s, with x = np.tanh(a) already made: ** 2 is x * x
    for i in range(x.shape[0]):
        xi = x[i]
        f = 1.0 - xi * xi
        out[i] = f if f != f else f * s[i]


def _dtanh_error(x, y, out):
    # (1.0 - np.tanh(a) ** 2) * (x - y)
    for i in range(x.shape[0]):
        xi = x[i]
        f = 1.0 - xi * xi
        out[i] = f if f != f else f * (xi - y[i])


def _bias_step(b, d, rate):
    # np.multiply(d, rate, out=tmp); np.subtract(b, tmp, out=b)
    for i in range(b.shape[0]):
        b[i] = b[i] - d[i] * rate


def prepare(size: int) -> None:
    """Load the kernels if arrays of ``size`` elements gain from them (once a process).

    Parameters
    ----------
    size:
        the number of weights of a projection about to be built.
    """
    global loaded, _tried
    if _tried or size < MIN_WEIGHTS:
        return
    _tried = True
    if os.environ.get("ASYNCNET_NO_NUMBA"):
        return
    try:
        import numba
    except ImportError:  # pragma: no cover - depends on the environment
        return
    try:
        k = SimpleNamespace(**{name: jit(numba, fn) for name, fn in (
            ("learn", _learn), ("dtanh_times", _dtanh_times),
            ("dtanh_error", _dtanh_error), ("bias_step", _bias_step))})
        # compiled (or read from the disk cache) now, while the network is
        # built, not at the first step of the run
        v, w = np.zeros(1), np.zeros((1, 1))
        k.learn(w, v, v, 0.0)
        k.dtanh_times(v, v, np.empty(1))
        k.dtanh_error(v, v, np.empty(1))
        k.bias_step(np.zeros(1), v, 0.0)
    except Exception as e:  # a numba that cannot compile here: numpy's path, said once
        warnings.warn(f"asyncnet: the compiled population steps are off ({e}); "
                      "numpy runs them (the same results)", RuntimeWarning, stacklevel=2)
        return
    loaded = k


def jit(numba: Any, fn: Callable) -> Callable:
    """``fn`` compiled as these kernels are: error_model="numpy" (no zero-division
    checks), no fast-math (every operation rounds as numpy's does), cached."""
    return cached_jit(numba, error_model="numpy", boundscheck=False, nogil=True)(fn)


_F8 = np.dtype(np.float64)


def fits(W: np.ndarray, d: np.ndarray, x: np.ndarray, rate: Any) -> bool:
    """Whether the learning kernel takes ``W -= rate · d xᵀ`` exactly as numpy would.

    float64 throughout, vectors of ``W``'s shape (numpy would broadcast or
    refuse others), no operand sharing ``W``'s memory (a payload owns its
    data; only a view is looked at), a float rate that is not NaN. Written
    out, not looped: it runs once a learning step.
    """
    return (W.dtype is _F8 and d.dtype is _F8 and x.dtype is _F8 and d.ndim == 1
            and x.ndim == 1 and W.shape == (d.shape[0], x.shape[0])
            and type(rate) is float and rate == rate
            and (d.base is None or not np.may_share_memory(W, d))
            and (x.base is None or not np.may_share_memory(W, x)))
