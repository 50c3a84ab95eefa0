"""Which numpy and BLAS compute this process's numbers.

The last bits of a run depend on them: OpenBLAS picks its kernels by CPU (or
by ``OPENBLAS_CORETYPE``), and its kernel families sum a dot product in
different orders. ``replay --verify`` names the stack when a log differs from
its re-run by rounding alone; a cluster's coordinator warns when a worker
computes on another one (its part of the merged log would differ in the last
bits from a one-process run's).
"""

from __future__ import annotations

import functools
import os

import numpy as np


@functools.cache
def numeric_stack() -> str:
    """This process's numpy and BLAS (library, version, kernel), as one line.

    Returns
    -------
    e.g. ``"numpy 2.4.6, openblas 0.3.31.188.0 kernel Haswell"``; numpy's
    version alone where ``threadpoolctl`` (which reads the kernel a BLAS
    picked when it loaded) is not installed.
    """
    out = f"numpy {np.__version__}"
    lib = numpy_blas()
    if lib is None:
        return out
    return f"{out}, {lib.get('internal_api')} {lib.get('version')} kernel {lib.get('architecture')}"


def numpy_blas() -> dict | None:
    """threadpoolctl's entry for the BLAS numpy calls, or ``None`` (no threadpoolctl).

    A process may hold several (scipy brings its own OpenBLAS, in any load
    order): numpy's is the one in numpy's folder, else the one of the version
    numpy was built with, else the first.

    Returns
    -------
    The entry (``internal_api``, ``version``, ``architecture``, ``filepath``, ...).
    """
    try:
        import threadpoolctl
    except ImportError:
        return None
    libs = [x for x in threadpoolctl.threadpool_info() if x.get("user_api") == "blas"]
    here = os.path.dirname(np.__file__)
    try:
        built = np.__config__.CONFIG["Build Dependencies"]["blas"].get("version")
    except (AttributeError, KeyError, TypeError):
        built = None
    for pick in ([x for x in libs if str(x.get("filepath", "")).startswith(here)
                  or os.path.basename(os.path.dirname(str(x.get("filepath", "")))) == "numpy.libs"],
                 [x for x in libs if built and x.get("version") == built], libs):
        if pick:
            return pick[0]
    return None
