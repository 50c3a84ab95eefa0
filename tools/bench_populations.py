"""Population runs against the same algorithm in plain in-place numpy.

A layered tanh network of ``depth`` populations of ``width`` neurons learns
online with backprop diffusion (rule ``diffusion``, unit delays, a
piecewise stream). Two implementations do the same work:

- **engine**: the asyncnet engine, one agent per population and per
  projection, messages between them (event log off); where numba is
  installed the rules' learning, delta and bias steps run compiled
  (``asyncnet/schemes/kernels.py``, numpy's bits; ``ASYNCNET_NO_NUMBA=1``
  for the numpy path), which the header line says;
- **numpy**: :func:`reference` below, the discrete delay model written
  directly in numpy with every array updated in place, preallocated (no
  agents, no messages): per step each projection relays ``W x`` and ``Wᵀ δ``
  and learns ``W -= η δ xᵀ``, each population updates ``a, x, δ, b``.

Both start from the same state (the network's weights, every population's
initial state drawn from its own stream exactly as the rule draws it), so
they must end with the same weights: that is checked (``max |ΔW|``) before
any time is reported. Runs are interleaved A, B, A, B; the figure is the
ratio engine ÷ numpy per pair, median and min–max over the pairs. BLAS runs
with one thread (``threadpoolctl``), so neither side gets a second core.

    python tools/bench_populations.py [--widths 64,256,1024] [--pairs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from asyncnet.data import make_stream
from asyncnet.engine import Engine
from asyncnet.network import Network, agent_rng, layered
from asyncnet.schemes.diffusion import Diffusion

SEED = 1
HOLD = 10.0


def setup(width: int, depth: int, duration: float) -> tuple[Network, object]:
    """The network and its stream (input ``l0``, output ``l{depth-1}``).

    Parameters
    ----------
    width, depth:
        Neurons per population and number of populations.
    duration:
        Simulated time the stream must cover.

    Returns
    -------
    ``(network, stream)``.
    """
    net = Network.from_graph(layered([width] * depth), seed=0)
    stream = make_stream("piecewise", n_in=width, n_out=width, input_node="l0",
                         output_node=f"l{depth - 1}", seed=0, duration=duration, hold=HOLD)
    return net, stream


def engine_run(net: Network, stream, eta: float, duration: float
               ) -> tuple[float, dict[str, np.ndarray]]:
    """The population run; returns ``(seconds, {synapse: W})``."""
    eng = Engine(net, Diffusion(eta=eta), seed=SEED, sources=stream.sources())
    t0 = time.perf_counter()
    eng.run(duration)
    wall = time.perf_counter() - t0
    return wall, {p.name: np.array(eng.state(p.name)["weight"])
                  for p in net.projections.values()}


def reference(net: Network, stream, eta: float, duration: float
              ) -> tuple[float, dict[str, np.ndarray]]:
    """The diffusion delay model in plain in-place numpy; ``(seconds, {synapse: W})``.

    Neurons act at integer times, projections half-way between (each link
    of a unit delay is two legs of ½). Step ``k``: the projections read the
    ``x`` and ``δ`` of time ``k``, relay ``W x`` and ``Wᵀ δ`` and learn; then
    every population takes what reached it at ``k + 1``: the input its data,
    a hidden one ``δ ← σ'(a) ⊙ Wᵀδ`` (with its old ``a``), then ``a ← Wx + b``,
    ``x ← σ(a)``, the output ``δ ← σ'(a) ⊙ (x − y)``; the bias moves by ``-η δ``.
    """
    names = [f"l{i}" for i in range(len(net.populations))]
    L = len(names) - 1
    if any(net.populations[n].activation != "tanh" for n in names[1:]):
        raise SystemExit("the numpy reference is written for tanh populations")
    W = [net.projections[(names[i], names[i + 1])].weight.copy() for i in range(L)]
    b = [net.populations[n].bias.copy() for n in names]
    a, d = [], []
    for n in names:  # each population's own stream, drawn as the rule draws it
        rng = agent_rng(SEED, n)
        a.append(rng.standard_normal(net.populations[n].size))
        d.append(rng.standard_normal(net.populations[n].size))
    x = [a[0].copy()] + [np.tanh(v) for v in a[1:]]
    fwd = [np.empty(w.shape[0]) for w in W]   # W_l x_l, reaches l+1
    back = [np.empty(w.shape[1]) for w in W]  # W_lᵀ δ_{l+1}, reaches l
    G = [np.empty_like(w) for w in W]
    tmp = [np.empty(v.size) for v in a]
    fpa = [np.empty(v.size) for v in a]  # σ'(a) = 1 − tanh(a)²

    def fprime(i: int) -> np.ndarray:
        np.tanh(a[i], out=fpa[i])
        np.square(fpa[i], out=fpa[i])
        return np.subtract(1.0, fpa[i], out=fpa[i])
    steps = int(np.ceil(duration - 0.5))  # projections act at 0.5, 1.5, ... < duration
    t0 = time.perf_counter()
    for k in range(steps):
        for i in range(L):
            np.matmul(W[i], x[i], out=fwd[i])
            np.matmul(W[i].T, d[i + 1], out=back[i])
            G[i][...] = x[i]  # δ xᵀ: x in every row, times δ (faster than a 2-sided broadcast)
            np.multiply(G[i], d[i + 1][:, None], out=G[i])
            if eta:
                G[i] *= eta
                W[i] -= G[i]
        if k + 1 >= duration:
            break
        t = float(k + 1)
        x[0][:] = stream.value(names[0], t)
        d[0][:] = back[0]
        for i in range(1, L + 1):
            if i < L:  # hidden: the delta wave meets the previous a
                np.multiply(fprime(i), back[i], out=d[i])
            np.add(fwd[i - 1], b[i], out=a[i])
            np.tanh(a[i], out=x[i])
            if i == L:
                np.subtract(x[i], stream.value(names[L], t), out=tmp[i])
                np.multiply(fprime(i), tmp[i], out=d[i])
            if eta:
                np.multiply(d[i], eta, out=tmp[i])
                b[i] -= tmp[i]
    wall = time.perf_counter() - t0
    return wall, {f"{names[i]}->{names[i + 1]}": W[i] for i in range(L)}


def compare(width: int, depth: int, duration: float, eta: float, pairs: int) -> dict:
    """Interleaved engine/numpy pairs at one width; checks both did the same work."""
    net, stream = setup(width, depth, duration)
    ratios, we, wr = [], [], []
    for _ in range(pairs):
        te, We = engine_run(net, stream, eta, duration)
        tr, Wr = reference(net, stream, eta, duration)
        err = max(float(np.max(np.abs(We[k] - Wr[k]))) for k in We)
        scale = max(float(np.max(np.abs(Wr[k]))) for k in Wr)
        if not err <= 1e-9 * max(1.0, scale):
            raise SystemExit(f"width {width}: the engine and the numpy reference disagree "
                             f"(max |dW| = {err:.3g}): they did not do the same work")
        ratios.append(te / tr)
        we.append(te)
        wr.append(tr)
    return {"width": width, "median": statistics.median(ratios), "min": min(ratios),
            "max": max(ratios), "engine_s": statistics.median(we),
            "numpy_s": statistics.median(wr), "max_dW": err}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="64,256,1024")
    ap.add_argument("--depth", type=int, default=4, help="populations in the chain")
    ap.add_argument("--steps", default="3000,1000,150",
                    help="simulated time per width (comma list, one per width)")
    ap.add_argument("--eta", type=float, default=0.001)
    ap.add_argument("--pairs", type=int, default=5)
    a = ap.parse_args()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise SystemExit("this benchmark needs threadpoolctl (pip install threadpoolctl)"
                         ) from None
    widths = [int(w) for w in a.widths.split(",")]
    steps = [float(s) for s in a.steps.split(",")]
    if len(steps) != len(widths):
        raise SystemExit("--steps needs one duration per width")
    from asyncnet.schemes import kernels
    kernels.prepare(kernels.MIN_WEIGHTS)  # what a projection of 1,024 weights does
    on = "on (numba)" if kernels.loaded is not None else "off (no numba, or ASYNCNET_NO_NUMBA)"
    print(f"diffusion, layered [width] x {a.depth}, eta {a.eta:g}, piecewise hold "
          f"{HOLD:g}; BLAS threads 1 (threadpoolctl); {a.pairs} interleaved pairs; "
          f"the rules' compiled steps {on}")
    print(f"{'width':>6} {'time':>6} {'engine s':>9} {'numpy s':>9} "
          f"{'engine/numpy':>13} {'min-max':>13} {'max|dW|':>9}")
    with threadpool_limits(limits=1, user_api="blas"):
        for w, dur in zip(widths, steps, strict=True):
            r = compare(w, a.depth, dur, a.eta, a.pairs)
            print(f"{w:>6} {dur:>6g} {r['engine_s']:>9.3f} {r['numpy_s']:>9.3f} "
                  f"{r['median']:>13.2f} {r['min']:>6.2f}-{r['max']:<6.2f} "
                  f"{r['max_dW']:>9.1e}")


if __name__ == "__main__":
    main()
