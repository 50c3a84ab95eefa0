"""How a partition shares each depth of a network: METIS alone against METIS with
every depth spread evenly (``asyncnet.cluster.depth``).

Activity moves through a network in waves, one depth (hops from the inputs)
at a time, and a window of a distributed run lasts as long as its busier
worker: a partition that gives one worker most of a layer makes that worker
the busier one whenever the layer is busy. For the per-neuron 60-120-120-60
net of ``tools/bench_cluster.py`` this draws, at 2 and 4 workers, each
worker's share of every depth's load, and prints the table beside it.

    PYTHONPATH=. python tools/partition_depths.py [--out docs/figures/partition_depths.png]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

from asyncnet.cluster import partition as P
from asyncnet.cluster.depth import depths
from asyncnet.scenario import load
from asyncnet.simulation import build_engine

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_cluster import write_scenario  # noqa: E402  (a sibling tool)


def shares(links, part, starts) -> tuple[list[int], np.ndarray]:
    """Depths and each part's share of each depth's load (parts x depths)."""
    depth = depths(links, starts)
    ds = sorted(set(depth.values()))
    load = np.zeros((len(part.parts), len(ds)))
    for a, k in part.owner.items():
        load[k, ds.index(depth[a])] += P.load_of(len(links[a]))
    return ds, load / load.sum(axis=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="60,120,120,60")
    ap.add_argument("--out", default="docs/figures/partition_depths.png")
    a = ap.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sizes = [int(s) for s in a.sizes.split(",")]
    # the network and data sources of tools/bench_cluster.py's scenario
    with tempfile.TemporaryDirectory() as tmp:
        sc = load(write_scenario(sizes, 4.0, tmp))
    eng, net, _ = build_engine(sc, local=[])
    links, starts = eng.links, net.inputs()
    alone = P.even_depths
    fig, axes = plt.subplots(2, 2, figsize=(10, 6), sharey=True)
    for row, n in enumerate((2, 4)):
        for col, (title, spread) in enumerate((("METIS alone", False),
                                               ("METIS, every depth spread evenly", True))):
            P.even_depths = alone if spread else (lambda chunks, *_: chunks)
            try:
                part = P.partition(links, n, "metis", starts=starts)
            finally:
                P.even_depths = alone
            ds, sh = shares(links, part, starts)
            ax = axes[row, col]
            bottom = np.zeros(len(ds))
            for k in range(n):
                ax.bar(ds, sh[k], bottom=bottom, label=f"worker {k}")
                bottom += sh[k]
            ax.axhline(1 / n, color="k", lw=0.8, ls="--")
            ax.set_title(f"{title}, {n} workers (cut {part.cut_fraction:.3f})", fontsize=10)
            ax.set_xticks(ds)
            if row == 1:
                ax.set_xlabel("depth (links from the inputs)")
            if col == 0:
                ax.set_ylabel("share of the depth's load")
            print(f"{title}, {n} workers, cut {part.cut_fraction:.3f}: largest share per depth "
                  + " ".join(f"{d}:{sh[:, i].max():.2f}" for i, d in enumerate(ds)))
    axes[0, 0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"per-neuron {'-'.join(map(str, sizes))} net: each worker's share of "
                 "every depth (dashed: an even share)", fontsize=11)
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
