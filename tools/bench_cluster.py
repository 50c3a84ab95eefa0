"""The cluster on a large per-neuron network: partition, coordinator cost, speed-up, model.

A layered tanh network written with one agent per neuron and per synapse
(default 60-120-120-60, the L net of ``tools/bench_engine.py``: 360 neuron
agents, 28,800 synapse agents; data on one input and one output neuron)
learns by backprop diffusion on a piecewise stream. The script prints:

1. **Partition table** at 2, 4, 16, 64 parts, ``layers`` (the partitioner
   before METIS), ``metis`` (the default: METIS, then every depth spread
   evenly) and ``metis-cut`` (METIS alone): balance (largest part / mean, by load and by
   messages delivered) and cut (share of links, and of messages, that cross
   partitions; messages counted per link in a short in-process run).
2. **Coordinator CPU per delivered message** (2 workers, log on): the
   coordinator process's CPU time at two durations, differenced, over the
   difference in messages — the marginal cost, start-up excluded. With
   ``--before DIR`` (a checkout of the code before, e.g. a ``git worktree``
   of an older commit) the same is measured there, runs interleaved.
3. **2 workers ÷ in-process** (log on): CPU-time based, because the box is
   shared: in-process CPU time over the windows' critical path (the sum over
   windows of the busiest worker's CPU time, what the run takes with a free
   core per worker); the wall-time ratio is printed beside it, and the
   work-based ratio (2 × in-process CPU ÷ both workers' window CPU summed:
   the same without the per-window maximum, which a noisy box inflates
   even for equal work). Beside it,
   two in-process runs started at once, each one's CPU time ÷ one run's
   alone: what sharing the box's memory system costs a process, and so
   the most two processes could gain on this box with nothing else lost.
4. **A model of the speed-up at 16 and 64 workers** from the measured
   per-message costs (engine and log in a worker, a worker's own cost a
   message measured with one worker and no cut, crossing the cut, the
   coordinator's merge; following the latency trace is a fixed cost, since
   it lasts a bounded number of input changes), the per-window costs (a window's round trip, and
   the coordinator's CPU per worker per window, from a small net run with
   thousands of windows), and the partition's cut and balance at that many
   parts — and what limits it.

Ratios are medians over ``--reps`` interleaved repetitions, with min–max.
Time-dependent, so a benchmark, not a test.

    PYTHONPATH=. python tools/bench_cluster.py [--sizes 60,120,120,60] [--duration 4]
        [--reps 2] [--before /path/to/old/checkout]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def scenario_text(sizes: list[int], duration: float) -> str:
    """A per-neuron scenario: every neuron a node, every synapse an edge."""
    from asyncnet.network import Network, expand_to_neurons, layered
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


def write_scenario(sizes: list[int], duration: float, tmp: str) -> str:
    path = os.path.join(tmp, f"bench_{duration:g}.toml")
    with open(path, "w") as f:
        f.write(scenario_text(sizes, duration))
    return path


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# -- one measured run, in a fresh process (so CPU times are its own) --------------
def child(spec: dict) -> dict:
    """Run one configuration; return its times (called with ``--child``)."""
    from asyncnet.scenario import load
    sc = load(spec["path"])
    log = spec.get("log")
    c0, k0, t0 = cpu_self(), cpu_children(), time.perf_counter()
    if spec["workers"] == 0:
        # what simulate() does while the run goes (engine, traffic, log), timed
        # from the first event to the footer, as the workers' windows are
        from asyncnet import simulation
        from asyncnet.eventlog import EventLogWriter
        from asyncnet.simulation import build_engine, log_header, new_traffic
        eng, net, _ = build_engine(sc)
        # the compiled packing loop loaded outside the clock, as the workers of a
        # large partition (10,000 agents: this net's at 2 workers) load it when
        # they start (and a run past 1 M records in-process)
        from asyncnet import logsends
        logsends.warm(logsends.kernel(logsends.MIN_RECORDS))
        writer = EventLogWriter(log, log_header(sc, eng.names)) if log else None
        if writer:
            eng.record(writer.record)
        # the run summary's counter as simulate() feeds it: an instant at a time (it
        # was fed batch by batch here until 2 Dec, evening: ≈ 0.1 CPU-s more), after
        # the writer (since 4 Dec, fifth session: counted from the log's sends)
        traffic = new_traffic(eng.links, net)
        if hasattr(simulation, "feed_traffic"):  # told the engine's off-route messages
            simulation.feed_traffic(eng, traffic)
        else:  # a checkout from before 4 December, fourth session (--before)
            eng.instant_sinks.append(traffic.instant)
        c0, t0 = cpu_self(), time.perf_counter()
        eng.run(sc.duration)
        if writer:
            writer.close()
        return {"cpu": cpu_self() - c0, "wall": time.perf_counter() - t0,
                "messages": eng.messages()}
    from asyncnet.cluster import simulate_distributed
    # the workers load the compiled packing loop before they join, outside the windows,
    # as the in-process run above loads it outside the clock: the same loop on both
    # sides (a run decides by its records' projection; trees before 5 December, night
    # session, by partition size)
    os.environ["ASYNCNET_WARM_LOG"] = "1"
    s = simulate_distributed(sc, workers=spec["workers"], log_path=log)
    c = s["cluster"]
    # (workers_cpu: the workers are this process's children, reaped at the end)
    return {"coord_cpu": cpu_self() - c0, "workers_cpu": cpu_children() - k0,
            "wall": c["seconds"]["windows"], "messages": s["messages"]["total"],
            "windows": c["windows"], "critical_cpu": c["seconds"].get("critical_cpu"),
            "loop_cpu": c["seconds"].get("coordinator_cpu"),
            "trace_cpu": c["seconds"].get("trace_cpu"),
            "lookahead": c.get("lookahead"), "duration": sc.duration,
            "worker_cpu": [w.get("cpu_seconds") for w in c["workers"]],
            "cut_sent": sum(w["cut_sent"] for w in c["workers"]),
            "delivered": [w["delivered"] for w in c["workers"]]}


def measure(spec: dict, root: str = HERE) -> dict:
    env = {**os.environ, "PYTHONPATH": root}
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
                       capture_output=True, text=True, env=env, cwd=root)
    if r.returncode != 0:
        raise SystemExit(f"bench_cluster: a run failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def measure_pair(spec: dict, root: str = HERE) -> list[dict]:
    """Two runs of ``spec`` at once, each in its own process (each its own log)."""
    env = {**os.environ, "PYTHONPATH": root}
    procs = []
    for k in range(2):
        one = {**spec, "log": spec["log"] + f".{k}"} if spec.get("log") else spec
        procs.append(subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--child", json.dumps(one)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=root))
    out = []
    for p in procs:
        so, se = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"bench_cluster: a run failed:\n{se[-3000:]}")
        out.append(json.loads(so.strip().splitlines()[-1]))
    return out


def med(xs: list[float]) -> str:
    return f"{statistics.median(xs):.3g} ({min(xs):.3g}–{max(xs):.3g})"


# -- 1. partition table --------------------------------------------------------------
def link_rates(path: str, duration: float) -> tuple[dict, Counter, Counter]:
    """Messages per link (unordered pair) and per receiving agent, in-process."""
    from asyncnet.scenario import load
    from asyncnet.simulation import build_engine
    sc = load(path)
    eng, net, _ = build_engine(sc)
    per_link: Counter = Counter()
    per_dst: Counter = Counter()

    def sink(batch):
        for m in batch:
            per_link[(m.src, m.dst) if m.src < m.dst else (m.dst, m.src)] += 1
        per_dst[batch[0].dst] += len(batch)

    eng.sinks.append(sink)
    eng.run(duration)
    return eng.links, per_link, per_dst


def partition_table(links, per_link: Counter, per_dst: Counter, parts: list[int],
                    inputs: list[str]) -> dict:
    from asyncnet.cluster.partition import partition
    total = sum(per_link.values())
    out = {}
    print("\n## Partition (per-neuron net; messages from a short in-process run)\n")
    print("| parts | method | balance (load) | balance (messages) | balance (agents) "
          "| links cut | messages cut | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for n in parts:
        for method in ("layers", "metis", "metis-cut"):
            t0 = time.perf_counter()
            p = partition(links, n, method, starts=inputs)
            dt = time.perf_counter() - t0
            msgs = [0] * n
            for a, c in per_dst.items():
                msgs[p.owner[a]] += c
            agents = [len(x) for x in p.parts]
            crossing = sum(c for (a, b), c in per_link.items() if p.owner[a] != p.owner[b])
            row = {"balance_load": p.balance, "balance_msgs": max(msgs) * n / sum(msgs),
                   "balance_agents": max(agents) * n / sum(agents),
                   "cut_links": p.cut_fraction, "cut_msgs": crossing / total}
            out[(n, method)] = row
            print(f"| {n} | {method} | {row['balance_load']:.3f} | {row['balance_msgs']:.3f} "
                  f"| {row['balance_agents']:.3f} | {row['cut_links']:.3f} "
                  f"| {row['cut_msgs']:.3f} | {dt:.1f} |")
    return out


# -- main ----------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="60,120,120,60")
    ap.add_argument("--duration", type=float, default=4.0,
                    help="the longer of the two durations (the shorter is half)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--parts", default="2,4,16,64")
    ap.add_argument("--rate-duration", type=float, default=1.0,
                    help="time units of the in-process run that counts messages per link")
    ap.add_argument("--before", metavar="DIR", help="a checkout of the code before")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(json.loads(a.child))))
        return
    sizes = [int(x) for x in a.sizes.split(",")]
    parts = [int(x) for x in a.parts.split(",")]
    tmp = tempfile.mkdtemp()
    long_p = write_scenario(sizes, a.duration, tmp)
    short_p = write_scenario(sizes, a.duration / 2, tmp)
    print(f"per-neuron {sizes}, diffusion; durations {a.duration / 2:g} and {a.duration:g}; "
          f"{a.reps} repetitions; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}")

    sys.path.insert(0, HERE)
    from asyncnet.scenario import load
    net = load(long_p).build_network()
    links, per_link, per_dst = link_rates(long_p, a.rate_duration)
    table = partition_table(links, per_link, per_dst, parts, net.inputs())

    # 2. and 3.: interleaved runs: in-process, 2 workers (after), 2 workers (before)
    impls = [("after", HERE)] + ([("before", os.path.abspath(a.before))] if a.before else [])
    runs: dict = {}
    for rep in range(a.reps):
        for dur, path in ((a.duration / 2, short_p), (a.duration, long_p)):
            log = os.path.join(tmp, "x.log")
            runs.setdefault(("inproc", dur), []).append(
                measure({"path": path, "workers": 0, "log": log}))
            for name, root in impls:
                runs.setdefault((name, dur), []).append(
                    measure({"path": path, "workers": 2, "log": log}, root))
        # one worker: the whole run distributed with no cut, what a worker costs
        # beyond the work itself (its window protocol, trace rows, log segments)
        runs.setdefault("one", []).append(
            measure({"path": long_p, "workers": 1, "log": os.path.join(tmp, "x.log")}))
        # two in-process runs at once: what sharing the box's memory system (its
        # caches past L2, its memory bandwidth, a host's other guests) costs each
        runs.setdefault("pair", []).append(
            measure_pair({"path": long_p, "workers": 0, "log": os.path.join(tmp, "p.log")}))
        runs.setdefault("tiny", []).append(
            measure({"path": write_scenario([2, 3, 2], 250.0, tmp), "workers": 2}))
        print(f"repetition {rep + 1} done (load {os.getloadavg()[0]:.2f})", flush=True)

    print("\n## Coordinator CPU per delivered message (2 workers, log on)\n")
    print("marginal: the coordinator process's CPU time at two durations, differenced, "
          "over the difference in messages (start-up and the end's probes cancel); "
          "window loop: its CPU time in the window loop, probes apart; of which the "
          "trace: following the latency trace, a bounded cost (its input changes), not a "
          "message's (where the code reports it)\n")
    print("| code | marginal µs/message | window loop µs/message | of which the trace "
          "| messages (long run) |")
    print("|---|---|---|---|---|")
    per_msg = {}
    for name, _ in impls:
        xs = []
        for lo, hi in zip(runs[(name, a.duration / 2)], runs[(name, a.duration)], strict=True):
            xs.append(1e6 * (hi["coord_cpu"] - lo["coord_cpu"]) / (hi["messages"]
                                                                   - lo["messages"]))
        loop = [1e6 * r["loop_cpu"] / r["messages"] for r in runs[(name, a.duration)]
                if r.get("loop_cpu") is not None]
        trace = [1e6 * r["trace_cpu"] / r["messages"] for r in runs[(name, a.duration)]
                 if r.get("trace_cpu") is not None]
        per_msg[name] = loop or xs
        print(f"| {name} | {med(xs)} | {med(loop) if loop else 'n/a'} "
              f"| {med(trace) if trace else 'n/a'} "
              f"| {runs[(name, a.duration)][0]['messages']:,} |")

    print("\n## 2 workers ÷ in-process (log on, long run)\n")
    ip = runs[("inproc", a.duration)]
    af = runs[("after", a.duration)]
    cpu_ratio = [i["cpu"] / w["critical_cpu"] for i, w in zip(ip, af, strict=True)]
    wall_ratio = [i["wall"] / w["wall"] for i, w in zip(ip, af, strict=True)]
    print(f"CPU-time based (in-process CPU ÷ windows' critical-path CPU): {med(cpu_ratio)}")
    print(f"wall-time (shared box, three processes on two cores): {med(wall_ratio)}")
    # the critical path takes each window's busier worker: where a window's CPU
    # time is noisy, the larger of two noisy values is above their mean even for
    # equal work. 2 × in-process ÷ both workers' windows is the same ratio with
    # no per-window maximum: what distributing costs in work alone
    work_ratio = [2 * i["cpu"] / sum(w["worker_cpu"]) for i, w in zip(ip, af, strict=True)]
    print(f"work-based (2 × in-process CPU ÷ the workers' windows' CPU summed; no "
          f"per-window maximum): {med(work_ratio)}; critical path ÷ the busier worker's "
          f"CPU: {med([w['critical_cpu'] / max(w['worker_cpu']) for w in af])}")
    print(f"in-process CPU s {med([i['cpu'] for i in ip])}; critical path CPU s "
          f"{med([w['critical_cpu'] for w in af])}; workers' CPU s "
          f"{[round(x, 2) for x in af[0]['worker_cpu']]}; windows {af[0]['windows']}")
    one = [w["worker_cpu"][0] / i["cpu"] for i, w in zip(ip, runs["one"], strict=True)]
    print(f"one worker (the whole net, no cut) ÷ in-process, CPU: {med(one)}: what a "
          f"worker costs beyond the work (window protocol, trace rows, log segments)")
    pair = [statistics.mean(r["cpu"] for r in two) / i["cpu"]
            for two, i in zip(runs["pair"], ip, strict=True)]
    print(f"two in-process runs at once, each one's CPU ÷ one run alone: {med(pair)}; "
          f"if two workers were slowed as much, 2 workers ÷ in-process could reach at most "
          f"{2 / statistics.median(pair):.2f} here with no cost of distributing at all (a "
          f"worker holds half the net, each run of the pair all of it: a rough bound)")
    if a.before:  # the same figure for the code before, its runs interleaved with these
        bf = runs[("before", a.duration)]
        print(f"before: CPU-time based "
              f"{med([i['cpu'] / w['critical_cpu'] for i, w in zip(ip, bf, strict=True)])}; "
              f"work-based "
              f"{med([2 * i['cpu'] / sum(w['worker_cpu']) for i, w in zip(ip, bf, strict=True)])}; "
              f"critical path CPU s {med([w['critical_cpu'] for w in bf])}; workers' CPU s "
              f"{[round(x, 2) for x in bf[0]['worker_cpu']]}; windows {bf[0]['windows']}")
    model(a, ip, af, runs, per_msg, table, parts)


def model(a, ip, af, runs, per_msg, table, parts) -> None:
    """Section 4: the speed-up at P workers from the measured costs."""
    m = statistics.median([r["messages"] for r in ip])
    c_eng = statistics.median([r["cpu"] / r["messages"] for r in ip])  # engine + log
    # a worker's own cost a message (one worker, no cut, beyond the in-process run),
    # then what crossing costs: what two workers spend beyond the in-process run
    # and their own cost, per crossing message (until 4 December, fourth session,
    # the worker's own cost was counted as crossing's)
    c_w = max(0.0, statistics.median([(w["worker_cpu"][0] - i["cpu"]) / i["messages"]
                                      for i, w in zip(ip, runs["one"], strict=True)]))
    extra = statistics.median([(sum(w["worker_cpu"]) - i["cpu"] - c_w * i["messages"])
                               / max(1, w["cut_sent"]) for i, w in zip(ip, af, strict=True)])
    c_x = max(0.0, extra)
    c_merge = None  # set below, once the per-window cost is known
    # per-window costs, from a small net with thousands of windows: the round
    # trip of a window (wall, on this loaded box: an upper bound) and the
    # coordinator's CPU per worker per window (it grows with the workers)
    tiny = runs["tiny"]
    lat = statistics.median([r["wall"] / r["windows"] for r in tiny])
    c_cw = statistics.median([r["loop_cpu"] / r["windows"] / 2 for r in tiny])
    windows = statistics.median([r["windows"] for r in af])
    # the coordinator's per-message cost: its window loop less its per-window cost
    # and less following the latency trace, which lasts a bounded number of input
    # changes whatever the run's length (a fixed term of the model)
    trace = statistics.median([r.get("trace_cpu") or 0.0 for r in af])
    c_merge = statistics.median([max(0.0, r["loop_cpu"] - r["windows"] * 2 * c_cw
                                     - (r.get("trace_cpu") or 0.0)) / r["messages"]
                                 for r in af])
    # a long run has one window per lookahead, not the 50 or more of a short one
    per_unit = m / statistics.median([r["duration"] for r in af])
    look = af[0].get("lookahead")
    long_windows = m / per_unit / look if look else windows
    print("\n## Model of the speed-up at P workers (log on)\n")
    print(f"measured: engine+log {c_eng * 1e6:.2f} µs/message in-process; a worker's own "
          f"cost {c_w * 1e6:.2f} µs/message (one worker, no cut); crossing the cut "
          f"{c_x * 1e6:.2f} µs/crossing message (the 2-worker run's extra CPU beyond both); "
          f"coordinator merge {c_merge * 1e6:.3f} µs/message, following the latency trace "
          f"{trace:.2f} s in all; a window's round trip "
          f"{lat * 1e3:.2f} ms, coordinator {c_cw * 1e6:.0f} µs per worker per window; "
          f"{m:,.0f} messages in {windows:g} windows")
    print("T(P) = max(balance(P) * M/P * (c_eng + c_w + cut(P) * c_x) + windows * (round trip "
          "+ P * coordinator per worker), M * c_merge + trace); speed-up = M * c_eng / T(P)\n")
    for label, nw in (("this run", windows), ("a long run (one window per lookahead)",
                                              long_windows)):
        print(f"\n{label}: {nw:g} windows for {m:,.0f} messages\n")
        model_table(parts, table, m, nw, c_eng, c_w, c_x, c_merge, lat, c_cw, trace)


def model_table(parts, table, m, windows, c_eng, c_w, c_x, c_merge, lat, c_cw, trace) -> None:
    """One table of the model: speed-up at each P, and what limits it."""
    print("| P | balance (messages) | messages cut | worker s | merge s | windows s "
          "| speed-up | limited by |")
    print("|---|---|---|---|---|---|---|---|")
    for p in parts:
        row = table[(p, "metis")]
        work = row["balance_msgs"] * m / p * (c_eng + c_w + row["cut_msgs"] * c_x)
        sync = windows * (lat + p * c_cw)
        merge = m * c_merge + trace
        t = max(work + sync, merge)
        lim = ("the coordinator's merge" if merge >= work + sync else
               "windows (barrier latency)" if sync > work / 2 else
               "crossing messages" if row["cut_msgs"] * c_x > c_eng + c_w else
               "the engine itself")
        print(f"| {p} | {row['balance_msgs']:.3f} | {row['cut_msgs']:.3f} | {work:.2f} | "
              f"{merge:.2f} | {sync:.2f} | {m * c_eng / t:.1f} | {lim} |")


if __name__ == "__main__":
    main()
