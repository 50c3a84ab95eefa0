"""Python's cyclic garbage collector paused while many objects are made at once.

Building a per-neuron network or its engine makes millions of small objects
that live as long as the run, and decoding a piece of an event log makes
thousands of small lists: each collection those allocations trigger walks
all of them, and everything else alive, for nothing (none of it is cyclic
garbage). Measured on a 720,000-synapse engine: 7.46 CPU-s to build with the
collector on, 5.41 with it paused; pausing it while a log piece is decoded
halves the time ``stats`` takes.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """A ``with`` block (or, as ``@collector_paused()``, a function) run with the
    cyclic garbage collector paused; it is on again after, if it was before.

    Nested uses are safe: each restores what it found.
    """
    on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if on:
            gc.enable()
