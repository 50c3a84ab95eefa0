"""Compiled one-pass versions of the populations' elementwise steps (optional: numba).

A relaxation step's elementwise work (the hidden step, a(h), a'(h), the visible
step) is about twenty numpy passes over each ``batch × n`` array, as much time
as the step's four matrix products. These kernels do the same arithmetic in a
few passes: every operation, its operands, its order and its dtype are those
of the numpy functions in :mod:`.physics`, each rounded to the array's dtype
(no fast-math, no fused multiply-add), and the two tanh stay numpy's own
``np.tanh``. So both paths give the same bits; ``tests/test_gradep_kernels.py``
checks that on random inputs in float32 and float64.

Without numba (``pip install 'asyncnet[fast]'``) :func:`available` is False and
:mod:`.physics` uses the numpy composition. ``ASYNCNET_NO_NUMBA=1`` turns the
kernels off (for comparisons).
"""

from __future__ import annotations

import os

import numpy as np

try:  # optional: the numpy path is always there
    if os.environ.get("ASYNCNET_NO_NUMBA"):
        raise ImportError("turned off by ASYNCNET_NO_NUMBA")
    import numba
except ImportError:  # pragma: no cover - depends on the environment
    numba = None


def available() -> bool:
    """Whether the compiled kernels are in use."""
    return numba is not None


def _jit(fn):
    # error_model="numpy": no Python zero-division checks, so the loops vectorise;
    # fastmath stays off: every operation rounds as numpy's does
    return numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)(fn)


def _hidden_pre(h, d, f0, f1, c, k, out_h, out_half):
    # physics.hidden_step: f = f0 + c; f = f + f1; f *= d; f -= h; f *= eps; f += h
    # then act_d's first product s = h * 0.5 (k: 0.5, 0.1, 10, 1, eps)
    half, eps = k[0], k[4]
    B, n = h.shape
    for i in range(B):
        for j in range(n):
            f = f0[i, j] + c[j]
            f = f + f1[i, j]
            f = f * d[i, j]
            f = f - h[i, j]
            f = f * eps
            x = f + h[i, j]
            out_h[i, j] = x
            out_half[i, j] = x * half


def _hidden_pre1(h, d, f0, c, k, out_h, out_half):
    # the same with one field
    half, eps = k[0], k[4]
    B, n = h.shape
    for i in range(B):
        for j in range(n):
            f = f0[i, j] + c[j]
            f = f * d[i, j]
            f = f - h[i, j]
            f = f * eps
            x = f + h[i, j]
            out_h[i, j] = x
            out_half[i, j] = x * half


def _act_mid(h, s, k, th):
    # act_d: s = tanh(h/2) (given); s *= 0.5; s += 0.5; si = h * s; th = si * 0.1
    B, n = h.shape
    half, tenth = k[0], k[1]
    for i in range(B):
        for j in range(n):
            sv = s[i, j] * half
            sv = sv + half
            s[i, j] = sv
            th[i, j] = (h[i, j] * sv) * tenth


def _act_end(h, s, th, k, a, d):
    # act_d: a = th * 10; q = 1 - s; q *= si; q += s; th *= th; th = 1 - th; th *= q
    # (si = h * s again: the same operation, so the same bits, one array less)
    B, n = s.shape
    ten, one = k[2], k[3]
    for i in range(B):
        for j in range(n):
            t = th[i, j]
            a[i, j] = t * ten
            sv = s[i, j]
            q = one - sv
            q = q * (h[i, j] * sv)
            q = q + sv
            t = t * t
            t = one - t
            d[i, j] = t * q


def _visible(x, f0, bx, r, k, out):
    # physics.visible_step with one field: f = f0 + bx; f = f + r; f -= q*x; f *= eps; f += x
    q, eps = k[0], k[1]
    B, n = x.shape
    for i in range(B):
        for j in range(n):
            f = f0[i, j] + bx[j]
            f = f + r[i, j]
            f = f - q * x[i, j]
            f = f * eps
            out[i, j] = f + x[i, j]


if numba is not None:
    _hidden_pre = _jit(_hidden_pre)
    _hidden_pre1 = _jit(_hidden_pre1)
    _act_mid = _jit(_act_mid)
    _act_end = _jit(_act_end)
    _visible = _jit(_visible)


BLOCK = 1 << 15
"""Elements per row block of :func:`hidden_update`."""


def _full(shape: tuple, dt: np.dtype, *arrays: np.ndarray) -> bool:
    """Whether every array is a full ``shape`` array of dtype ``dt`` (no broadcast row)."""
    return all(a.shape == shape and a.dtype == dt for a in arrays)


def hidden_update(h: np.ndarray, d: np.ndarray, fields: list, c: np.ndarray,
                  eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """One hidden step and the new ``(h, a(h), a'(h))``, or None where the kernel does not apply.

    Parameters
    ----------
    h, d: the state and a'(h) (batch × n). fields: one or two fields (batch × n),
    in the population's order. c: its bias (n). eps: ε.

    Returns
    -------
    Three new arrays, bit for bit ``hidden_step`` followed by ``act_d``; None
    without numba, for broadcast rows (the h = 0 step) or mixed dtypes.
    """
    if numba is None or h.ndim != 2 or len(fields) not in (1, 2):
        return None
    dt = h.dtype
    if not _full(h.shape, dt, d, *fields) or c.shape != (h.shape[1],) or c.dtype != dt:
        return None
    k = np.array([0.5, 0.1, 10.0, 1.0, eps], dtype=dt)
    new_h, s, th, out_a, out_d = (np.empty_like(h) for _ in range(5))
    two = len(fields) == 2
    f0, f1 = fields[0], fields[-1]
    # row blocks small enough that a block's arrays stay in the core's L2 cache
    # between the passes (the passes are memory-bound on whole arrays)
    step = max(1, BLOCK // h.shape[1])
    for r in range(0, h.shape[0], step):
        b = slice(r, r + step)
        if two:
            _hidden_pre(h[b], d[b], f0[b], f1[b], c, k, new_h[b], s[b])
        else:
            _hidden_pre1(h[b], d[b], f0[b], c, k, new_h[b], s[b])
        np.tanh(s[b], out=s[b])
        _act_mid(new_h[b], s[b], k, th[b])  # th holds si * 0.1 ...
        np.tanh(th[b], out=th[b])  # ... then tanh(si/10)
        _act_end(new_h[b], s[b], th[b], k, out_a[b], out_d[b])
    return new_h, out_a, out_d


def visible_update(x: np.ndarray, fields: list, bx: np.ndarray, q: float,
                   r: np.ndarray, eps: float) -> np.ndarray | None:
    """One visible step, bit for bit ``physics.visible_step``; None where it does not apply."""
    if numba is None or x.ndim != 2 or len(fields) != 1:
        return None
    dt = x.dtype
    if not _full(x.shape, dt, fields[0], r) or bx.shape != (x.shape[1],) or bx.dtype != dt:
        return None
    out = np.empty_like(x)
    _visible(x, fields[0], bx, r, np.array([q, eps], dtype=dt), out)
    return out

