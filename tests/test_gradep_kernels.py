"""The compiled GradEP kernels give the numpy functions' bits (independent second implementation).

``kernels.py`` re-implements the populations' elementwise steps (hidden step,
a(h), a'(h), visible step) as numba loops; ``physics.py`` has the plain numpy
composition. The two must agree bit for bit on any input, in float32 and
float64, with one or two fields, for any batch size (row blocks), and a whole
relaxation with the kernels must end in the same state as without them.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from asyncnet.schemes.gradep import kernels as K  # noqa: E402
from asyncnet.schemes.gradep import physics as P  # noqa: E402
from asyncnet.schemes.gradep.face import Face  # noqa: E402


@pytest.fixture
def numpy_only(monkeypatch):
    """A context in which physics falls back to plain numpy."""
    def off():
        monkeypatch.setattr(K, "numba", None)
    return off


def _numpy_hidden(h, d, fields, c, eps):
    """The reference: the numpy functions, composed as physics.hidden_update does without numba."""
    new = P.hidden_step(h, d, fields, c, eps)
    return (new, *P.act_d(new))


def _numpy_visible(x, fields, bx, q, r, eps):
    numba = K.numba
    K.numba = None
    try:
        return P.visible_step(x, fields, bx, q, r, eps)
    finally:
        K.numba = numba


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows,n", [(1, 128), (7, 64), (255, 128), (256, 128), (899, 128),
                                    (1797, 64), (300, 3)])
@pytest.mark.parametrize("nfields", [1, 2])
def test_hidden_kernel_is_bitwise_numpy(dtype, rows, n, nfields):
    rng = np.random.default_rng(rows * 31 + n + nfields)
    # wide values: saturated tanh, SiLU's negative dip, tiny values near 0
    h = (rng.standard_normal((rows, n)) * rng.choice([1e-6, 0.3, 4.0, 60.0], (rows, n))).astype(dtype)
    d = rng.random((rows, n)).astype(dtype)
    fields = [(rng.standard_normal((rows, n)) * 3).astype(dtype) for _ in range(nfields)]
    c = rng.standard_normal(n).astype(dtype)
    got = K.hidden_update(h, d, fields, c, 0.1)
    assert got is not None
    for a, b in zip(got, _numpy_hidden(h, d, fields, c, 0.1), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b)


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 300), n=st.integers(1, 140), seed=st.integers(0, 2**32 - 1),
       scale=st.sampled_from([1e-30, 1e-3, 1.0, 10.0, 1e4]), eps=st.floats(1e-3, 0.9),
       f32=st.booleans(), two=st.booleans())
def test_hidden_kernel_bitwise_on_any_input(rows, n, seed, scale, eps, f32, two):
    dtype = np.float32 if f32 else np.float64
    rng = np.random.default_rng(seed)
    h, d, f0, f1 = (rng.standard_normal((rows, n)) * scale for _ in range(4))
    h, d, f0, f1 = (a.astype(dtype) for a in (h, d, f0, f1))
    c = rng.standard_normal(n).astype(dtype)
    fields = [f0, f1] if two else [f0]
    got = K.hidden_update(h, d, fields, c, eps)
    for a, b in zip(got, _numpy_hidden(h, d, fields, c, eps), strict=True):
        assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_visible_kernel_is_bitwise_numpy(dtype):
    rng = np.random.default_rng(5)
    for rows in (1, 64, 899):
        x, f, r = ((rng.standard_normal((rows, 64)) * 5).astype(dtype) for _ in range(3))
        bx = rng.standard_normal(64).astype(dtype)
        for q in (16.0, 16.0 + 1.40625, 16.0 - 1.40625):
            got = K.visible_update(x, [f], bx, q, r, 0.1)
            assert np.array_equal(got, _numpy_visible(x, [f], bx, q, r, 0.1))


def test_kernels_decline_what_they_do_not_cover():
    """Broadcast rows (the h = 0 step), mixed dtypes and three fields go to numpy."""
    z = np.zeros(128, np.float32)
    full = np.ones((4, 128), np.float32)
    assert K.hidden_update(z, z + 0.5, [full], z, 0.1) is None
    assert K.hidden_update(full, full, [full.astype(np.float64)], z, 0.1) is None
    assert K.hidden_update(full, full, [full, full, full], z, 0.1) is None
    assert K.visible_update(full[:, :64], [full[:, :64]], z[:64], 16.0, z[:64], 0.1) is None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_relaxation_with_kernels_ends_in_the_same_state(dtype, numpy_only):
    """Three phases of a Face step with and without the kernels: the same bits."""
    from asyncnet.schemes.gradep.data import make_batch
    c = P.Config(clip_mode="local", dtype=dtype, free_steps=25, nudge_steps=15)
    params = P.init_params(c.sizes, 3, dtype)
    xt, u = make_batch(3, 0, 200, dtype=dtype)
    with_k = Face(c, params, 200)
    with_k.train_step(xt, u)
    s_k = with_k.relax(with_k.reset(xt), xt, u, 1.0, 10)
    numpy_only()
    plain = Face(c, params, 200)
    plain.train_step(xt, u)
    s_n = plain.relax(plain.reset(xt), xt, u, 1.0, 10)
    for a, b in zip(s_k, s_n, strict=True):
        assert np.array_equal(a, b)
    for k in P.PARAMS:
        assert np.array_equal(with_k.p[k], plain.p[k])
