"""numba, where it is: compiling a kernel cached on disk, or without the cache.

numba is optional (``pip install 'asyncnet[fast]'``); every compiled kernel
of the package has a numpy or Python path beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def cached_jit(numba: Any, **opts: Any) -> Callable[[Callable], Callable]:
    """A decorator: ``numba.njit(cache=True, **opts)`` where numba can write its cache.

    Without a writable cache directory (a read-only install, no home) numba
    refuses ``cache=True``: then the function is compiled without the
    cache, once a process.

    Parameters
    ----------
    numba:
        the numba module.
    opts:
        ``numba.njit``'s options.

    Returns
    -------
    The decorator.
    """
    def decorate(fn: Callable) -> Callable:
        try:
            return numba.njit(cache=True, **opts)(fn)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return numba.njit(**opts)(fn)
    return decorate


def compiled(fn: Callable, **opts: Any) -> Callable | None:
    """``fn`` compiled by numba (:func:`cached_jit`), or ``None`` where numba is not installed.

    Parameters
    ----------
    fn:
        the function (plain Python on numpy arrays).
    opts:
        ``numba.njit``'s options.

    Returns
    -------
    The compiled function (compiled at its first call), or ``None``.
    """
    try:
        import numba
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return cached_jit(numba, **opts)(fn)
