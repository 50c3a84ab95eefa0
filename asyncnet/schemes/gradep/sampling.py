"""Sampling a trained FlowEqProp model: Euler steps along the learned velocity.

From Gaussian noise, ``x ← x + dt · v(x)`` with ``dt = 0.01``, one Euler step
per time of ``0, dt, …, t1`` as the source does (101 steps for t1 = 1.0, 121
for t1 = 1.2, sharper), then clamped to [−1, 1]. Two velocity modes (SCHEMES.md §5):

- ``energy``: x held, the hidden populations relax ``relax`` steps from 0,
  ``v = −α ∂E/∂x = −α (x − b_x − a(h1*) W0)``;
- ``spring``: a free phase with the spring at the current point (x moves),
  ``v = αλ (x* − x)``.
"""

from __future__ import annotations

import os

import numpy as np

from ...network import agent_rng
from ...outputs import save_npz, write_whole
from . import physics as P
from .errors import GradEPError
from .face import Face
from .train import load_checkpoint, run_config

MODES = ("energy", "spring")


def load_model(path: str) -> tuple[P.Config, dict]:
    """``(config, parameters)`` from a run's state directory or a checkpoint ``.npz``.

    Raises
    ------
    GradEPError
        ``path`` is no gradep state directory or checkpoint (naming what it is).
    """
    if os.path.isdir(path):
        if load_checkpoint(path) is None:
            raise GradEPError(f"{path}: no checkpoint.npz in it: not the state directory of "
                              f"a gradep run, or its run wrote no checkpoint yet")
        path = os.path.join(path, "checkpoint.npz")
    try:
        with np.load(path, allow_pickle=False) as z:
            ck = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as e:  # no .npz: text, a log, cut short
        if isinstance(e, FileNotFoundError):
            raise
        raise GradEPError(f"{path}: not a gradep checkpoint (an .npz written by a gradep "
                          f"run: its state directory or a file of its steps/)") from None
    try:
        cfg = run_config(ck)
        keep = {k: (tuple(v) if k == "sizes" else v) for k, v in cfg.items()
                if k in P.Config.__dataclass_fields__}
        params = {k: ck[f"param/{k}"] for k in P.PARAMS}
        config = P.Config(**keep)
    except (KeyError, TypeError, ValueError):
        raise GradEPError(f"{path}: an .npz, but not a gradep checkpoint (its run "
                          f"configuration or parameters are missing)") from None
    bad = [k for k, v in params.items() if not np.all(np.isfinite(v))]
    if bad:  # a diverged run: every sample would be NaN
        raise GradEPError(f"{path}: parameters {', '.join(bad)} are not finite (the run "
                          f"diverged): sample an earlier step's checkpoint (steps/)")
    return config, params


def is_checkpoint(path: str) -> bool:
    """Whether ``path`` is an existing .npz holding a gradep run's configuration
    (a checkpoint, which ``asyncnet sample -o`` must not overwrite)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return "config" in z.files
    except (ValueError, OSError, EOFError):
        return False


def velocity(face: Face, x: np.ndarray, mode: str, relax: int) -> np.ndarray:
    """The model's velocity at the points ``x`` (one row per sample)."""
    c = face.c
    s0 = face.reset(x)
    if mode == "energy":
        s = face.relax(s0, x, x, 0.0, relax, clamp_x=True)
        a1 = s[2]
        return -c.alpha * (x - face.p["bx"] - a1 @ face.p["W0"])
    if mode == "spring":
        s = face.relax(s0, x, x, 0.0, relax)
        return (c.alpha * c.lam) * (s[0] - x)
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def sample(path_or_model, *, n: int = 64, steps: int = 101, mode: str = "energy",
           seed: int = 0, dt: float = 0.01, relax: int | None = None) -> np.ndarray:
    """Draw ``n`` samples.

    Parameters
    ----------
    path_or_model: a state directory / checkpoint path, or ``(config, params)``.
    n: samples. steps: Euler steps, one per time 0, dt, … (101 → t1 = 1.0, 121 → 1.2).
    mode: ``energy`` or ``spring``. seed: of the noise. dt: Euler step.
    relax: relaxation steps per velocity (default: the run's free_steps).

    Returns
    -------
    ``(n, 64)`` array in [−1, 1].
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if steps < 1 or n < 1:
        raise ValueError("steps and n must be >= 1")
    c, params = (load_model(path_or_model) if isinstance(path_or_model, str | os.PathLike)
                 else path_or_model)
    face = Face(c, params, n)
    x = agent_rng(seed, "gradep-sample").standard_normal((n, c.sizes[0])).astype(c.np_dtype)
    for _ in range(steps):
        x = x + dt * velocity(face, x, mode, relax or c.free_steps)
    return np.clip(x, -1.0, 1.0)


def grid_figure(samples: np.ndarray, title: str = ""):
    """An 8×8 (or smaller) grid of 8×8 images as a matplotlib Figure (no pyplot)."""
    from matplotlib.figure import Figure
    k = int(np.ceil(np.sqrt(len(samples))))
    img = np.full((k * 9 + 1, k * 9 + 1), np.nan)
    for i, s in enumerate(samples):
        r, c = divmod(i, k)
        img[1 + 9 * r:9 * r + 9, 1 + 9 * c:9 * c + 9] = s.reshape(8, 8)
    fig = Figure(figsize=(4, 4.3 if title else 4), dpi=100)
    ax = fig.add_axes((0, 0, 1, 0.93 if title else 1))
    ax.imshow(img, cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def sample_stem(out: str) -> str:
    """``out`` without a ``.npz`` or ``.png`` ending: the stem of both files written."""
    return out[:-4] if out.endswith((".npz", ".png")) else out


def save_samples(samples: np.ndarray, out: str, title: str = "") -> tuple[str, str]:
    """Write ``<out>.npz`` (key ``samples``) and ``<out>.png`` (the grid).

    Returns
    -------
    The two paths written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    stem = sample_stem(out)
    os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
    save_npz(stem + ".npz", {"samples": samples}, "the samples")
    fig = grid_figure(samples, title)
    write_whole(stem + ".png", FigureCanvasAgg(fig).print_png, "the samples' figure")
    return stem + ".npz", stem + ".png"
