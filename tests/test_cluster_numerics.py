"""A worker that computes on another numeric stack is named, not silently merged.

Its messages differ in the last bits from a one-process run's (another BLAS
kernel sums in another order), so the merged log does too: the coordinator
warns, naming the worker, both stacks and the fix.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import warnings

import pytest

from asyncnet.cluster import simulate_distributed

from .helpers import free_port, openblas_kernel
from .test_cluster import ROOT, shortened

QUICK = os.path.join(ROOT, "scenarios", "quickstart.toml")


def test_workers_on_this_stack_raise_no_warning(tmp_path):
    sc = shortened(QUICK, 20.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        simulate_distributed(sc, workers=2, log_path=str(tmp_path / "b.log"))


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or openblas_kernel() in (None,
                    "Sandybridge"), reason="needs OpenBLAS on x86-64 with a kernel other "
                    "than Sandybridge (the remote worker's)")
def test_a_worker_on_another_blas_kernel_is_named(tmp_path):
    sc = shortened(QUICK, 200.0)
    port = free_port()
    remote = subprocess.Popen(
        [sys.executable, "-m", "asyncnet", "worker", "--connect", f"tcp://127.0.0.1:{port}",
         "--wait", "8"], cwd=ROOT, stderr=subprocess.DEVNULL,
        env={**os.environ, "OPENBLAS_CORETYPE": "Sandybridge"})
    try:
        mine = openblas_kernel()
        with pytest.warns(UserWarning, match=r"computes with numpy .* kernel Sandybridge, the "
                          rf"coordinator with numpy .* kernel {mine}: .*OPENBLAS_CORETYPE"):
            s = simulate_distributed(sc, workers=2, local=1, bind=f"tcp://127.0.0.1:{port}",
                                 join_timeout=30.0, log_path=str(tmp_path / "b.log"))
    finally:
        remote.wait(timeout=30)
    assert remote.returncode == 0
    assert s["cluster"]["workers"][1]["delivered"] > 0  # (whether its bits differ depends
    # on which agents it holds: a 1x4 dot product may round alike on both kernels)
