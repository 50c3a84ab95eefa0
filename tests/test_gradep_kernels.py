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
    scale = rng.choice([1e-6, 0.3, 4.0, 60.0], (rows, n))
    h = (rng.standard_normal((rows, n)) * scale).astype(dtype)
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


# -- the fast kernel: not numpy's bits, but close to the exact function ----------------
def test_fast_kernel_is_close_to_the_exact_activation():
    """x fed straight through (h = 0, d = 1, eps = 1): a(x), a'(x) against float64 numpy."""
    x = np.concatenate([np.linspace(-40, 40, 400_001), np.geomspace(1e-30, 1, 2000),
                        -np.geomspace(1e-30, 1, 2000), [0.0]]).astype(np.float32)[None, :]
    zero = np.zeros_like(x)
    h, a, d = K.hidden_update_fast(zero, np.ones_like(x), [x], np.zeros(x.shape[1], np.float32),
                                   1.0)
    assert np.array_equal(h, x)
    a64, d64 = P.act_d(x.astype(np.float64))
    assert np.abs(a - a64).max() <= 3e-6 and np.abs(d - d64).max() <= 3e-6
    # near 0 the error is relative: a(x) ~ x/2
    small = (np.abs(x) < 1e-3) & (x != 0)
    assert (np.abs(a - a64)[small] / np.abs(a64[small])).max() <= 1e-6
    # numpy's own float32 path, for scale
    a32, d32 = P.act_d(x)
    assert np.abs(a32 - a64).max() <= 3e-6


@pytest.mark.parametrize("nfields", [1, 2])
def test_fast_kernel_step_and_broadcast_rows(nfields):
    rng = np.random.default_rng(11)
    B, n = 50, 128
    h = (rng.standard_normal((B, n)) * 3).astype(np.float32)
    d = rng.random((B, n)).astype(np.float32)
    fields = [rng.standard_normal((B, n)).astype(np.float32) for _ in range(nfields)]
    c = rng.standard_normal(n).astype(np.float32)
    got = K.hidden_update_fast(h, d, fields, c, 0.1)
    step = P.hidden_step(h, d, fields, c, 0.1)
    # fused multiply-adds: within a few float32 roundings of numpy's step
    assert np.abs(got[0] - step).max() <= 4e-6 * max(1.0, float(np.abs(step).max()))
    a64, d64 = P.act_d(got[0].astype(np.float64))
    assert np.abs(got[1] - a64).max() <= 3e-6 and np.abs(got[2] - d64).max() <= 3e-6
    # the h = 0 start is one broadcast row: the same as the full array, row by row
    z = np.zeros(n, np.float32)
    row = K.hidden_update_fast(z, z + 0.5, [f[0] for f in fields], c, 0.1)
    full = K.hidden_update_fast(np.zeros((1, n), np.float32), np.full((1, n), 0.5, np.float32),
                                [f[:1] for f in fields], c, 0.1)
    for r, f in zip(row, full, strict=True):
        assert r.shape == (n,) and np.array_equal(r, f[0])


def test_engine_equals_face_with_the_fast_kernel():
    """Both call the same kernel: after three training steps the same bits (float32)."""
    from asyncnet.schemes.gradep import train as T
    from asyncnet.schemes.gradep.agents import GradEP
    from asyncnet.schemes.gradep.data import make_batch
    X = np.random.default_rng(3).uniform(-1, 1, (40, 6))
    rule = dict(dtype="float32", free_steps=25, nudge_steps=20, clip_mode="local", lr=1e-2,
                sizes=(6, 5, 4), kernel="fast")
    data = lambda s: make_batch(5, s, 7, X=X, dtype="float32")  # noqa: E731
    e = T.make_run("engine", GradEP(**rule), 5, 7, 3, data=data, sizes=(6, 5, 4))
    f = T.make_run("face", GradEP(**rule, backend="face"), 5, 7, 3, data=data, sizes=(6, 5, 4))
    exact = T.make_run("face", GradEP(**{**rule, "kernel": "exact"}, backend="face"), 5, 7, 3,
                       data=data, sizes=(6, 5, 4))
    for run in (e, f, exact):
        run.run_to(3)
    se, sf, sx = e.state(), f.state(), exact.state()
    assert all(np.array_equal(se[k], sf[k]) for k in sf)
    assert e.losses() == f.losses()
    # and close to the exact kernel's run (float32 rounding-level differences)
    assert max(float(np.abs(sf[k] - sx[k]).max()) for k in sf if k.startswith("param")) < 1e-3


def test_fast_kernel_needs_numba(monkeypatch):
    monkeypatch.setattr(K, "numba", None)
    with pytest.raises(P.GradEPError, match="needs numba"):
        P.Config(kernel="fast")
    with pytest.raises(P.GradEPError, match="kernel must be"):
        P.Config(kernel="quick")


def test_cli_modes_match_and_the_cli_imports_no_numba():
    """``asyncnet`` itself must not pay for numba or scipy (a fresh interpreter)."""
    import subprocess
    import sys

    from asyncnet.schemes.gradep import cli, sampling
    assert cli.MODES == sampling.MODES
    code = ("import sys, asyncnet.cli; "
            "print(any(m in sys.modules for m in ('numba', 'scipy.optimize')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_fast_tanh_coefficients_are_lamberts_convergent():
    """The constants are the 13th convergent of x/(1 + x²/(3 + x²/(5 + ...))), derived
    here from the recurrence; in float64 the cut is within 4e-8 of tanh on |x| <= 9."""
    from numpy.polynomial import polynomial as Pn
    a_prev, a = np.array([1.0]), np.array([1.0])  # denominators (in z = x²)
    b_prev, b = np.array([0.0]), np.array([1.0])  # numerators
    for k in range(1, 14):
        a, a_prev = Pn.polyadd((2 * k + 1) * a, Pn.polymul([0, 1], a_prev)), a
        b, b_prev = Pn.polyadd((2 * k + 1) * b, Pn.polymul([0, 1], b_prev)), b
    a, b = a / b[0], b / b[0]
    np.testing.assert_allclose(K.TANH_N, b, rtol=1e-14)
    np.testing.assert_allclose(K.TANH_D, a, rtol=1e-14)
    x = np.linspace(-K.TANH_CLAMP, K.TANH_CLAMP, 200_001)
    z = x * x
    approx = x * np.polyval(np.array(K.TANH_N)[::-1], z) / np.polyval(np.array(K.TANH_D)[::-1], z)
    assert np.abs(approx - np.tanh(x)).max() < 4e-8
    assert 1 - np.tanh(K.TANH_CLAMP) < 2 ** -24  # beyond the clamp tanh is 1 in float32


def test_fast_kernels_load_from_the_disk_cache_in_a_new_process(tmp_path):
    """The fast kernels are compiled once and cached (as the exact ones are), not
    compiled again by every process: a cluster's workers each paid ≈ 0.8 s."""
    import os
    import subprocess
    import sys
    code = ("import numpy as np\n"
            "from asyncnet.schemes.gradep import kernels as K\n"
            "h = np.ones((2, 3), np.float32)\n"
            "K.hidden_update_fast(h, h, [h, h], np.ones(3, np.float32), 0.1)\n"
            "K.hidden_update_fast(h, h, [h], np.ones(3, np.float32), 0.1)\n"
            "print(sum(sum(f.stats.cache_hits.values()) for f in (K._two_fast, K._one_fast)))\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    env.pop("ASYNCNET_NO_NUMBA", None)
    first, second = (subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                    text=True, check=True).stdout.strip() for _ in range(2))
    assert first == "0"  # an empty cache: compiled here
    assert second == "2", second  # both kernels read from the cache
