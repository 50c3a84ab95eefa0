"""``replay --verify`` says when a log differs from its re-run only by rounding.

OpenBLAS picks its kernels by CPU (or ``OPENBLAS_CORETYPE``), and kernel
families sum a dot product in different orders: a log written on another
machine diverges at its first payload, in the last bit. The message says so,
with every digit of both payloads and this process's numeric stack, instead
of two payloads that print alike.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from asyncnet.messages import FORWARD
from asyncnet.numerics import numeric_stack
from asyncnet.replay import _fmt, _rounding

from .helpers import openblas_kernel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_last_bits_are_called_rounding_and_the_rest_is_not():
    x = 0.5898692008195533
    rec = [1_000_000, FORWARD, 3, 4, 500_000, 1, np.array([x, -2.0])]
    ulp = [*rec[:6], np.array([np.nextafter(x, 1.0), -2.0])]
    assert "rounding" in _rounding(rec, ulp)
    # one ulp of 0.59 (1.1e-16) over the largest |value| (2)
    assert f"differ by {np.spacing(x) / 2.0:.1e} (relative)" in _rounding(rec, ulp)
    assert _rounding(rec, [*rec[:6], np.array([x + 1e-6, -2.0])]) == ""  # a real difference
    assert _rounding(rec, [*rec[:5], 2, rec[6]]) == ""  # another message
    assert _rounding(rec, [*rec[:6], np.array([x])]) == ""  # another shape
    assert _rounding(rec, [*rec[:6], np.array([np.nan, -2.0])]) == ""
    assert _rounding([*rec[:6], 1.0], [*rec[:6], np.nextafter(1.0, 2.0)]).startswith(" — ")
    assert _rounding([*rec[:6], b"x"], [*rec[:6], b"y"]) == ""
    # every digit: two payloads one ulp apart print apart
    agents = [f"a{i}" for i in range(5)]
    assert _fmt(rec, agents) != _fmt(ulp, agents)
    assert "numpy" in numeric_stack()


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or openblas_kernel() in (None,
                    "Sandybridge"), reason="needs OpenBLAS on x86-64 with a kernel other "
                    "than Sandybridge (the log is written with that one)")
def test_a_log_of_another_blas_kernel_diverges_by_rounding(tmp_path):
    log = str(tmp_path / "q.log")
    env = {**os.environ, "OPENBLAS_CORETYPE": "Sandybridge"}
    subprocess.run([sys.executable, "-m", "asyncnet", "run", "scenarios/quickstart.toml", "-q",
                    "--log", log], cwd=ROOT, env=env, check=True, capture_output=True)
    r = subprocess.run([sys.executable, "-m", "asyncnet", "replay", log, "--verify", "-q"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "DIVERGED" in r.stdout and "rounding, not a different computation" in r.stdout
    assert f"kernel {openblas_kernel()}" in r.stdout
    ok = subprocess.run([sys.executable, "-m", "asyncnet", "replay", log, "--verify", "-q"],
                        cwd=ROOT, env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("identical: 39,994 messages")
