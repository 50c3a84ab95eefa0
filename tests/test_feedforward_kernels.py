"""The feed-forward rules' compiled steps give numpy's bits (asyncnet/schemes/kernels.py).

Each kernel is checked against the numpy expression it replaces, written out
here, on random float64 values with the special ones mixed in (NaN, ±inf,
±0, subnormals, huge); a whole width-64 diffusion run must deliver the same
messages and end with the same weights with the kernels and without them;
and a per-neuron net, or ``ASYNCNET_NO_NUMBA=1``, never loads numba.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("numba")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from asyncnet.ckstate import Packer, Walker  # noqa: E402
from asyncnet.engine import Engine  # noqa: E402
from asyncnet.network import Network, layered  # noqa: E402
from asyncnet.schemes import kernels  # noqa: E402
from asyncnet.schemes.diffusion import Diffusion  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NaN, inf on purpose
SPECIAL = [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, -2.2e-308, 1e308, -1e308,
           1.0, -1.0]
"""NaN of both signs: where two meet, numpy's product keeps its first operand's."""


@pytest.fixture(scope="module")
def k():
    kernels.prepare(kernels.MIN_WEIGHTS)
    if kernels.loaded is None:
        pytest.skip("the kernels did not load (ASYNCNET_NO_NUMBA?)")
    return kernels.loaded


def _values(seed: int, shape, special: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, shape)
    mask = rng.random(shape) < special
    v[mask] = rng.choice(SPECIAL, int(mask.sum()))
    return v


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.tobytes() == b.tobytes()


cases = st.tuples(st.integers(0, 2**32 - 1), st.integers(1, 9), st.integers(1, 9),
                  st.sampled_from([0.0, 0.05, 0.3]))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(cases)
def test_learn_is_numpys_outer_step(k, case):
    seed, m, n, special = case
    W = _values(seed, (m, n), special)
    d, x = _values(seed + 1, m, special), _values(seed + 2, n, special)
    rate = float(_values(seed + 3, 1, special / 2)[0])
    g = np.multiply(np.multiply(x[None, :], d[:, None]), rate)
    want = np.subtract(W, g)
    if rate != rate:
        assert not kernels.fits(W, d, x, rate)  # a NaN rate goes the numpy way
        return
    k.learn(W, d, x, rate)
    assert _same(W, want)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(cases)
def test_tanh_deltas_are_numpys(k, case):
    seed, n, _, special = case
    a, s, y = (_values(seed + i, n, special) for i in range(3))
    x = np.tanh(a)  # what the neuron holds
    got = np.empty(n)
    k.dtanh_times(x, s, got)
    assert _same(got, (1.0 - np.tanh(a) ** 2) * s)
    k.dtanh_error(x, y, got)
    assert _same(got, (1.0 - np.tanh(a) ** 2) * (x - y))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(cases)
def test_bias_step_is_numpys(k, case):
    seed, n, _, special = case
    b, d = _values(seed, n, special), _values(seed + 1, n, special)
    rate = float(_values(seed + 2, 1, special / 2)[0])
    want = b - d * rate
    k.bias_step(b, d, rate)
    assert _same(b, want)


def test_learn_takes_the_numpy_way_where_the_kernel_would_differ(k):
    """float32 operands, vectors of the wrong length (numpy broadcasts or
    refuses), an operand that is a view of W, a NaN rate: batching.learn
    gives numpy's result (or error) with the kernels loaded."""
    from asyncnet.schemes.batching import learn

    def numpy_learn(W, rate, d, x):  # W -= rate · (x in every row) · d, written out
        g = np.multiply(np.broadcast_to(x, W.shape), d[:, None])
        np.multiply(g, rate, out=g)
        np.subtract(W, g, out=W, casting="same_kind")
        return W

    rng = np.random.default_rng(5)
    W = rng.standard_normal((4, 3))
    cases = [(W.astype(np.float32), rng.standard_normal(4).astype(np.float32),
              rng.standard_normal(3).astype(np.float32), 0.1),
             (W.copy(), rng.standard_normal(4), rng.standard_normal(1), 0.1),
             (W.copy(), rng.standard_normal(4), rng.standard_normal(3), float("nan"))]
    for W0, d, x, rate in cases:
        want = numpy_learn(W0.copy(), rate, d, x)
        got = W0.copy()
        learn(got, np.empty(got.shape, dtype=got.dtype), rate, d, x)
        assert _same(got, want)
    d = rng.standard_normal(4)
    ref = W.copy()
    numpy_learn(ref, 0.3, d, ref[0])
    got = W.copy()
    learn(got, np.empty((4, 3)), 0.3, d, got[0])  # x is W's own first row
    assert _same(got, ref)
    with pytest.raises(ValueError):
        learn(W.copy(), np.empty((4, 3)), 0.1, rng.standard_normal(4), rng.standard_normal(2))


def _population_run(with_kernels: bool, monkeypatch) -> tuple[list, dict]:
    monkeypatch.setattr(kernels, "loaded", kernels.loaded if with_kernels else None)
    net = Network.from_graph(layered([32, 40, 32, 8]), seed=0)
    rng = np.random.default_rng(0)
    xs, ys = rng.standard_normal((5, 32)), rng.standard_normal((5, 8))
    src = {"l0": lambda t: xs[int(t) % 5], "l3": lambda t: ys[int(t) % 5]}
    eng = Engine(net, Diffusion(eta=0.05, eta_bias=0.02), seed=2, sources=src)
    seen: list = []
    eng.sinks.append(lambda batch: seen.extend(
        (m.kind, m.src, m.dst, m.t_arrive, m.seq, np.asarray(m.payload).tobytes())
        for m in batch))
    eng.run(40)
    after = {p.name: eng.state(p.name)["weight"].tobytes() for p in net.projections.values()}
    after.update({n: eng.state(n)["bias"].tobytes() for n in net.populations})
    # the scratch buffers a checkpoint holds: the same bytes whichever path ran
    # (a cluster's workers may differ in having loaded the kernels)
    # what a checkpoint holds of each model: its scratch buffers, which the
    # kernels leave as they were and numpy's path fills, are not in it
    walker = Walker(skip=[net, eng.rule])
    for name in [*net.populations, *(p.name for p in net.projections.values())]:
        node = walker.node(eng.agents[name].model)
        after[f"{name}/checkpoint"] = Packer().pack(node)
        assert "_buf" not in str(node) and "_db" not in str(node)
    return seen, after


def test_a_population_run_is_the_same_with_the_kernels(k, monkeypatch):
    with_k = _population_run(True, monkeypatch)
    without = _population_run(False, monkeypatch)
    assert len(with_k[0]) > 500
    assert with_k == without


def _fresh_python(code: str, **env: str) -> str:
    full = {**os.environ, **env}
    if "ASYNCNET_NO_NUMBA" not in env:
        full.pop("ASYNCNET_NO_NUMBA", None)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True,
                          text=True, check=True).stdout.strip()


def test_small_nets_never_import_numba_and_the_switch_turns_the_kernels_off():
    code = ("import sys\n"
            "from asyncnet.engine import Engine\n"
            "from asyncnet.network import Network, layered, expand_to_neurons\n"
            "from asyncnet.schemes import kernels\n"
            "from asyncnet.schemes.diffusion import Diffusion\n"
            "size = int(sys.argv[1]) if len(sys.argv) > 1 else {size}\n"
            "net = Network.from_graph(layered([size, size, 2]), seed=0)\n"
            "{expand}"
            "Engine(net, Diffusion(), seed=0).run(2)\n"
            "print('numba' in sys.modules, kernels.loaded is not None)\n")
    per_neuron = code.format(size=20, expand="net = Network.from_graph(expand_to_neurons(net), "
                                             "seed=0)\n")
    assert _fresh_python(per_neuron) == "False False"
    big = code.format(size=40, expand="")
    assert _fresh_python(big) == "True True"
    assert _fresh_python(big, ASYNCNET_NO_NUMBA="1") == "False False"


def test_without_a_writable_cache_the_kernels_compile_uncached(monkeypatch):
    """numba refuses cache=True where it cannot write a cache (a read-only
    install, no home): the kernels are then compiled for the process."""
    import numba
    calls: list = []
    real = numba.njit

    def njit(*args, cache=False, **opts):
        calls.append(cache)
        if cache:
            raise RuntimeError("cannot cache function 'f': no locator available for file 'x'")
        return real(*args, **opts)

    monkeypatch.setattr(numba, "njit", njit)
    f = kernels.jit(numba, kernels._bias_step)
    b, d = np.ones(3), np.arange(3.0)
    f(b, d, 0.5)
    assert calls == [True, False]
    assert _same(b, 1.0 - np.arange(3.0) * 0.5)
