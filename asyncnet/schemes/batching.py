"""Batched payloads and in-place learning for the feed-forward rules.

``diffusion``, ``leastaction`` and ``continuous`` carry either one sample
per message (a vector ``(n,)``) or a batch of ``B`` samples (``(B, n)``, the
leading axis is the batch) when the scenario says ``[data] batch = B``.
What a batch means, defined once here:

- **activity**: every row is one sample, computed with the same
  arithmetic as a run on that sample alone — the relay ``W x`` of a batch is
  one matrix–vector product per row (:func:`relay`), not one matrix product,
  so row ``k`` equals a separate run on sample ``k`` bit for bit. A value
  still without a batch axis (an initial state) counts for every row.
- **learning**: a synapse's gradient is the *mean over the batch* of the
  per-sample gradients ``δ_b x_bᵀ`` (:func:`outer`, one matrix product), and
  a bias moves by the batch mean of ``δ`` (:func:`rows_mean`). With ``B = 1``
  both are the single sample's gradient.

Weights change in place, in a buffer the synapse keeps: ``W -= η g`` costs
no new arrays per instant and gives the same bits as ``W = W - η g``.
"""

from __future__ import annotations

import numpy as np

from . import kernels


def relay(W: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``W v`` for one vector, or for each row of a batch.

    Parameters
    ----------
    W:
        The matrix (a transposed view is fine).
    v:
        ``(n,)`` or ``(B, n)``.

    Returns
    -------
    ``(m,)`` or ``(B, m)``, a new array. A batch goes through numpy's
    stacked matmul, which makes the same matrix–vector call per row as a
    single vector does (a matrix product would round differently).
    """
    if v.ndim == 1:
        return W @ v
    return np.matmul(W, v[..., None])[..., 0]


def batch_size(*values: np.ndarray) -> int:
    """The batch size shared by ``values`` (1 when none has a batch axis).

    Raises
    ------
    ValueError
        Two values have different batch sizes.
    """
    B = 1
    for v in values:
        if v.ndim > 1 and v.shape[0] != B:
            if B != 1:
                raise ValueError(f"batch sizes differ: {B} and {v.shape[0]}")
            B = v.shape[0]
    return B


def outer(d: np.ndarray, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The gradient ``δ xᵀ``, or its mean over a batch.

    Parameters
    ----------
    d, x:
        ``(m,)`` or ``(B, m)``, and ``(n,)`` or ``(B, n)``.
    out:
        Where to write the ``(m, n)`` result (a new array if ``None``).

    Returns
    -------
    ``δ xᵀ`` for two vectors (elementwise products, exact); otherwise
    ``Σ_b δ_b x_bᵀ / B`` (an unbatched operand repeated for every row).
    """
    if d.ndim == 1 and x.ndim == 1:
        # x in every row, then times δ_i: the bits of d[:, None] * x[None, :]
        # (signs of zeros included), about twice as fast on small matrices as
        # numpy's two-sided broadcast
        g = np.empty((d.size, x.size)) if out is None else out
        g[...] = x
        return np.multiply(g, d[:, None], out=g)
    B = batch_size(d, x)
    D = np.broadcast_to(d, (B, d.shape[-1]))
    X = np.broadcast_to(x, (B, x.shape[-1]))
    g = np.matmul(D.T, X, out=out)
    g /= B
    return g


def rows_mean(v: np.ndarray) -> np.ndarray:
    """The mean over a batch's rows (a vector is returned as is)."""
    return v if v.ndim == 1 else v.mean(axis=0)


def learn(W: np.ndarray, buf: np.ndarray, rate: float, d: np.ndarray, x: np.ndarray) -> None:
    """``W -= rate · δ xᵀ`` in place (batch mean for batches), through ``buf``.

    Parameters
    ----------
    W:
        The weights, changed in place.
    buf:
        A scratch array of ``W``'s shape.
    rate:
        The step (``η``, or ``Δt/γ``).
    d, x:
        The delta and the activity that met at the synapse.
    """
    k = kernels.loaded
    if k is not None and kernels.fits(W, d, x, rate):
        k.learn(W, d, x, rate)  # the same operations in one call (kernels)
        return
    g = outer(d, x, out=buf)
    np.multiply(g, rate, out=g)  # rate · g: the same bits as a new array would hold
    np.subtract(W, g, out=W)
