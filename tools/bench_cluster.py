"""Distributed runs against the in-process engine on a large per-neuron network.

A layered tanh network written with one agent per neuron and per synapse
(default 60-120-120-60: 300 neurons, 28,800 synapse agents) learns by
backprop diffusion on a piecewise stream. The same scenario runs in-process,
then on 1 and 2 worker processes; the script checks the logs are identical
and prints wall time, messages per second and speed-up. Time-dependent, so a
benchmark, not a test; it reports what else was using the CPUs.

    python tools/bench_cluster.py [--sizes 60,120,120,60] [--duration 10] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile

from asyncnet.cluster import simulate_distributed
from asyncnet.network import Network, expand_to_neurons, layered
from asyncnet.scenario import load
from asyncnet.simulation import simulate


def scenario_text(sizes: list[int], duration: float) -> str:
    """A per-neuron scenario: every neuron a node, every synapse an edge."""
    g = expand_to_neurons(Network.from_graph(layered(sizes), seed=3))
    nodes = [f'{{name = "{n}", activation = "{a["activation"]}", role = "{a["role"]}"}}'
             for n, a in g.nodes(data=True)]
    edges = [f'{{pre = "{u}", post = "{v}"}}' for u, v in g.edges()]
    return "\n".join([
        "[scenario]", 'name = "bench_cluster"', "seed = 3", f"duration = {duration}",
        "[network]", "delay = 1.0",
        "nodes = [" + ",\n".join(nodes) + "]",
        "edges = [" + ",\n".join(edges) + "]",
        "[rule]", 'name = "diffusion"', "eta = 0.01",
        "[data]", 'kind = "piecewise"', "hold = 4", "patterns = 4",
        'input_node = "l0_0"', f'output_node = "l{len(sizes) - 1}_0"',
        "[analysis]", 'kind = "none"', ""])


def others() -> str:
    """Load average and the other processes using a CPU now (the box is shared)."""
    top = ["top", "-c", "-b", "-n", "2", "-d", "1", "-w", "250"]
    out = subprocess.run(top, capture_output=True, text=True).stdout.splitlines()
    # the second sample: CPU use over the last second (the first is since start-up)
    heads = [i for i, line in enumerate(out) if line.lstrip().startswith("PID")]
    head = heads[-1] if heads else None
    busy = []
    for line in out[head + 1:] if head is not None else []:
        f = line.split(None, 11)
        if len(f) == 12 and f[0] != str(os.getpid()) and float(f[8]) >= 5.0:
            busy.append(f"{f[11][:60]} {f[8]}%")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"load {load}; others: " + ("; ".join(busy) or "none above 5% CPU")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="60,120,120,60")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--no-log", action="store_true", help="no event log (Traffic only)")
    a = ap.parse_args()
    sizes = [int(x) for x in a.sizes.split(",")]
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "bench_cluster.toml")
    with open(path, "w") as f:
        f.write(scenario_text(sizes, a.duration))
    # a single input/output neuron gets the stream; the others run free
    sc = load(path)
    net = sc.build_network()
    print(f"network: {len(net.populations)} neurons, {len(net.projections):,} synapse "
          f"agents, duration {a.duration:g}, log {'off' if a.no_log else 'on'}, "
          f"{os.cpu_count()} CPUs")
    print(f"busy before: {others()}")
    rows = []
    ref_log = None if a.no_log else os.path.join(tmp, "ref.log")
    s = simulate(sc, log_path=ref_log)
    base = s["wall_seconds"]
    rows.append(("in-process", s["wall_seconds"], s["messages"]["total"], None, None))
    for n in (int(x) for x in a.workers.split(",")):
        log = None if a.no_log else os.path.join(tmp, f"w{n}.log")
        d = simulate_distributed(sc, workers=n, log_path=log)
        same = None
        if log:
            with open(ref_log, "rb") as f1, open(log, "rb") as f2:
                same = f1.read() == f2.read()
        c = d["cluster"]
        wait = max(w["wait_seconds"] for w in c["workers"])
        rows.append((f"{n} worker{'s' * (n > 1)}", c["seconds"]["windows"],
                     d["messages"]["total"], same,
                     (c["cut_links"], c["links"], c["lookahead"], c["windows"], wait,
                      c["seconds"]["start"])))
    print(f"busy after: {others()}")
    # wall: the simulation itself (in-process: engine.run; distributed: the
    # windows, from the first to the last); start-up is the extra cost of
    # starting worker processes and building their partitions
    print("| run | wall s | messages | messages/s | speed-up vs in-process | log identical "
          "| cut links | lookahead | windows | max barrier wait s | start-up s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, wall, msgs, same, c in rows:
        cut = ("", "", "", "", "") if c is None else (
            f"{c[0]:,}/{c[1]:,}", "none" if c[2] is None else f"{c[2]:g}", f"{c[3]:,}",
            f"{c[4]:.1f}", f"{c[5]:.1f}")
        print(f"| {name} | {wall:.1f} | {msgs:,} | {msgs / wall:,.0f} | {base / wall:.2f} | "
              f"{'' if same is None else ('yes' if same else 'NO')} | " + " | ".join(cut) + " |")


if __name__ == "__main__":
    main()
