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
from types import SimpleNamespace

import numpy as np

MIN_WEIGHTS = 1024
"""A projection with at least this many weights (32 × 32) loads the kernels."""

loaded: SimpleNamespace | None = None
"""The compiled kernels once :func:`prepare` loaded them, else ``None``."""
_tried = False


def _learn(W, d, x, rate):
    # batching.learn: g = x in every row; g *= d[:, None]; g *= rate; W -= g
    m, n = W.shape
    for i in range(m):
        di = d[i]
        for j in range(n):
            W[i, j] = W[i, j] - (x[j] * di) * rate


def _dtanh_times(x, s, out):
    # (1.0 - np.tanh(a) ** 2) * s, with x = np.tanh(a) already made: ** 2 is x * x
    for i in range(x.shape[0]):
        xi = x[i]
        out[i] = (1.0 - xi * xi) * s[i]


def _dtanh_error(x, y, out):
    # (1.0 - np.tanh(a) ** 2) * (x - y)
    for i in range(x.shape[0]):
        xi = x[i]
        out[i] = (1.0 - xi * xi) * (xi - y[i])


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
    # error_model="numpy": no zero-division checks; fastmath stays off, so
    # every operation rounds as numpy's does
    jit = numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)
    k = SimpleNamespace(learn=jit(_learn), dtanh_times=jit(_dtanh_times),
                        dtanh_error=jit(_dtanh_error), bias_step=jit(_bias_step))
    # compiled (or read from the disk cache) now, while the network is built,
    # not at the first step of the run
    v, w = np.zeros(1), np.zeros((1, 1))
    k.learn(w, v, v, 0.0)
    k.dtanh_times(v, v, np.empty(1))
    k.dtanh_error(v, v, np.empty(1))
    k.bias_step(np.zeros(1), v, 0.0)
    loaded = k


def is_vector(*arrays: np.ndarray) -> bool:
    """Whether every array is a contiguous float64 vector (what the kernels take)."""
    return all(a.ndim == 1 and a.dtype == np.float64 and a.flags.c_contiguous for a in arrays)
