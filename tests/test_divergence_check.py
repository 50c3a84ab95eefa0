"""The end-of-run divergence check against a from-scratch reference.

``diverged`` looks at every float or complex value of every agent's state
(a fast joined pass first, then the first offender by agent name and key
order). The reference here is the plain definition: walk the agents in name
order and each state's keys in order, and report the first float or complex
value that is not finite or above the limit in magnitude.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncnet.analysis.divergence import LIMIT, diverged

SPECIAL = [0.0, -1.5, 2e12, -3e12, math.inf, -math.inf, math.nan, LIMIT, 1e-300]


def _elements(x) -> list[complex | float]:
    """The values ``x`` holds, if it is float or complex data; else none."""
    if isinstance(x, bool | int | str | np.integer | np.bool_):
        return []
    if isinstance(x, float | complex | np.floating | np.complexfloating):
        return [x]
    if isinstance(x, np.ndarray):
        return list(x.ravel()) if x.dtype.kind in "fc" else []
    if isinstance(x, list):
        if all(isinstance(v, bool | int) for v in x):
            return []  # an int list is int data
        return [complex(v) if isinstance(v, complex) else float(v) for v in x]
    return []


def reference(states: dict[str, dict]) -> tuple[str, str, str] | None:
    for name in sorted(states):
        for key, val in states[name].items():
            for v in _elements(val):
                if not (math.isfinite(v.real) and math.isfinite(v.imag)
                        if isinstance(v, complex | np.complexfloating) else math.isfinite(v)):
                    return name, key, "not finite"
            vs = _elements(val)
            if vs and max(abs(v) for v in vs) > LIMIT:
                return name, key, "above the limit"
    return None


value = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(SPECIAL),
    st.integers(-10**6, 10**6),
    st.booleans(),
    st.lists(st.sampled_from(SPECIAL), min_size=0, max_size=4).map(
        lambda v: np.array(v, dtype=float)),
    st.lists(st.sampled_from(SPECIAL), min_size=1, max_size=4).map(
        lambda v: np.array(v, dtype=np.float32).reshape(-1, 1)),
    st.tuples(st.sampled_from(SPECIAL), st.sampled_from(SPECIAL)).map(
        lambda ri: np.array([complex(*ri)])),
    st.lists(st.integers(-5, 5), max_size=3).map(lambda v: np.array(v, dtype=np.int64)),
    st.sampled_from(SPECIAL).map(np.float64),
    st.lists(st.sampled_from(SPECIAL), min_size=1, max_size=3),
)
states_st = st.dictionaries(
    st.text("abcxyz_", min_size=1, max_size=4),
    st.dictionaries(st.sampled_from(["weight", "grad", "state", "bias", "n"]), value,
                    max_size=4),
    max_size=6)


@settings(max_examples=400, deadline=None)
@given(states_st)
def test_the_first_offender_is_the_reference_one(states):
    got = diverged(states)
    want = reference(states)
    if want is None:
        assert got is None
    else:
        assert got is not None and got["t"] is None
        assert (got["agent"], got["key"]) == want[:2]
        assert got["how"] == f"{want[1]} {want[2]} at the end"


def test_a_recorded_instant_wins_over_the_end_state():
    states = {"a": {"weight": np.array([np.nan])},
              "b": {"diverged_at": np.array([4.0]), "w": 1.0},
              "c": {"diverged_at": 2.5}, "d": {"diverged_at": -1.0, "w": math.inf}}
    got = diverged(states)
    assert (got["agent"], got["key"], got["t"]) == ("c", "diverged_at", 2.5)


def test_many_agents_with_one_bad_value_late_in_name_order():
    # the shape of a per-neuron net's end: thousands of small states, one bad weight
    states = {f"s{k:05d}": {"weight": np.array([[0.1 * k]]), "grad": 0.5, "n": 3}
              for k in range(5000)}
    assert diverged(states) is None
    states["s04321"]["weight"] = np.array([[2e12]])
    states["s04999"]["grad"] = math.nan
    got = diverged(states)
    assert (got["agent"], got["key"]) == ("s04321", "weight")
    assert got["how"] == "weight above the limit at the end"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -2e12, 1j * 3e12])
def test_large_arrays_are_checked_alone_and_small_ones_in_chunks(bad):
    # arrays past the chunk size are checked one by one, and many small ones in
    # bounded batches (joining the whole state doubled a run's peak memory)
    big = np.linspace(-1.0, 1.0, 200_000).reshape(400, 500)
    states = {"a": {"weight": big.copy()}, "b": {"w": big.astype(np.float32)},
              **{f"s{k:06d}": {"weight": np.array([[0.5]]), "grad": 0.25} for k in range(70_000)}}
    assert diverged(states) is None
    for name, key in (("a", "weight"), ("b", "w"), ("s069999", "weight")):
        trial = {n: dict(v) for n, v in states.items()}
        arr = trial[name][key].astype(complex if isinstance(bad, complex) else
                                      trial[name][key].dtype)
        arr.flat[-1] = bad
        trial[name][key] = arr
        got = diverged(trial)
        want = reference({name: {key: arr}})
        assert (got["agent"], got["key"]) == (name, key) == want[:2]
