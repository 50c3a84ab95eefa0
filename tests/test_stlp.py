"""STLP (SCHEMES.md §3) against independent references.

References: heavy-ball SGD written here (static reduction); a forward pass
and backprop of ½‖x − y‖² written here from a saved state alone (the DAG
fixed point); Newton plus one linear solve (``stlp_reference.fixed_point``,
which shares no code with the scheme) for Almeida–Pineda; finite
differences for BPTT, truncated BPTT and RTRL.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from asyncnet.network import Network
from asyncnet.scenario import ScenarioError, load
from asyncnet.schemes.stlp.physics import STLP, Dense
from asyncnet.schemes.stlp.reference import Leaky, bptt, loss, rtrl
from asyncnet.schemes.stlp.tasks import initial_x, load_dense, read_states, sequences
from asyncnet.simulation import build_engine, simulate

ROOT = Path(__file__).resolve().parent.parent
SCEN = ROOT / "scenarios"


def shortened(name: str, duration: float, tmp: Path, **rule) -> Path:
    """A copy of a scenario with another duration (and rule keys replaced)."""
    text = (SCEN / name).read_text()
    text = re.sub(r"(?m)^duration\s*=.*$", f"duration = {duration}", text, count=1)
    for k, v in rule.items():
        val = f'"{v}"' if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else v
        text, n = re.subn(rf"(?m)^{k}\s*=.*$", f"{k} = {val}", text, count=1)
        if not n:
            text = text.replace('name = "stlp"\n', f'name = "stlp"\n{k} = {val}\n')
    path = tmp / name
    path.write_text(text)
    return path


# -- parameters ---------------------------------------------------------------
@pytest.mark.parametrize("key,val,words", [
    ("dt", 1.5, "dt must be in (0, 1]"), ("theta", 1.0, "theta"), ("flip", 0, "flip"),
    ("order", "sideways", "order"), ("beta", -1, "beta"), ("gamma", 0, "gamma"),
    ("mode", "often", "mode"), ("init_state", "any", "init_state")])
def test_bad_parameters_are_refused_by_name(key, val, words, tmp_path):
    path = shortened("stlp_sine.toml", 10, tmp_path, **{key: val})
    with pytest.raises(ScenarioError, match=re.escape(words)):
        load(path)


def test_unknown_parameter_and_data_kind(tmp_path):
    path = shortened("stlp_sine.toml", 10, tmp_path, speed=2)
    with pytest.raises(ScenarioError, match="unknown key 'speed'"):
        load(path)
    text = (SCEN / "stlp_sine.toml").read_text().replace('kind = "sine"', 'kind = "xor"')
    p = tmp_path / "x.toml"
    p.write_text(text)
    sc = load(p)
    with pytest.raises(ScenarioError, match="unknown data kind 'xor'"):
        sc.build_stream(sc.build_network())


# -- 1. static reduction -------------------------------------------------------
def _heavy_ball(grad, w0, lr, mu, steps, delayed):
    """Plain heavy ball; ``delayed``: the weight moves by the *previous* velocity."""
    w, v, out = w0.copy(), np.zeros_like(w0), []
    for _ in range(steps):
        v_new = mu * v + lr * grad(w)
        w = w - (v if delayed else v_new)
        v = v_new
        out.append(w.copy())
    return out


@pytest.mark.parametrize("theta,dt,beta,gamma", [(0.1, 0.1, 1.0, 1.0), (0.3, 0.05, 2.0, 0.5)])
def test_static_reduction_is_heavy_ball(theta, dt, beta, gamma):
    rng = np.random.default_rng(0)
    A, y = rng.standard_normal((20, 4)), rng.standard_normal(20)

    def grad(w):
        return A.T @ (A @ w - y)

    w0 = rng.standard_normal(4)
    lr, mu = beta * gamma * dt * dt, 1.0 - theta
    for order, delayed in (("p_first", False), ("w_first", True)):
        r = STLP(dt=dt, theta=theta, beta=beta, gamma=gamma, order=order)
        w, pw, got = w0.copy(), np.zeros(4), []
        for _ in range(200):
            w, pw = r.param_step(w, pw, gamma * grad(w))
            got.append(w.copy())
        ref = _heavy_ball(grad, w0, lr, mu, 200, delayed)
        other = _heavy_ball(grad, w0, lr, mu, 200, not delayed)
        err = max(np.max(np.abs(a - b)) for a, b in zip(got, ref, strict=True))
        assert err <= 1e-12 * max(1.0, np.max(np.abs(ref))), (order, err)
        assert max(np.max(np.abs(a - b)) for a, b in zip(got, other, strict=True)) > 1e-6


# -- the engine runs the synchronous recursion ----------------------------------
@pytest.mark.parametrize("order", ["w_first", "p_first"])
def test_engine_equals_the_synchronous_recursion(order, tmp_path):
    path = shortened("stlp_sine.toml", 60, tmp_path, order=order, beta=5.0, dt=0.2,
                     init_state="random", r_w=0.1)
    sc = load(path)
    eng, net, stream = build_engine(sc)
    eng.run(sc.duration)
    names = sorted(n for n in eng.agents if not n.startswith("src:"))
    _, ste = load_dense(net, read_states(eng, names))
    d = Dense(net)
    U, Y = sequences(stream, 59)
    st0 = d.initial(initial_x(net, sc.seed, "random", d))
    r = sc.build_rule()
    stT, _ = d.run(r, U, Y, st0, 0, 59)
    stP, _ = d.run(r, U, Y, st0, 0, 58)  # the agents' costates run one step behind
    for k, ref in (("W", stT), ("x", stT), ("b", stT), ("p", stP)):
        assert np.max(np.abs(ste[k] - ref[k])) <= 1e-12, k
    assert np.max(np.abs(stT["W"] - d.W)) > 1e-3  # it did learn


# -- SCHEMES.md §3 written out here: the decay r_w is on recurrent weights only ----
def scheme3(net: Network, rule, stream, steps: int, decay_all: bool = False) -> list[dict]:
    """SCHEMES.md §3 from scratch (flip = −1, ``w_first``, zero start): states after 0..steps.

    ``a = W x + V u + b``; ``p ← (1−θ)p + Δt ∂H/∂x``, ``∂H/∂x = γ q (x_out − y) − p +
    Wᵀ(σ'(a) p)``; ``∂H/∂W = γ r_w W + (σ'(a) p) xᵀ`` (pre not an input),
    ``∂H/∂V = (σ'(a) p) uᵀ``, ``∂H/∂b = σ'(a) p``; ``w ← w − Δt β p_w`` with the
    old ``p_w``, then ``p_w ← (1−θ)p_w + Δt ∂H/∂w``. Inputs are clamped,
    ``u_0 = 0`` and no target at step 0 (the data's first value arrives at t = 1).
    ``decay_all``: the departure fixed here (decay on ``V`` and ``b`` too).
    """
    names = sorted(net.populations)
    off = np.cumsum([0] + [net.populations[n].size for n in names])
    sl = {n: slice(off[i], off[i + 1]) for i, n in enumerate(names)}
    N = int(off[-1])
    W, edge = np.zeros((N, N)), np.zeros((N, N), bool)
    for (u, v), pr in net.projections.items():
        W[sl[v], sl[u]], edge[sl[v], sl[u]] = pr.weight, True
    is_in, is_out = np.zeros(N, bool), np.zeros(N, bool)
    tanh = np.zeros(N, bool)
    b = np.zeros(N)
    for n in names:
        pop = net.populations[n]
        b[sl[n]] = pop.bias
        is_in[sl[n]], is_out[sl[n]] = pop.role == "input", pop.role == "output"
        assert pop.activation in ("tanh", "linear")
        tanh[sl[n]] = pop.activation == "tanh"
    rec = edge & ~is_in[None, :]  # the recurrent weights: the only ones decayed
    dt, th, g = rule.dt, rule.theta, rule.gamma
    x, p, PW, pb = np.zeros(N), np.zeros(N), np.zeros((N, N)), np.zeros(N)
    out = [{"W": W.copy(), "b": b.copy(), "x": x.copy(), "p": p.copy()}]
    for t in range(steps):
        u, y = stream.frame_value(float(t)) if t else (0.0, None)
        x[is_in] = u
        a = W @ x + b
        sig = np.where(tanh, np.tanh(a), a)
        dsig = np.where(tanh, 1.0 - np.tanh(a) ** 2, 1.0)
        dl = dsig * p * ~is_in
        dHx = W.T @ dl - p
        if y is not None:
            dHx[is_out] += g * rule.q * (x[is_out] - y)
        dHW = g * rule.r_w * W * (edge if decay_all else rec) + np.outer(dl, x) * edge
        dl_b = dl + g * rule.r_w * b * decay_all
        W, PW = W - dt * rule.beta * PW, (1 - th) * PW + dt * dHW
        if rule.learn_bias:
            b, pb = (np.where(is_in, b, b - dt * rule.beta * pb),
                     np.where(is_in, 0.0, (1 - th) * pb + dt * dl_b))
        p = np.where(is_in, 0.0, (1 - th) * p + dt * dHx)
        x = x + dt * (sig - x)
        out.append({"W": W.copy(), "b": b.copy(), "x": x.copy(), "p": p.copy(),
                    "slices": sl})
    return out


DECAY_RULE = {"beta": 5.0, "dt": 0.2, "r_w": 1.0, "q": 1.0, "theta": 0.1}


@pytest.mark.parametrize("learn_bias", [True, False])
def test_decay_is_on_recurrent_weights_only(learn_bias, tmp_path):
    """The engine against §3 written here: input weights and biases are not decayed."""
    path = shortened("stlp_sine.toml", 60, tmp_path, learn_bias=learn_bias, **DECAY_RULE)
    sc = load(path)
    eng, net, stream = build_engine(sc)
    eng.run(sc.duration)
    ref = scheme3(net, sc.build_rule(), stream, 59)
    st = read_states(eng, sorted(n for n in eng.agents if not n.startswith("src:")))
    sl = ref[-1]["slices"]
    for (u, v), pr in net.projections.items():
        assert np.max(np.abs(st[pr.name]["weight"] - ref[59]["W"][sl[v], sl[u]])) <= 1e-12, \
            pr.name
    for n, pop in net.populations.items():
        if pop.role == "input":
            continue
        want_b = ref[59]["b"][sl[n]] if learn_bias else pop.bias
        assert np.max(np.abs(st[n]["bias"] - want_b)) <= 1e-12, n
        assert np.max(np.abs(st[n]["state"] - ref[59]["x"][sl[n]])) <= 1e-12, n
        # the agents' costates run one step behind their activities
        assert np.max(np.abs(st[n]["p"] - ref[58]["p"][sl[n]])) <= 1e-12, n
    # the plain-numpy face computes the same recursion
    d = Dense(net)
    U, Y = sequences(stream, 59)
    dense, _ = d.run(sc.build_rule(), U, Y, d.initial(), 0, 59)
    assert np.max(np.abs(dense["W"] - ref[59]["W"])) <= 1e-12
    assert np.max(np.abs(dense["b"] - (ref[59]["b"] if learn_bias else d.b))) <= 1e-12


def test_decaying_every_parameter_would_be_seen(tmp_path):
    """The check above has the power: decay on input weights and biases too (the
    old code) moves them by far more than its tolerance."""
    sc = load(shortened("stlp_sine.toml", 60, tmp_path, **DECAY_RULE))
    net = sc.build_network()
    rule, stream = sc.build_rule(), sc.build_stream(net)
    ref = scheme3(net, rule, stream, 59)[-1]
    every = scheme3(net, rule, stream, 59, decay_all=True)[-1]
    sl = ref["slices"]
    assert np.max(np.abs(ref["W"][:, sl["in"]] - every["W"][:, sl["in"]])) > 1e-3
    assert np.max(np.abs(ref["b"] - every["b"])) > 1e-3


# -- 2. fixed points ------------------------------------------------------------
def _topo_backprop(net: Network, npz) -> dict:
    """Forward pass and backprop of ½‖x_out − y‖² written from the saved arrays alone."""
    acts = {"tanh": (np.tanh, lambda a: 1 - np.tanh(a) ** 2),
            "linear": (lambda a: a, lambda a: np.ones_like(a))}
    order = list(nx.topological_sort(net.graph))
    x, a = {}, {}
    for n in order:
        pop = net.populations[n]
        if pop.role == "input":
            x[n] = npz[f"input/{n}"]
            continue
        a[n] = npz[f"bias/{n}"] + sum(npz[f"weight/{u}->{n}"] @ x[u] for u in net.pre(n))
        x[n] = acts[pop.activation][0](a[n])
    dx = {n: np.zeros_like(x[n]) for n in order}
    grads = {}
    for n in reversed(order):
        pop = net.populations[n]
        if pop.role == "output":
            dx[n] = dx[n] + x[n] - npz[f"target/{n}"]
        if pop.role == "input":
            continue
        da = acts[pop.activation][1](a[n]) * dx[n]
        for u in net.pre(n):
            grads[f"{u}->{n}"] = np.outer(da, x[u])
            dx[u] = dx[u] + npz[f"weight/{u}->{n}"].T @ da
    return grads


def test_fixed_point_dag_saved_state_is_backprop(tmp_path):
    sc = load(SCEN / "stlp_fixedpoint_dag.toml")
    out = tmp_path / "s.npz"
    s = simulate(sc, save_state=str(out))
    assert s["stlp"]["costate_error"] <= 1e-12 and s.get("diverged") is None
    npz = dict(np.load(out))
    for k in ("weight/", "grad/", "bias/", "input/", "target/"):
        assert any(key.startswith(k) for key in npz), k
    ref = _topo_backprop(sc.build_network(), npz)
    scale = max(np.max(np.abs(g)) for g in ref.values())
    for name, g in ref.items():
        assert np.max(np.abs(npz[f"grad/{name}"] - g)) <= 1e-12 * scale, name


def test_fixed_point_cyclic_is_almeida_pineda_and_theta_biases_it(tmp_path):
    s = simulate(load(SCEN / "stlp_fixedpoint_cyclic.toml"))["stlp"]
    assert not s["acyclic"] and s["spectral_radius"] > 0.1
    assert s["costate_error"] <= 1e-12 and s["grad_error"] <= 1e-12
    path = shortened("stlp_fixedpoint_cyclic.toml", 300, tmp_path, theta=0.05)
    b = simulate(load(path))["stlp"]
    assert b["costate_error"] > 1e-2  # biased away from Almeida-Pineda ...
    assert b["costate_error_vs_theta_fixed_point"] <= 1e-12  # ... onto the dissipative point


def test_fixed_point_report_is_the_max_abs_relative_error(tmp_path):
    """The report's figures are max|e − e*| / max|e*| (so it says), checked against the
    θ-biased costates and Almeida–Pineda solved here from the saved state alone."""
    from asyncnet.schemes.stlp.tasks import report
    sc = load(shortened("stlp_fixedpoint_cyclic.toml", 300, tmp_path, theta=0.05))
    out = tmp_path / "s.npz"
    s = simulate(sc, save_state=str(out))["stlp"]
    z, net = dict(np.load(out)), sc.build_network()
    hid = sorted(n for n, p in net.populations.items() if p.role != "input")
    off = np.cumsum([0] + [net.populations[n].size for n in hid])
    sl = {n: slice(off[i], off[i + 1]) for i, n in enumerate(hid)}
    x = {n: z[f"state/{n}"] for n in net.populations}
    J, rhs = np.zeros((off[-1], off[-1])), np.zeros(off[-1])
    p_eng = np.zeros(off[-1])
    for n in hid:  # all tanh: σ' = 1 − x² at the fixed point x = tanh(a)
        a = z[f"bias/{n}"] + sum(z[f"weight/{u}->{n}"] @ x[u] for u in net.pre(n))
        fp = 1.0 - np.tanh(a) ** 2
        p_eng[sl[n]] = z[f"delta/{n}"] / fp
        for u in net.pre(n):
            if u in sl:
                J[sl[n], sl[u]] = fp[:, None] * z[f"weight/{u}->{n}"]
        if net.populations[n].role == "output":
            rhs[sl[n]] = x[n] - z[f"target/{n}"]
    p_ap = np.linalg.solve(np.eye(len(rhs)) - J.T, rhs)  # γ = q = 1
    max_abs = np.max(np.abs(p_eng - p_ap)) / np.max(np.abs(p_ap))
    two_norm = np.linalg.norm(p_eng - p_ap) / np.linalg.norm(p_ap)
    assert s["costate_error"] > 1e-2 and abs(two_norm - max_abs) > 1e-3 * max_abs
    assert abs(s["costate_error"] - max_abs) <= 1e-9 * max_abs
    line = report({"stlp": s})[0]
    assert "max-abs relative error" in line and "normwise" not in line
    assert f"costates {max_abs:.2e}" in line


# -- 3. negative control --------------------------------------------------------
def test_flip_plus_one_diverges_and_exits_3(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "asyncnet", "run",
                        str(SCEN / "stlp_control_flip.toml"), "--no-log", "-q", "--json"],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    assert re.search(r"diverged: agent \S+ at t=\d+", r.stderr)
    path = shortened("stlp_control_flip.toml", 400, tmp_path, flip=-1)
    s = simulate(load(path))
    assert s.get("diverged") is None and s["stlp"]["free_run_mse"] is not None


# -- 4. references against finite differences --------------------------------
def _small_net(seed: int, n: int = 4, T: int = 8):
    rng = np.random.default_rng(seed)
    N = n + 2  # neuron 0 the input, neuron N-1 the output
    mask = rng.random((N, N)) < 0.7
    np.fill_diagonal(mask, False)
    mask[0] = False
    W = rng.standard_normal((N, N)) * 0.6 * mask
    b = rng.standard_normal(N) * 0.2
    b[0] = 0.0
    acts = ["linear"] + ["tanh"] * n + ["linear"]
    net = Leaky(mask, acts, np.array([0]), np.array([N - 1]), dt=0.3, q=2.0)
    U = rng.standard_normal((T + 1, 1))
    Y = rng.standard_normal((T + 1, 1))
    Y[0] = np.nan
    x0 = rng.standard_normal(N)
    return net, W, b, U, Y, x0


def _fd(net, W, b, U, Y, x0, h=1e-6):
    th = net.pack(W, b)
    g = np.zeros_like(th)
    for i in range(th.size):
        e = np.zeros_like(th)
        e[i] = h
        g[i] = (loss(net, *net.unpack(th + e, W, b), U, Y, x0)
                - loss(net, *net.unpack(th - e, W, b), U, Y, x0)) / (2 * h)
    return g


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bptt_rtrl_tbptt_match_finite_differences(seed):
    net, W, b, U, Y, x0 = _small_net(seed)
    ref = _fd(net, W, b, U, Y, x0)
    scale = np.max(np.abs(ref))
    for fn in (bptt, rtrl):
        gW, gb, L = fn(net, W, b, U, Y, x0)
        assert np.max(np.abs(net.pack(gW, gb) - ref)) <= 1e-7 * scale, fn.__name__
        assert abs(L - loss(net, W, b, U, Y, x0)) <= 1e-12 * max(1.0, L)
    # a truncated window: BPTT from the stored state at the window's start
    x = np.array(x0, dtype=float)
    x[net.inputs] = U[0]
    for t in range(3):
        x, _, _ = net.step(W, b, x, U[t + 1])
    gW, gb, _ = bptt(net, W, b, U[3:], Y[3:], x)
    assert np.max(np.abs(net.pack(gW, gb) - _fd(net, W, b, U[3:], Y[3:], x))) <= 1e-7 * scale
    assert np.max(np.abs(net.pack(gW, gb) - ref)) > 1e-4  # truncation changes it


# -- asynchronous neurons, locality ---------------------------------------------
def test_async_neurons_learn_without_diverging(tmp_path):
    s = simulate(load(shortened("stlp_async.toml", 600, tmp_path)))
    assert s.get("diverged") is None
    assert np.isfinite(s["stlp"]["tracking_mse"]) and s["locality"]["share"] == 1.0


def test_stats_and_inspect_every_agent(tmp_path):
    from asyncnet.isolate import isolate
    from asyncnet.stats import log_stats
    for name, dur in (("stlp_fixedpoint_cyclic.toml", 30), ("stlp_async.toml", 20)):
        sc = load(shortened(name, dur, tmp_path))
        log = tmp_path / f"{sc.name}.log"
        eng, _, _ = build_engine(sc)
        t_cmp = dur - 2.3
        snap: dict = {}
        eng.at(t_cmp, lambda e, t, snap=snap: snap.update({n: {k: np.array(v, copy=True) for k, v in
                                                     e.agents[n].model.state().items()}
                                                 for n in e.agents}))
        simulate(sc, log_path=str(log))
        eng.run(sc.duration)
        st = log_stats(str(log))
        assert st["locality"]["share"] == 1.0
        for agent in eng.agents:
            r = isolate(str(log), agent, until=t_cmp)
            assert r["identical"], (agent, r.get("divergence"))
            for k, v in snap[agent].items():
                assert np.array_equal(np.asarray(r["state"][k]), v), (agent, k)


def test_frozen_weights_stay_frozen():
    r = STLP(beta=0.0)
    w, pw = np.ones(3), np.zeros(3)
    for _ in range(5):
        w, pw = r.param_step(w, pw, np.ones(3))
    assert np.array_equal(w, np.ones(3)) and np.all(pw > 0)
    assert replace(r, order="p_first").param_step(w, pw, pw)[0].tolist() == [1.0, 1.0, 1.0]


def test_general_divergence_check_names_the_agent():
    """Any rule: a non-finite final state is reported by agent and key."""
    from asyncnet.analysis.divergence import diverged
    eng, _, _ = build_engine(load(ROOT / "scenarios" / "quickstart.toml"))

    def states():
        return {n: a.model.state() for n, a in eng.agents.items()}

    assert diverged(states()) is None
    eng.agents["l1->l2"].model.W[0, 0] = np.nan
    dv = diverged(states())
    assert dv["agent"] == "l1->l2" and dv["key"] == "weight" and "not finite" in dv["how"]


def test_lag_and_constant_input_exclude_each_other(tmp_path):
    text = (SCEN / "stlp_sine.toml").read_text().replace("lag = 150", "lag = 150\ninput = [1.0]")
    p = tmp_path / "x.toml"
    p.write_text(text)
    sc = load(p)
    with pytest.raises(ScenarioError, match="either 'lag'"):
        sc.build_stream(sc.build_network())
