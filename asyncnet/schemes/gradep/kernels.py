"""Compiled versions of the populations' elementwise steps (optional: numba).

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

**The fast kernel** (rule key ``kernel = "fast"``, :func:`hidden_update_fast`)
gives up those bits for speed: the hidden step, a(h) and a'(h) in one pass,
with tanh computed by a rational function (Lambert's continued fraction for
tanh, 13th convergent) and multiply-adds fused. In float32, a(h) and a'(h) stay
within 2e-6 of the exact values (numpy's own float32 path: 1.2e-6 and 4e-7);
the bits can differ between CPU types (fused multiply-add), and engine and face
still agree bit for bit on one machine since both call it.
"""

from __future__ import annotations

import os

import numpy as np

from ...numbajit import cached_jit

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
    return cached_jit(numba, error_model="numpy", boundscheck=False, nogil=True)(fn)


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


# -- the fast kernel ---------------------------------------------------------------
# tanh x = x N(x²)/D(x²): Lambert's continued fraction x/(1 + x²/(3 + x²/(5 + ...)))
# cut after 13 levels, its numerator and denominator expanded (all coefficients
# positive: no cancellation in Horner's rule) and scaled so N(0) = 1. Clamped at
# |x| = 9, where tanh is 1 to float32 precision. Evaluated in float64 the cut costs
# <= 4e-8 (tests/test_gradep_kernels.py derives the coefficients and checks it); in
# float32 with Horner's rule the error was 3.8e-7 on 4 million points in [-12, 12]
# (numpy's float32 tanh: 7.6e-8), relative error near 0 below 2e-7.
TANH_N = (1.0, 0.14814814814814814, 0.005432098765432099, 7.361398665746492e-05,
          4.0896659254147175e-07, 8.696790909972818e-10, 4.918999383468789e-13)
TANH_D = (1.0, 0.48148148148148145, 0.03259259259259259, 0.0007085346215780998,
          6.134498888122077e-06, 2.1524557502182723e-08, 2.55787967940377e-11,
          4.684761317589322e-15)
TANH_CLAMP = 9.0
_FAST: dict = {}


def _fast_constants(dt: np.dtype) -> tuple:
    """The fast kernels' constants in ``dt``: ½, 0.1, 10, 1, the clamp, N's and D's coefficients."""
    T = np.dtype(dt).type
    return tuple(T(v) for v in (0.5, 0.1, 10.0, 1.0, TANH_CLAMP, *TANH_N, *TANH_D))


if numba is not None:
    flags = {"contract"}  # fused multiply-add; no reassociation, no approximate division
    _inline = cached_jit(numba, inline="always", error_model="numpy", fastmath=flags)
    _loop = cached_jit(numba, error_model="numpy", boundscheck=False, nogil=True,
                       fastmath=flags)

    # the constants come as a tuple of scalars (registers, not an array that
    # every store might alias), so the kernels are plain module functions,
    # compiled once per dtype and cached on disk like the exact ones
    @_inline
    def _tanh_fast(y, k):
        lim = k[4]
        y = lim if y > lim else y
        y = -lim if y < -lim else y
        z = y * y
        num = (((((k[11] * z + k[10]) * z + k[9]) * z + k[8]) * z + k[7]) * z + k[6]) * z + k[5]
        den = ((((((k[19] * z + k[18]) * z + k[17]) * z + k[16]) * z + k[15]) * z + k[14]) * z
               + k[13]) * z + k[12]
        return y * num / den

    @_inline
    def _act_fast(x, k, out_a, out_d, i, j):
        half, tenth, ten, one = k[0], k[1], k[2], k[3]
        s = _tanh_fast(x * half, k) * half + half  # σ(x)
        si = x * s  # SiLU(x)
        th = _tanh_fast(si * tenth, k)
        out_a[i, j] = th * ten
        out_d[i, j] = (one - th * th) * ((one - s) * si + s)

    @_loop
    def _two_fast(h, d, f0, f1, c, eps, k, out_h, out_a, out_d):
        B, n = h.shape
        for i in range(B):
            for j in range(n):
                x = h[i, j] + eps * (d[i, j] * ((f0[i, j] + c[j]) + f1[i, j]) - h[i, j])
                out_h[i, j] = x
                _act_fast(x, k, out_a, out_d, i, j)

    @_loop
    def _one_fast(h, d, f0, c, eps, k, out_h, out_a, out_d):
        B, n = h.shape
        for i in range(B):
            for j in range(n):
                x = h[i, j] + eps * (d[i, j] * (f0[i, j] + c[j]) - h[i, j])
                out_h[i, j] = x
                _act_fast(x, k, out_a, out_d, i, j)


def hidden_update_fast(h: np.ndarray, d: np.ndarray, fields: list, c: np.ndarray,
                       eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The hidden step and ``(h, a(h), a'(h))`` in one pass, tanh by a rational function.

    Parameters
    ----------
    h, d: the state and a'(h) (batch × n, or one broadcast row). fields: one or
    two fields. c: the bias. eps: ε.

    Returns
    -------
    Three new arrays (one row if every input is one row).

    Raises
    ------
    RuntimeError
        without numba.
    """
    if numba is None:
        raise RuntimeError("kernel = 'fast' needs numba: pip install 'asyncnet[fast]'")
    if len(fields) not in (1, 2):
        raise ValueError(f"a hidden population takes one or two fields, got {len(fields)}")
    dt = h.dtype
    arrays = (h, d, *fields)
    row = False
    if h.ndim != 2 or not _full(h.shape, dt, *arrays) or c.dtype != dt:
        # the h = 0 start (one broadcast row) or mixed inputs: make full arrays
        dt = np.result_type(h, d, *fields, c)
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
        row = len(shape) == 1
        shape = (1, shape[0]) if row else shape
        h, d, *fields = (np.ascontiguousarray(np.broadcast_to(np.asarray(a, dt), shape))
                         for a in arrays)
        c = np.ascontiguousarray(c, dt)
    k = _FAST.get(dt)
    if k is None:
        k = _FAST[dt] = _fast_constants(dt)
    out = (np.empty(h.shape, dt), np.empty(h.shape, dt), np.empty(h.shape, dt))
    e = dt.type(eps)
    if len(fields) == 2:
        _two_fast(h, d, fields[0], fields[1], c, e, k, *out)
    else:
        _one_fast(h, d, fields[0], c, e, k, *out)
    return tuple(o[0] for o in out) if row else out


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
    if len(fields) == 2:
        _hidden_pre(h, d, fields[0], fields[1], c, k, new_h, s)
    else:
        _hidden_pre1(h, d, fields[0], c, k, new_h, s)
    np.tanh(s, out=s)
    _act_mid(new_h, s, k, th)  # th holds si * 0.1 ...
    np.tanh(th, out=th)  # ... then tanh(si/10)
    _act_end(new_h, s, th, k, out_a, out_d)
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

