"""Seconds per GradEP training step: the engine against the numpy face, side by side.

Both train the same model on the same OT-paired batches (made beforehand, so
the OT is not timed); steps alternate engine, face, engine, face, ... so that
both see the same machine load. One process, BLAS threads set explicitly.

    python tools/bench_gradep.py --reps 5 --threads 1 [--batch 1797] [--relax 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from threadpoolctl import threadpool_limits

from asyncnet.schemes.gradep import train as T
from asyncnet.schemes.gradep.agents import GradEP
from asyncnet.schemes.gradep.data import make_batch


def main() -> None:
    """Run the interleaved benchmark and print a table (and JSON with --json)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1797)
    ap.add_argument("--relax", type=int, default=300, help="steps per phase")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    threadpool_limits(a.threads)
    batches = [make_batch(0, s, a.batch, dtype=a.dtype) for s in range(a.reps + 1)]
    rule = dict(clip_mode="local", dtype=a.dtype, free_steps=a.relax, nudge_steps=a.relax)
    runs = {"engine": T.make_run("engine", GradEP(**rule), 0, a.batch, a.reps + 1,
                                 data=lambda s: batches[s]),
            "face": T.make_run("face", GradEP(**rule, backend="face"), 0, a.batch, a.reps + 1,
                               data=lambda s: batches[s])}
    times: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for k in range(1, a.reps + 1):
        for name, run in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            run.run_to(k)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    # wall time is what a run takes; CPU time is less disturbed by other load
    res = {n: {"median": statistics.median(v), "min": min(v), "max": max(v), "all": v,
               "cpu_median": statistics.median(cpu[n]), "cpu_min": min(cpu[n]),
               "cpu_max": max(cpu[n])} for n, v in times.items()}
    res["ratio_of_medians"] = res["engine"]["median"] / res["face"]["median"]
    res["cpu_ratio_of_medians"] = res["engine"]["cpu_median"] / res["face"]["cpu_median"]
    res["setup"] = {"threads": a.threads, "batch": a.batch, "relax": a.relax,
                    "dtype": a.dtype, "reps": a.reps, "processes": 1}
    print(f"GradEP training step, batch {a.batch}, 3 x {a.relax} relaxation steps, "
          f"{a.dtype}, {a.threads} BLAS thread(s), interleaved x {a.reps}")
    for n in ("engine", "face"):
        r = res[n]
        print(f"  {n:6s}  wall median {r['median']:.3f} s  (min {r['min']:.3f}, max "
              f"{r['max']:.3f})   CPU median {r['cpu_median']:.3f} s  (min {r['cpu_min']:.3f}, "
              f"max {r['cpu_max']:.3f})")
    print(f"  engine / face (medians): wall {res['ratio_of_medians']:.3f}, "
          f"CPU {res['cpu_ratio_of_medians']:.3f}")
    if a.json:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
