"""The teacher's data for FlowEqProp: digits, fresh noise, exact OT pairing.

Each training step ``w`` draws (from its own stream, seeded by ``(seed, w)``,
so any process can make step ``w``'s batch and a resumed run gets the same
batches): Gaussian noise ``x0`` for the batch, the digits shuffled (the first
``batch`` of a permutation), the exact optimal-transport assignment between
the two (``scipy.optimize.linear_sum_assignment``, squared Euclidean cost),
``batch`` pairs drawn *with replacement* from that plan (uniform over its
matched pairs), and per pair ``t ~ U(0, 1)``. Sent: ``x_t = (1−t) x0 + t x1``
and the target velocity ``u = x1 − x0``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.optimize import linear_sum_assignment

from ...network import agent_rng


@lru_cache(maxsize=1)
def digits() -> np.ndarray:
    """sklearn's 1797 8×8 digits, pixels ``/16 * 2 − 1`` (float64, read-only)."""
    from sklearn.datasets import load_digits
    X = load_digits().data / 16.0 * 2.0 - 1.0
    X.setflags(write=False)
    return X


def ot_pairs(x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    """Column matched to each row by the exact assignment (squared Euclidean cost).

    ‖x0_i − x1_j‖² = ‖x0_i‖² + ‖x1_j‖² − 2 x0_i·x1_j: the first two terms add the
    same amount to every assignment, so the assignment minimising −2 x0·x1 is
    the same one; scipy solves that matrix about 1.6 times faster (0.26 s
    against 0.43 s for 1797 × 1797 here).
    """
    _, col = linear_sum_assignment(-2.0 * (x0 @ x1.T))
    return col


def make_batch(seed: int, step: int, batch: int, X: np.ndarray | None = None,
               dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """``(x_t, u)`` of training step ``step``, each ``(batch, 64)`` in ``dtype``.

    Parameters
    ----------
    seed: the run's seed. step: the training step. batch: pairs per step
    (at most the number of digits). X: the data (default :func:`digits`).
    """
    X = digits() if X is None else X
    if not 1 <= batch <= len(X):
        raise ValueError(f"batch must be between 1 and {len(X)}, got {batch}")
    rng = agent_rng(seed, f"gradep-data:{step}")
    x0 = rng.standard_normal((batch, X.shape[1]))
    x1 = X[rng.permutation(len(X))[:batch]]
    col = ot_pairs(x0, x1)
    i = rng.integers(0, batch, batch)  # pairs with replacement from the plan
    a, b = x0[i], x1[col[i]]
    t = rng.uniform(0.0, 1.0, (batch, 1))
    xt = (1.0 - t) * a + t * b
    return xt.astype(dtype), (b - a).astype(dtype)
