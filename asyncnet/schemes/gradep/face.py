"""The plain-numpy face of GradEP: the agents' arithmetic composed synchronously.

One training step (SCHEMES.md §5): free phase (``free_steps`` synchronous steps
from ``x = x_t``, ``h = 0``), then the +β and −β phases (``nudge_steps`` each)
both from the free state; the symmetric estimator; clip; Adam per tensor.
The per-step arithmetic is the agents' own (:mod:`.physics`), called in the
order the agents call it, so the engine must reproduce it to rounding.

A *shard* relaxes part of the batch; ``reduce`` merges the batch sums of the
shards (identity for one process), so the estimator stays a full-batch mean.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import physics as P

Reduce = Callable[[str, np.ndarray], np.ndarray]


def _identity(key: str, a: np.ndarray) -> np.ndarray:
    return a


class Face:
    """Parameters, Adam states and the synchronous relaxation of one shard.

    Parameters
    ----------
    c: the configuration. params: the five tensors (copied, cast to ``c.dtype``).
    batch: the full batch size (the estimator's mean is over it).
    reduce: ``(key, partial sum) -> full sum`` across shards.
    """

    def __init__(self, c: P.Config, params: dict, batch: int, reduce: Reduce | None = None):
        self.c = c
        dt = c.np_dtype
        self.p = {k: np.array(v, dtype=dt) for k, v in params.items()}
        self.opt = {k: P.Adam(v.shape, dt, c) for k, v in self.p.items()}
        self.batch = batch
        self.reduce = reduce or _identity

    # -- relaxation ---------------------------------------------------------
    def reset(self, xt: np.ndarray) -> tuple:
        """The state a window starts from: x = x_t, h = 0 (with a(h), a'(h))."""
        B, dt = len(xt), self.c.np_dtype
        h1 = np.zeros((B, self.p["W0"].shape[0]), dt)
        h2 = np.zeros((B, self.p["W1"].shape[0]), dt)
        return (xt, h1, *P.act_d(h1), h2, *P.act_d(h2))

    def relax(self, s: tuple, xt: np.ndarray, u: np.ndarray, m: float, steps: int,
              clamp_x: bool = False) -> tuple:
        """``steps`` synchronous steps of every population (x held if ``clamp_x``)."""
        c, p = self.c, self.p
        q, r = P.visible_pull(c, xt, u, m)
        x, h1, a1, d1, h2, a2, d2 = s
        for _ in range(steps):
            # what each synapse relays, from the previous state (synchronous)
            f0_post, f0_pre = P.relay(p["W0"], x, a1)
            f1_post, f1_pre = P.relay(p["W1"], a1, a2)
            if not clamp_x:
                x = P.visible_step(x, [f0_pre], p["bx"], q, r, c.eps)
            # fields in the order a population sorts its synapses: h1->h2 < x->h1
            h1, a1, d1 = P.hidden_update(h1, d1, [f1_pre, f0_post], p["c0"], c.eps, c.kernel)
            h2, a2, d2 = P.hidden_update(h2, d2, [f1_post], p["c1"], c.eps, c.kernel)
        return (x, h1, a1, d1, h2, a2, d2)

    @staticmethod
    def sums(s: tuple) -> dict[str, np.ndarray]:
        """Every agent's local quantity (batch sums of −∂E/∂θ) at state ``s``."""
        x, _, a1, _, _, a2, _ = s
        return {"W0": P.weight_sum(x, a1), "c0": P.bias_sum(a1), "W1": P.weight_sum(a1, a2),
                "c1": P.bias_sum(a2), "bx": P.bias_sum(x)}

    def loss_sum(self, x: np.ndarray, xt: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Σ (v − u)² over this shard, v = αλ(x* − x_t) (x's own measurement)."""
        v = (self.c.alpha * self.c.lam) * (x - xt)
        return np.atleast_1d(np.sum((v - u) ** 2, dtype=np.float64))

    # -- one training step -----------------------------------------------------
    def gradient(self, xt: np.ndarray, u: np.ndarray) -> tuple[float, dict]:
        """Relax the three phases and estimate: ``(free-state loss, {name: ∂L/∂θ})``.

        The loss is the per-pixel mean of (v − u)² at the free state; the
        estimate is the symmetric one, (P⁻ − P⁺)/(2βB), from full-batch sums.
        """
        c = self.c
        free = self.relax(self.reset(xt), xt, u, 0.0, c.free_steps)
        loss = float(self.reduce("loss", self.loss_sum(free[0], xt, u))[0]) \
            / (self.batch * xt.shape[1])
        plus = self.sums(self.relax(free, xt, u, 1.0, c.nudge_steps))
        minus = self.sums(self.relax(free, xt, u, -1.0, c.nudge_steps))
        grads = {k: P.estimate(self.reduce(k + "+", plus[k]), self.reduce(k + "-", minus[k]),
                               c.beta, self.batch) for k in P.PARAMS}
        return loss, grads

    def train_step(self, xt: np.ndarray, u: np.ndarray) -> float:
        """Relax, estimate, clip, Adam. Returns the free-state loss (per-pixel mean)."""
        loss, grads = self.gradient(xt, u)
        self.apply(grads)
        return loss

    def apply(self, grads: dict[str, np.ndarray]) -> None:
        """Clip (global, local or none) and take each tensor's Adam step."""
        c = self.c
        if c.clip_mode == "global":
            f = P.clip_factor(sum(float(np.sum(g.astype(np.float64) ** 2))
                                  for g in grads.values()), c.clip)
            grads = {k: g * f for k, g in grads.items()}
        elif c.clip_mode == "local":
            grads = {k: g * P.clip_factor(float(np.sum(g.astype(np.float64) ** 2)), c.clip)
                     for k, g in grads.items()}
        for k in P.PARAMS:
            self.p[k] = self.opt[k].step(self.p[k], grads[k].astype(self.p[k].dtype))

    def state(self) -> dict[str, np.ndarray]:
        """Parameters and Adam states, flat (for checkpoints)."""
        out = {f"param/{k}": v for k, v in self.p.items()}
        for k, o in self.opt.items():
            out.update({f"adam/{k}/{n}": a for n, a in o.state().items()})
        return out

    def load(self, st: dict) -> None:
        """Restore :meth:`state`."""
        for k in P.PARAMS:
            self.p[k] = np.array(st[f"param/{k}"], dtype=self.c.np_dtype)
            self.opt[k].load({n: st[f"adam/{k}/{n}"] for n in ("m", "v", "t")})
