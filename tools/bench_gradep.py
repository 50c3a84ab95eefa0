"""Seconds per GradEP training step: the engine against the numpy face, side by side.

Both train the same model on the same OT-paired batches (made beforehand, so
the OT is not timed); steps alternate engine, face, engine, face, ... so that
both see the same machine load. One process, BLAS threads set explicitly.

With numba installed, the populations' elementwise steps run as compiled
kernels (``asyncnet/schemes/gradep/kernels.py``); ``--kernel fast`` uses the
fused kernel in engine and face; ``--kernels`` adds a third run, the engine on
the plain numpy path (exact kernel, numba off), interleaved with the other two,
and compares the parameters at the end (bit for bit with ``--kernel exact``).

    python tools/bench_gradep.py --reps 5 --threads 1 [--batch 1797] [--relax 300]
                                 [--kernel exact|fast] [--kernels]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from asyncnet.schemes.gradep import kernels as K
from asyncnet.schemes.gradep import train as T
from asyncnet.schemes.gradep.agents import GradEP
from asyncnet.schemes.gradep.data import make_batch
from asyncnet.schemes.gradep.runner import keep_freed_memory


def main() -> None:
    """Run the interleaved benchmark and print a table (and JSON with --json)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1797)
    ap.add_argument("--relax", type=int, default=300, help="steps per phase")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--kernel", choices=("exact", "fast"), default="exact",
                    help="the populations' arithmetic (see kernels.py)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--kernels", action="store_true",
                    help="also time the engine without the compiled kernels")
    a = ap.parse_args()
    if a.kernels and not K.available():
        raise SystemExit("--kernels needs numba: pip install 'asyncnet[fast]'")
    compiled = K.numba
    threadpool_limits(a.threads)
    # as in the run's worker processes (both sides of every comparison alike)
    keep_freed_memory()
    batches = [make_batch(0, s, a.batch, dtype=a.dtype) for s in range(a.reps + 2)]
    rule = dict(clip_mode="local", dtype=a.dtype, free_steps=a.relax, nudge_steps=a.relax,
                kernel=a.kernel)
    runs = {"engine": T.make_run("engine", GradEP(**rule), 0, a.batch, a.reps + 2,
                                 data=lambda s: batches[s]),
            "face": T.make_run("face", GradEP(**rule, backend="face"), 0, a.batch, a.reps + 2,
                               data=lambda s: batches[s])}
    if a.kernels:
        runs["engine-numpy"] = T.make_run("engine", GradEP(**{**rule, "kernel": "exact"}), 0,
                                          a.batch, a.reps + 2,
                                          data=lambda s: batches[s])
    times: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for name, run in runs.items():  # warm up: the kernels compile on first use
        K.numba = None if name == "engine-numpy" else compiled
        run.run_to(1)
    for k in range(2, a.reps + 2):
        for name, run in runs.items():
            K.numba = None if name == "engine-numpy" else compiled
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
    if a.kernels:
        res["kernels_cpu_ratio"] = res["engine"]["cpu_median"] / res["engine-numpy"]["cpu_median"]
        res["kernels_wall_ratio"] = res["engine"]["median"] / res["engine-numpy"]["median"]
        ka, kb = runs["engine"].state(), runs["engine-numpy"].state()
        res["kernels_same_state"] = all(np.array_equal(ka[k], kb[k]) for k in ka)
        res["kernels_max_param_diff"] = max(float(np.abs(ka[k] - kb[k]).max())
                                            for k in ka if k.startswith("param"))
    res["setup"] = {"kernels": compiled is not None, "kernel": a.kernel, "threads": a.threads,
                    "batch": a.batch, "relax": a.relax,
                    "dtype": a.dtype, "reps": a.reps, "processes": 1}
    print(f"GradEP training step, batch {a.batch}, 3 x {a.relax} relaxation steps, "
          f"{a.dtype}, kernel {a.kernel}, {a.threads} BLAS thread(s), interleaved x {a.reps}")
    for n in runs:
        r = res[n]
        print(f"  {n:12s}  wall median {r['median']:.3f} s  (min {r['min']:.3f}, max "
              f"{r['max']:.3f})   CPU median {r['cpu_median']:.3f} s  (min {r['cpu_min']:.3f}, "
              f"max {r['cpu_max']:.3f})")
    print(f"  engine / face (medians): wall {res['ratio_of_medians']:.3f}, "
          f"CPU {res['cpu_ratio_of_medians']:.3f}")
    if a.kernels:
        print(f"  engine with kernels / without (medians): wall {res['kernels_wall_ratio']:.3f},"
              f" CPU {res['kernels_cpu_ratio']:.3f}; same parameters and Adam states "
              f"bit for bit: {res['kernels_same_state']} (largest parameter difference "
              f"{res['kernels_max_param_diff']:.3g}; 0 expected with --kernel exact)")
    if a.json:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
