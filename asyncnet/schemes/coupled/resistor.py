"""Linear resistor (flow) networks: coupled learning and EP on them, in plain numpy.

Nodes ``0..n-1`` carry voltages (or pressures) ``p``; edge ``e = (i, j)`` has
conductance ``k_e > 0`` and voltage drop ``Δp_e = p_i − p_j = (D p)_e`` with
``D`` the (m, n) incidence matrix. The physical energy (dissipated power) is

    P(p; k) = ½ Σ_e k_e Δp_e²           (homogeneous of degree 1 in k)

Inputs are either *voltage sources* (their voltage is clamped; the free state
minimises ``P`` over the other nodes) or *current sources* (a current ``I`` is
injected at each input node, a ground node is clamped at 0, and the free state
minimises ``E = P − I·p``). The output nodes are read. Loss ``C = ½‖p_O − y‖²``.

Learning rules (``θ = k``); each returns an estimate ``g ≈ ∂L/∂k``, and the
parameters move by ``k ← k − α g`` (``θ̇ = −g``):

- **EP** (Scellier & Bengio on the linear energy): nudged state minimises
  ``E + β C``; ``g = (1/β)[∂E/∂k(p^β) − ∂E/∂k(p⁰)] = (1/2β)[Δp_β² − Δp_0²]``,
  or with ``±β`` and ``1/(2β)`` (symmetric).
- **CL** (Stern et al. 2021): the clamped state holds the outputs at
  ``p_O⁰ + η (y − p_O⁰)``; ``g = (1/2η)[Δp_C² − Δp_F²]``. For small ``η`` it is
  the gradient of ``½ (p_O − y)ᵀ H (p_O − y)`` with ``H`` the effective
  conductance seen at the outputs (the Schur complement of the Laplacian),
  held fixed — CL is EP with that cost (checked in the tests).

Everything works on one input ``x`` of shape ``(n_in,)`` or a batch ``(B, n_in)``
(updates are averaged over the batch). References: direct linear solves
(:func:`solve`), implicit differentiation (:func:`implicit_gradient`), and the
local Jacobi relaxation (:func:`jacobi_step`) that the engine's node agents run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ResistorNet:
    """Graph, conductances and node roles of a resistor network.

    ``mode`` is ``"voltage"`` (inputs clamped to the given voltages) or
    ``"current"`` (inputs receive the given currents). ``ground`` (optional
    in voltage mode, required in current mode) is a node clamped at 0.
    ``floor`` is the positive lower bound that training keeps ``k`` above.
    """

    n: int
    edges: np.ndarray  # (m, 2) int
    k: np.ndarray  # (m,)
    inputs: np.ndarray
    outputs: np.ndarray
    ground: int | None = None
    mode: str = "voltage"
    floor: float = 1e-3
    D: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.edges = np.asarray(self.edges, int).reshape(-1, 2)
        self.k = np.asarray(self.k, float).copy()
        self.inputs = np.asarray(self.inputs, int)
        self.outputs = np.asarray(self.outputs, int)
        if self.k.shape != (len(self.edges),):
            raise ValueError("one conductance per edge")
        if self.mode not in ("voltage", "current"):
            raise ValueError(f"mode must be 'voltage' or 'current', got {self.mode!r}")
        if self.mode == "current" and self.ground is None:
            raise ValueError("current-source inputs need a ground node")
        if np.any(self.edges[:, 0] == self.edges[:, 1]):
            raise ValueError("self-loops are not allowed")
        self.D = np.zeros((len(self.edges), self.n))
        self.D[np.arange(len(self.edges)), self.edges[:, 0]] = 1.0
        self.D[np.arange(len(self.edges)), self.edges[:, 1]] = -1.0

    def copy(self) -> ResistorNet:
        """A deep copy with the same conductances."""
        return ResistorNet(self.n, self.edges.copy(), self.k.copy(), self.inputs.copy(),
                           self.outputs.copy(), self.ground, self.mode, self.floor)

    def clamped_nodes(self) -> np.ndarray:
        """Nodes whose voltage is fixed in the free state (sorted)."""
        c = [] if self.ground is None else [self.ground]
        if self.mode == "voltage":
            c = c + list(self.inputs)
        return np.array(sorted(c), int)

    def laplacian(self) -> np.ndarray:
        """L = Dᵀ diag(k) D (so that P = ½ pᵀ L p)."""
        return self.D.T @ (self.k[:, None] * self.D)


def random_network(n: int = 12, m: int = 26, *, n_in: int = 3, n_out: int = 2,
                   ground: bool = True, mode: str = "voltage", seed: int = 0,
                   k_range: tuple[float, float] = (0.5, 1.5)) -> ResistorNet:
    """A connected random graph with ``n`` nodes and ``m`` edges.

    Node 0 is the ground (if any), then the inputs, then the outputs last.
    A random spanning tree guarantees connectivity; the other edges are drawn
    uniformly among the missing pairs. No resistor joins two sources (ground
    or inputs): between two clamped voltages it would be inert; none joins two
    outputs, so the outputs can form one population in a scenario.
    """
    if m < n - 1 or m > n * (n - 1) // 2:
        raise ValueError(f"cannot build a connected graph with {n} nodes and {m} edges")
    rng = np.random.default_rng(seed)
    g0 = 1 if ground else 0
    src = set(range(g0 + n_in))  # ground and inputs: no resistor between two of them
    outs = set(range(n - n_out, n))  # nor between two outputs (one population)

    def allowed(i: int, j: int) -> bool:
        return not ((i in src and j in src) or (i in outs and j in outs))

    # a random spanning tree that starts at a hidden node, so every node has a
    # possible parent
    if n - n_out - len(src) < 1:
        raise ValueError("need at least one hidden node")
    h0 = len(src)
    order = [h0] + [int(v) for v in rng.permutation(n) if v != h0]
    pairs = set()
    for i in range(1, n):
        cands = [u for u in order[:i] if allowed(order[i], u)]
        u = cands[int(rng.integers(0, len(cands)))]
        pairs.add(tuple(sorted((order[i], u))))
    rest = [(i, j) for i in range(n) for j in range(i + 1, n)
            if (i, j) not in pairs and allowed(i, j)]
    if m - len(pairs) > len(rest):
        raise ValueError(f"cannot place {m} edges on {n} nodes")
    extra = rng.choice(len(rest), m - len(pairs), replace=False)
    edges = np.array(sorted(pairs | {rest[e] for e in extra}))
    k = rng.uniform(*k_range, len(edges))
    inputs = np.arange(g0, g0 + n_in)
    outputs = np.arange(n - n_out, n)
    return ResistorNet(n, edges, k, inputs, outputs, 0 if ground else None, mode)


# -- states ----------------------------------------------------------------------


def solve(net: ResistorNet, x: np.ndarray, *, beta: float = 0.0, y: np.ndarray | None = None,
          clamp_out: np.ndarray | None = None) -> np.ndarray:
    """The equilibrium voltages, by a direct linear solve.

    ``x``: input voltages (voltage mode) or injected currents (current mode),
    shape ``(n_in,)`` or ``(B, n_in)``. ``beta``/``y``: minimise ``E + β C``
    (EP's nudge). ``clamp_out``: also clamp the outputs to these voltages
    (CL's clamped state). Returns ``p`` of shape ``(n,)`` or ``(B, n)``.
    """
    x = np.asarray(x, float)
    single = x.ndim == 1
    X = x[None] if single else x
    B = X.shape[0]
    L = net.laplacian()
    clamp = list(net.clamped_nodes())
    vals = np.zeros((B, net.n))
    if net.mode == "voltage":
        vals[:, net.inputs] = X
    if clamp_out is not None:
        C = np.asarray(clamp_out, float).reshape(B, -1)
        clamp = sorted(set(clamp) | set(net.outputs.tolist()))
        vals[:, net.outputs] = C
    clamp = np.array(clamp, int)
    free = np.setdiff1d(np.arange(net.n), clamp)
    rhs = -vals[:, clamp] @ L[np.ix_(clamp, free)]  # (B, n_free)
    A = L[np.ix_(free, free)].copy()
    if net.mode == "current":
        cur = np.zeros((B, net.n))
        cur[:, net.inputs] = X
        rhs = rhs + cur[:, free]
    if beta and clamp_out is None:
        pos = np.searchsorted(free, net.outputs)
        A[pos, pos] += beta
        Y = np.broadcast_to(np.asarray(y, float), (B, len(net.outputs)))
        rhs[:, pos] += beta * Y
    p = vals.copy()
    p[:, free] = np.linalg.solve(A, rhs.T).T
    return p[0] if single else p


def drops(net: ResistorNet, p: np.ndarray) -> np.ndarray:
    """Voltage drops Δp = D p per edge (batch rows kept)."""
    return p @ net.D.T


def power(net: ResistorNet, p: np.ndarray) -> np.ndarray:
    """P = ½ Σ k Δp² (one value per batch row)."""
    d = drops(net, p)
    return 0.5 * np.sum(net.k * d * d, axis=-1)


def energy(net: ResistorNet, p: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The energy the free state minimises: P, minus I·p with current sources."""
    e = power(net, p)
    if net.mode == "current":
        e = e - np.sum(np.asarray(x, float) * p[..., net.inputs], axis=-1)
    return e


def loss(net: ResistorNet, x: np.ndarray, y: np.ndarray) -> float:
    """Mean over the batch of C = ½‖p_O − y‖² at the free state."""
    p = solve(net, x)
    d = p[..., net.outputs] - y
    return float(np.mean(0.5 * np.sum(d * d, axis=-1)))


def _dk(net: ResistorNet, p: np.ndarray) -> np.ndarray:
    """∂E/∂k = ½ Δp², averaged over the batch."""
    d = drops(net, p).reshape(-1, len(net.k))
    return 0.5 * np.mean(d * d, axis=0)


# -- learning rules ----------------------------------------------------------------


def ep_gradient(net: ResistorNet, x, y, beta: float, symmetric: bool = False) -> np.ndarray:
    """EP's estimate of ∂L/∂k: one-sided (1/β) or symmetric ±β (1/2β)."""
    if symmetric:
        return (_dk(net, solve(net, x, beta=beta, y=y))
                - _dk(net, solve(net, x, beta=-beta, y=y))) / (2 * beta)
    return (_dk(net, solve(net, x, beta=beta, y=y)) - _dk(net, solve(net, x))) / beta


def cl_gradient(net: ResistorNet, x, y, eta: float) -> np.ndarray:
    """CL's estimate: (1/η)[∂P/∂k(clamped) − ∂P/∂k(free)] = (1/2η)[Δp_C² − Δp_F²]."""
    pf = solve(net, x)
    out = pf[..., net.outputs]
    pc = solve(net, x, clamp_out=out + eta * (y - out))
    return (_dk(net, pc) - _dk(net, pf)) / eta


def effective_conductance(net: ResistorNet) -> np.ndarray:
    """H: the Hessian of min_hidden E with respect to the output voltages."""
    L = net.laplacian()
    clamp = net.clamped_nodes()
    hid = np.setdiff1d(np.arange(net.n), np.union1d(clamp, net.outputs))
    o = net.outputs
    Loo = L[np.ix_(o, o)]
    if len(hid) == 0:
        return Loo
    return Loo - L[np.ix_(o, hid)] @ np.linalg.solve(L[np.ix_(hid, hid)], L[np.ix_(hid, o)])


def implicit_gradient(net: ResistorNet, x, y, M: np.ndarray | None = None) -> np.ndarray:
    """∂L/∂k of L = ½ (p_O − y)ᵀ M (p_O − y) at the free state (M = I by default).

    Implicit differentiation of L_ff p_f = rhs: with λ_f = L_ff⁻¹ ∂L/∂p_f
    (zero on clamped nodes), ∂L/∂k_e = −(D λ)_e (D p)_e, averaged over the batch.
    """
    p = np.atleast_2d(solve(net, x))
    L = net.laplacian()
    free = np.setdiff1d(np.arange(net.n), net.clamped_nodes())
    Mo = np.eye(len(net.outputs)) if M is None else M
    dC = np.zeros_like(p)
    dC[:, net.outputs] = (p[:, net.outputs] - y) @ Mo.T
    lam = np.zeros_like(p)
    lam[:, free] = np.linalg.solve(L[np.ix_(free, free)], dC[:, free].T).T
    return -np.mean(drops(net, lam) * drops(net, p), axis=0)


# -- local relaxation (what a node agent does) ------------------------------------


def jacobi_step(net: ResistorNet, p: np.ndarray, fixed: np.ndarray,
                current: np.ndarray | None = None) -> np.ndarray:
    """One synchronous sweep: every unfixed node takes the k-weighted mean of its
    neighbours (plus injected current / Σk). ``fixed`` is a boolean node mask."""
    A = np.abs(net.D.T) @ (net.k[:, None] * np.abs(net.D))  # weighted adjacency + diag
    deg = np.abs(net.D).T @ net.k
    A = A - np.diag(np.diag(A))
    new = (p @ A.T + (0.0 if current is None else current)) / deg
    return np.where(fixed, p, new)


# -- training with the conserved quantity tracked -------------------------------------


def train(net: ResistorNet, x, y, *, rule: str, nudge: float, lr: float, steps: int,
          floor: bool = True, every: int = 1) -> dict:
    """Gradient flow ``k ← k − lr · g`` for ``steps`` steps; track Q = Σk² and the loss.

    ``rule``: ``"ep"``, ``"ep-sym"`` or ``"cl"``. ``floor``: clip k at
    ``net.floor`` after each step. Returns arrays ``Q``, ``loss``, ``cos``
    (cos(θ, θ̇) at each recorded step) and ``step_sq`` (lr²‖θ̇‖² per step).
    """
    Q, L, cos, sq = [], [], [], []
    for t in range(steps + 1):
        if rule == "ep":
            g = ep_gradient(net, x, y, nudge)
        elif rule == "ep-sym":
            g = ep_gradient(net, x, y, nudge, symmetric=True)
        elif rule == "cl":
            g = cl_gradient(net, x, y, nudge)
        else:
            raise ValueError(f"unknown rule {rule!r}")
        if t % every == 0:
            Q.append(float(net.k @ net.k))
            L.append(loss(net, x, y))
            cos.append(float(-(net.k @ g) / (np.linalg.norm(net.k) * np.linalg.norm(g))))
            sq.append(float(lr * lr * (g @ g)))
        if t == steps:
            break
        net.k = net.k - lr * g
        if floor:
            net.k = np.maximum(net.k, net.floor)
    return {"Q": np.array(Q), "loss": np.array(L), "cos": np.array(cos),
            "step_sq": np.array(sq)}
