"""``asyncnet plot LOG --waves | --tension``: pictures from an event log.

``--waves`` is the diffusion paper's Figs. 1–3: depth against time, which
input frame each population's forward activity carries (blue) and for which
frame its delta carries credit (red), from the log alone (the labels are
computed in :mod:`asyncnet.waves`). Where a population's two frames agree,
the update there is the gradient of one single frame (a black strip).
``--tension`` draws the least-action tension view, activity ``(u+v)/2`` and
credit ``(u-v)/2`` of every neuron over time.
matplotlib is an optional extra (``pip install 'asyncnet[plot]'``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from .commands import command, positive_time
from .logfile import open_log
from .messages import KIND_NAMES, QUANTA
from .outputs import check_apart, check_figure_path, extra_hint, write_whole
from .waves import UNINFORMED, depths, tension_trace, wave_labels  # noqa: F401 (API)


def _segments(steps: list[tuple[float, int]], t_end: float):
    """``[(t0, t1, label)]`` covering ``[0, t_end]`` from a step function."""
    out, t_prev, lab = [], 0.0, UNINFORMED
    for t, v in steps:
        if t > t_prev:
            out.append((t_prev, t, lab))
        t_prev, lab = t, v
    if t_end > t_prev:
        out.append((t_prev, t_end, lab))
    return out


def _agree(f_seg, c_seg, t_end: float) -> list[tuple[float, float]]:
    """Intervals where both step functions carry the same informed frame (a merge)."""
    out, i, j = [], 0, 0
    while i < len(f_seg) and j < len(c_seg):
        t0, t1, lf = f_seg[i]
        s0, s1, lc = c_seg[j]
        a, b = max(t0, s0), min(t1, s1, t_end)
        if b > a and lf == lc and lf != UNINFORMED:
            out.append((a, b))
        if t1 <= s1:
            i += 1
        else:
            j += 1
    return out


def _axes(ax: Any, figsize: tuple[float, float], ncols: int = 1, **kw: Any) -> tuple:
    """``(figure, axes)``: the given axes, or new ones (pyplot: shown inline in a
    notebook). Never changes the backend."""
    if ax is not None:
        first = ax[0] if isinstance(ax, (list, tuple, np.ndarray)) else ax
        return first.figure, ax
    import matplotlib.pyplot as plt
    return plt.subplots(1, ncols, figsize=figsize, **kw)


def _save(fig: Any, out: str | None) -> None:
    """Write ``fig`` to ``out`` (if given) and release it from pyplot."""
    if out is None:
        return
    ext = os.path.splitext(out)[1][1:].lower() or None  # a file object tells no format
    write_whole(out, lambda f: fig.savefig(f, dpi=110, format=ext), "the figure")
    import matplotlib.pyplot as plt
    plt.close(fig)


def draw_waves(labels: dict, out: str | None = None, until: float | None = None,
               ax: Any = None) -> Any:
    """The space-time picture of the waves (the diffusion paper's Figs. 1–3).

    Parameters
    ----------
    labels:
        :func:`asyncnet.waves.wave_labels` of a log.
    out:
        A file to write (PNG, SVG, PDF...); ``None``: only return the figure.
    until:
        Draw up to this time (default: the end of the log).
    ax:
        A matplotlib ``Axes`` to draw into (default: a new figure).

    Returns
    -------
    The matplotlib ``Figure``.
    """
    from matplotlib.patches import Patch

    t_end = labels["t_end"] if until is None else min(until, labels["t_end"])
    pops = labels["populations"]
    shades = {"forward": ("#9ecae1", "#2171b5"), "credit": ("#fcae91", "#cb181d")}
    fig_h = 1.6 + 0.3 * len(pops)
    own = ax is None
    fig, ax = _axes(ax, (9, fig_h))
    for row, (name, _) in enumerate(pops):
        y0 = row
        f_seg = _segments(labels["forward"][name], t_end)
        c_seg = _segments(labels["credit"][name], t_end)
        for kind, segs, ys in (("forward", f_seg, (y0 + 0.5, 0.42)),
                               ("credit", c_seg, (y0 + 0.08, 0.42))):
            for t0, t1, lab in segs:
                if lab == UNINFORMED or t0 >= t_end:
                    continue
                ax.broken_barh([(t0, min(t1, t_end) - t0)], ys,
                               facecolors=shades[kind][lab % 2], linewidth=0)
        # where forward and credit frames agree: one frame's exact update
        for a, b in _agree(f_seg, c_seg, t_end):
            ax.broken_barh([(a, b - a)], (y0 + 0.44, 0.12), facecolors="black",
                           linewidth=0, zorder=3)
    for t in labels["frames"]:
        if t <= t_end:
            ax.axvline(t, color="0.6", lw=0.5, ls=":", zorder=0)
    # a log without records ends at 0: an axis 0..0 was matplotlib's "singular" warning
    ax.set_xlim(0, t_end if t_end > 0 else 1.0)
    ax.set_ylim(0, len(pops))
    ax.set_yticks([r + 0.5 for r in range(len(pops))])
    ax.set_yticklabels([f"{n} (depth {d})" for n, d in pops], fontsize=8)
    ax.set_xlabel("time")
    ax.set_title(f"{labels['scenario']}: forward (blue) and credit (red) waves; "
                 f"shade alternates with the frame", fontsize=10)
    handles = [Patch(color=shades["forward"][1], label="forward: input frame k"),
               Patch(color=shades["credit"][1], label="delta: credit for frame k"),
               Patch(color="black", label="same frame (one frame's update)"),
               Patch(facecolor="white", edgecolor="0.5", label="not yet informed")]
    if own:
        fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.9 / fig_h, 1, 1))
    else:
        ax.legend(handles=handles, fontsize=7, loc="upper right")
    _save(fig, out)
    return fig


def draw_tension(tr: dict, out: str | None = None, until: float | None = None,
                 ax: Any = None) -> Any:
    """Two heat maps, neurons (by depth) against time: activity and credit.

    Parameters
    ----------
    tr:
        :func:`tension_trace` of a log.
    out:
        A file to write; ``None``: only return the figure.
    until:
        Draw up to this time.
    ax:
        Two matplotlib ``Axes`` (activity, credit) to draw into (default: a
        new figure).

    Returns
    -------
    The matplotlib ``Figure``.
    """
    t = tr["t"]
    keep = t <= (until if until is not None else t[-1])
    n = len(tr["rows"])
    own = ax is None
    fig, axes = _axes(ax, (11, 1.4 + 0.22 * n), ncols=2, sharey=True)
    if np.size(axes) != 2:  # one Axes: "'Axes' object is not iterable"
        raise ValueError(f"ax: two axes (activity, credit), got {np.size(axes)}")
    titles = ("activity (u+v)/2 = x", "credit (u-v)/2 = λ")
    for ax, key, title in zip(axes, ("activity", "credit"), titles, strict=True):
        z = tr[key][:, keep]
        vmax = float(np.nanpercentile(np.abs(z), 99)) or 1.0
        im = ax.imshow(z, aspect="auto", origin="lower", cmap="RdBu_r", vmin=-vmax,
                       vmax=vmax, interpolation="nearest",
                       extent=(t[keep][0], t[keep][-1], 0, n))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("time")
        fig.colorbar(im, ax=ax, fraction=0.04)
    axes[0].set_yticks([r + 0.5 for r in range(n)])
    axes[0].set_yticklabels([f"{lab} (d{d})" for lab, d in tr["rows"]], fontsize=7)
    if own:
        fig.suptitle(f"{tr['scenario']}: the tension view u = x + λ, v = x - λ", fontsize=10)
        fig.tight_layout()
    _save(fig, out)
    return fig


KIND_COLOURS = {"forward": "#2171b5", "delta": "#cb181d", "control": "0.45"}


def _records(log: Any, until: float | None) -> Iterator[list]:
    """A log's records (``log``: a path or an opened log), up to ``until``."""
    if until is not None and (isinstance(until, bool) or not isinstance(until, (int, float))
                              or not np.isfinite(until)):  # nan drew all, "5" failed later
        raise ValueError(f"until must be a finite time or None, got {until!r}"[:200])
    if not hasattr(log, "records"):
        log = open_log(log)
    q_end = None if until is None else until * QUANTA
    for rec in log.records():
        if q_end is not None and rec[0] > q_end:
            break
        yield rec


def raster(log: Any, ax: Any = None, until: float | None = None,
           agents: list[str] | None = None, kinds: tuple[str, ...] = KIND_NAMES,
           by: str = "dst", max_events: int = 200_000) -> Any:
    """A raster of message events: one row per agent, one tick per message.

    Parameters
    ----------
    log:
        An event log's path or an opened log (``open_log``).
    ax:
        A matplotlib ``Axes`` to draw into (default: a new figure).
    until:
        Only messages that arrive up to this time.
    agents:
        The rows, in order (default: every agent that has an event, neurons
        first).
    kinds:
        Which message kinds to draw (``forward``, ``delta``, ``control``).
    by:
        ``"dst"``: a tick at the receiver when a message arrives;
        ``"src"``: at the sender when it was sent.
    max_events:
        Stop after this many drawn events (a raster of millions is unreadable).

    Returns
    -------
    The matplotlib ``Figure``.
    """
    if by not in ("dst", "src"):
        raise ValueError(f"by must be 'dst' or 'src', got {by!r}")
    opened = log if hasattr(log, "records") else open_log(log)
    names = opened.agents
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)  # "delta": one, not 5
    if not set(kinds) <= set(KIND_NAMES):  # ("forwards",) failed in tuple.index
        raise ValueError(f"kinds must name forward, delta or control, got {kinds!r}"[:200])
    want = {KIND_NAMES.index(k) for k in kinds}
    pts: dict[int, tuple[list, list]] = {k: ([], []) for k in want}
    n = 0
    for rec in _records(opened, until):
        if rec[1] not in want:
            continue
        who = rec[3] if by == "dst" else rec[2]
        t = rec[0] if by == "dst" else rec[4]
        pts[rec[1]][0].append(t / QUANTA)
        pts[rec[1]][1].append(who)
        n += 1
        if n >= max_events:
            break
    seen = {i for xs in pts.values() for i in xs[1]}
    unknown = sorted(set(agents or ()) - set(names))
    if unknown:  # drawn as empty rows without a word
        raise KeyError(f"no agent {', '.join(map(repr, unknown[:5]))} in this log "
                       f"(e.g. {', '.join(names[:4])})")
    rows = list(agents) if agents is not None else sorted(
        (names[i] for i in seen), key=lambda a: ("->" in a, a.startswith("src:"), a))
    row_of = {a: r for r, a in enumerate(rows)}
    fig, ax = _axes(ax, (9, 1.2 + 0.22 * len(rows)))
    for k, (ts, who) in sorted(pts.items()):
        off = {0: -0.28, 1: 0.28, 2: 0.0}[k]  # forward below, delta above, control centred
        keep = [(t, row_of[names[w]] + off) for t, w in zip(ts, who, strict=True)
                if names[w] in row_of]
        if keep:
            tt, yy = zip(*keep, strict=True)
            ax.scatter(tt, yy, marker="|", s=22, linewidths=0.9,
                       color=KIND_COLOURS[KIND_NAMES[k]], label=KIND_NAMES[k])
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=7)
    ax.set_ylim(-0.5, len(rows) - 0.5)
    ax.set_xlabel("time (arrival)" if by == "dst" else "time (sent)")
    ax.set_title(f"messages {'received' if by == 'dst' else 'sent'} per agent", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    return fig


def latency_histogram(log: Any, ax: Any = None, bins: int = 40,
                      until: float | None = None) -> Any:
    """Histogram of link delays (arrival − sending time), one per message kind.

    Parameters
    ----------
    log:
        An event log's path or an opened log.
    ax:
        A matplotlib ``Axes`` to draw into (default: a new figure).
    bins:
        Number of bins.
    until:
        Only messages that arrive up to this time.

    Returns
    -------
    The matplotlib ``Figure``.
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}"[:200])  # 0: nothing
    delays: dict[int, list[float]] = {0: [], 1: [], 2: []}
    for rec in _records(log, until):
        delays[rec[1]].append((rec[0] - rec[4]) / QUANTA)
    fig, ax = _axes(ax, (6, 3.5))
    every = [d for v in delays.values() for d in v]
    if every:
        lo, hi = min(every), max(every)
        edges = np.linspace(lo - 0.5, hi + 0.5, bins + 1) if lo == hi else \
            np.linspace(lo, hi, bins + 1)
        for k, v in delays.items():
            if v:
                ax.hist(v, bins=edges, alpha=0.6, color=KIND_COLOURS[KIND_NAMES[k]],
                        label=f"{KIND_NAMES[k]} ({len(v):,})")
        ax.legend(fontsize=8)
    ax.set_xlabel("link delay (arrival − sent)")
    ax.set_ylabel("messages")
    ax.set_title("latency per link kind", fontsize=10)
    return fig


def traces(result: Any, agent: str | None = None, variable: str | None = None,
           ax: Any = None) -> Any:
    """Recorded state against time, one line per recorded entry.

    Parameters
    ----------
    result:
        A :class:`~asyncnet.runner.Result` with recordings (``run(...,
        record=...)``).
    agent:
        Only this agent (default: every recorded agent).
    variable:
        Only this variable (default: every recorded variable).
    ax:
        A matplotlib ``Axes`` to draw into (default: a new figure).

    Returns
    -------
    The matplotlib ``Figure``.
    """
    if not result.recorded:
        raise ValueError("the result has no recordings: run(..., record={agent: [var]})")
    if agent is not None and agent not in result.recorded:
        raise KeyError(f"agent {agent!r} was not recorded "
                       f"(recorded: {', '.join(result.recorded)})")
    have = sorted({v for a, d in result.recorded.items() if agent in (None, a) for v in d})
    if variable is not None and variable not in have:  # it drew an empty plot
        raise KeyError(f"variable {variable!r} was not recorded (recorded: {', '.join(have)})")
    fig, ax = _axes(ax, (7, 3.5))
    t = np.asarray(result.times)
    for a, d in result.recorded.items():
        if agent is not None and a != agent:
            continue
        for var, arr in d.items():
            if variable is not None and var != variable:
                continue
            flat = np.asarray(arr).reshape(len(arr), -1)
            for j in range(flat.shape[1]):
                lab = f"{a}.{var}" + (f"[{j}]" if flat.shape[1] > 1 else "")
                ax.plot(t[:len(flat)], flat[:, j], lw=1, label=lab)
    ax.set_xlabel("time")
    ax.set_title("recorded state", fontsize=10)
    if len(ax.lines) <= 12:
        ax.legend(fontsize=7)
    return fig


def weight_evolution(result: Any, synapse: str, variables: tuple[str, ...] = ("weight", "grad"),
                     ax: Any = None) -> Any:
    """A synapse's recorded weights (and gradient estimates) against time.

    Parameters
    ----------
    result:
        A :class:`~asyncnet.runner.Result` that recorded ``synapse``.
    synapse:
        The synapse agent (``"l1->l2"``).
    variables:
        The recorded variables to draw, one panel each (default ``weight``
        and ``grad``; those not recorded are skipped).
    ax:
        One ``Axes`` per drawn variable (default: a new figure).

    Returns
    -------
    The matplotlib ``Figure``.
    """
    rec = result.recorded.get(synapse)
    if rec is None:
        raise KeyError(f"synapse {synapse!r} was not recorded "
                       f"(recorded: {', '.join(result.recorded) or 'nothing'})")
    variables = [variables] if isinstance(variables, str) else variables  # not 6 letters
    present = [v for v in variables if v in rec]
    if not present:
        raise KeyError(f"{synapse}: none of {', '.join(variables)} was recorded "
                       f"(recorded: {', '.join(rec)})")
    fig, axes = _axes(ax, (5 * len(present), 3.5), ncols=len(present), squeeze=False)
    if np.size(axes) != len(present):  # it failed in zip(): "argument 2 is longer"
        raise ValueError(f"ax: {np.size(axes)} axes for {len(present)} variables {present}")
    axes = np.ravel(axes)
    t = np.asarray(result.times)
    for a, var in zip(axes, present, strict=True):
        flat = np.asarray(rec[var]).reshape(len(rec[var]), -1)
        a.plot(t[:len(flat)], flat, lw=0.8)
        a.set_xlabel("time")
        a.set_title(f"{synapse}: {var} ({flat.shape[1]} entries)", fontsize=10)
    return fig


@command("plot", "draw figures from an event log (needs the 'plot' extra)")
def cmd_plot(args) -> int:
    """``asyncnet plot LOG --waves -o FILE.png``."""
    if args.waves == args.tension:
        print("asyncnet: error: plot needs exactly one of --waves or --tension",
              file=sys.stderr)
        return 2
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(f"asyncnet: error: {args.log}: plotting needs matplotlib: "
              f"{extra_hint('plot')}", file=sys.stderr)
        return 2
    out = args.output or os.path.splitext(args.log)[0] + (".tension.png" if args.tension
                                                           else ".waves.png")
    check_apart({"figure": out}, {"log": args.log})
    check_figure_path(out)
    if args.tension:
        tr = tension_trace(args.log)
        draw_tension(tr, out, args.until)
        print(f"wrote {out} ({len(tr['rows'])} neurons, re-run from the log's scenario)")
        return 0
    labels = wave_labels(args.log, args.until)
    draw_waves(labels, out, args.until)
    upto = ""
    if args.until is not None:  # what was drawn, and a --until past the log's end
        upto = (f" up to t={args.until:g}" if not labels["whole"] else
                f"; the log ends at t={labels['t_end']:g}, before --until {args.until:g}")
    print(f"wrote {out} ({labels['records']:,} records, {len(labels['populations'])} "
          f"populations, {len(labels['frames'])} frame changes{upto})")
    return 0


cmd_plot.configure = lambda p: (
    p.add_argument("log", help="an event log"),
    p.add_argument("--waves", action="store_true", help="the space-time picture of the waves"),
    p.add_argument("--tension", action="store_true",
                   help="activity (u+v)/2 and credit (u-v)/2 of every neuron (least-action "
                        "and continuous rules; re-runs the log's scenario)"),
    p.add_argument("-o", "--output", metavar="FILE.png",
                   help="default: LOG.waves.png (--waves), LOG.tension.png (--tension)"),
    p.add_argument("--until", type=positive_time, help="draw only up to this time"),
)
