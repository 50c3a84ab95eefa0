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
import warnings

import numpy as np

from .commands import command
from .logfile import open_log
from .logtools import engine_of, scenario_of
from .messages import QUANTA
from .outputs import extra_hint
from .waves import UNINFORMED, depths, wave_labels


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


def draw_waves(labels: dict, out: str, until: float | None = None) -> None:
    """Draw the space-time picture of ``wave_labels`` to ``out`` (a PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    t_end = labels["t_end"] if until is None else min(until, labels["t_end"])
    pops = labels["populations"]
    shades = {"forward": ("#9ecae1", "#2171b5"), "credit": ("#fcae91", "#cb181d")}
    fig_h = 1.6 + 0.3 * len(pops)
    fig, ax = plt.subplots(figsize=(9, fig_h))
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
    ax.set_xlim(0, t_end)
    ax.set_ylim(0, len(pops))
    ax.set_yticks([r + 0.5 for r in range(len(pops))])
    ax.set_yticklabels([f"{n} (depth {d})" for n, d in pops], fontsize=8)
    ax.set_xlabel("time")
    ax.set_title(f"{labels['scenario']}: forward (blue) and credit (red) waves; "
                 f"shade alternates with the frame", fontsize=10)
    fig.legend(handles=[Patch(color=shades["forward"][1], label="forward: input frame k"),
                        Patch(color=shades["credit"][1], label="delta: credit for frame k"),
                        Patch(color="black", label="same frame (one frame's update)"),
                        Patch(facecolor="white", edgecolor="0.5", label="not yet informed")],
               loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.9 / fig_h, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def tension_trace(path: str) -> dict:
    """Activity ``(u+v)/2`` and credit ``(u-v)/2`` of every neuron over time.

    Neuron states are not in the log (only messages are), so the run is
    re-executed from the scenario the log's header carries (runs are
    deterministic: ``asyncnet replay --verify`` checks the same thing message
    by message), recording each neuron's tension pair every time it wakes.
    Returns ``{"rows": [(label, depth)], "t": [...], "activity": [[...]],
    "credit": [[...]], "scenario": name}`` (one list per row, one value per time).
    """
    from .scenario import ScenarioError
    log = open_log(path)
    sc = scenario_of(log)
    eng, net, _ = engine_of(log, sc)
    probe = next(iter(eng.agents[n].model for n in net.populations))
    if "credit" not in probe.state():
        raise ScenarioError(f"{path}: rule {sc.rule_name!r} has no tension view "
                            f"(the leastaction and continuous rules have)")
    depth = depths(sc.graph, set(net.inputs()))
    rows = sorted(net.populations, key=lambda n: (depth[n], n))
    steps: dict[str, list] = {n: [] for n in rows}

    def monitor(agent, t: int) -> None:
        if agent.name in steps:
            st = agent.model.state()
            steps[agent.name].append((t / QUANTA, np.array(st["activity"], dtype=float),
                                      np.array(st["credit"], dtype=float)))

    eng.monitors.append(monitor)
    eng.run(sc.duration)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        log.scan()  # checks the log and reads its footer (the count)
    if log.footer is not None and log.footer.get("count") != eng.messages() \
            and log.complete:
        warnings.warn(f"{path}: the re-run delivered {eng.messages()} messages, the log "
                      f"{log.footer.get('count')}: the picture may not match the log",
                      stacklevel=2)
    grid = np.arange(0.0, sc.duration, max(sc.duration / 800, 1 / QUANTA * 2))
    out_rows, act, cred = [], [], []
    for n in rows:
        ts = np.array([s[0] for s in steps[n]])
        for k in range(net.populations[n].size):
            a = np.array([s[1][k] for s in steps[n]])
            c = np.array([s[2][k] for s in steps[n]])
            idx = np.searchsorted(ts, grid, side="right") - 1
            ok = idx >= 0
            act.append(np.where(ok, a[np.maximum(idx, 0)], np.nan))
            cred.append(np.where(ok, c[np.maximum(idx, 0)], np.nan))
            out_rows.append((f"{n}[{k}]" if net.populations[n].size > 1 else n, depth[n]))
    return {"rows": out_rows, "t": grid, "activity": np.array(act), "credit": np.array(cred),
            "scenario": sc.name}


def draw_tension(tr: dict, out: str, until: float | None = None) -> None:
    """Two heat maps, neurons (by depth) against time: activity and credit."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = tr["t"]
    keep = t <= (until if until is not None else t[-1])
    n = len(tr["rows"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 1.4 + 0.22 * n), sharey=True)
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
    fig.suptitle(f"{tr['scenario']}: the tension view u = x + λ, v = x - λ", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


@command("plot", "draw figures from an event log (needs the 'plot' extra)")
def cmd_plot(args) -> int:
    """``asyncnet plot LOG --waves -o FILE.png``."""
    if args.waves == args.tension:
        print("asyncnet: error: plot needs one of --waves or --tension", file=sys.stderr)
        return 2
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(f"asyncnet: error: {args.log}: plotting needs matplotlib: "
              f"{extra_hint('plot')}", file=sys.stderr)
        return 2
    if args.tension:
        tr = tension_trace(args.log)
        out = args.output or os.path.splitext(args.log)[0] + ".tension.png"
        draw_tension(tr, out, args.until)
        print(f"wrote {out} ({len(tr['rows'])} neurons, re-run from the log's scenario)")
        return 0
    labels = wave_labels(args.log)
    out = args.output or os.path.splitext(args.log)[0] + ".waves.png"
    draw_waves(labels, out, args.until)
    print(f"wrote {out} ({labels['records']:,} records, {len(labels['populations'])} "
          f"populations, {len(labels['frames'])} frame changes)")
    return 0


cmd_plot.configure = lambda p: (
    p.add_argument("log", help="an event log"),
    p.add_argument("--waves", action="store_true", help="the space-time picture of the waves"),
    p.add_argument("--tension", action="store_true",
                   help="activity (u+v)/2 and credit (u-v)/2 of every neuron (least-action "
                        "and continuous rules; re-runs the log's scenario)"),
    p.add_argument("-o", "--output", metavar="FILE.png", help="default: LOG.waves.png"),
    p.add_argument("--until", type=float, help="draw only up to this time"),
)
