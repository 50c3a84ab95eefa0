"""Property-based: mutated logs and malformed scenario bytes never crash the CLI.

A real event log (with checkpoints) is mutated — bits flipped, bytes
inserted, deleted, overwritten, the file cut — and ``replay --verify``,
``stats`` and ``inspect`` are run on it in-process. Each must give one
clean error line (exit 2), or detect the change (exit 1), or succeed
*correctly*: on the unaltered file, or on a log it flags as truncated whose
records it used are byte for byte the original's. Never a traceback, never a
hang. A second property throws undecodable or syntactically broken bytes at
the scenario loading of ``asyncnet run``: always one clean line, exit 2.

The default suite runs a few dozen examples; ``-m slow`` runs many more.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import io
import json
import os
import shutil
import signal
import tempfile
import tomllib
import warnings

import msgpack
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import asyncnet.eventlog as ev
from asyncnet.cli import main
from asyncnet.scenario import load
from asyncnet.simulation import simulate

SCEN = """[scenario]
name = "hostile"
seed = 4
duration = 30
[network]
layers = [2, 3, 1]
[rule]
name = "diffusion"
eta = 0.05
[data]
kind = "xor"
hold = 5
"""
HANG = 30  # seconds: an example that takes longer is a hang


class Hang(Exception):
    pass


@functools.lru_cache(maxsize=1)
def base() -> tuple[str, bytes, list[int]]:
    """A small real log with checkpoints; its bytes; the end offset of each record."""
    d = tempfile.mkdtemp(prefix="asyncnet-hostile-")
    atexit.register(shutil.rmtree, d, True)
    path = os.path.join(d, "base.log")
    old = ev.CHECKPOINT
    ev.CHECKPOINT = 97
    try:
        simulate(load(os.path.join(d, "hostile.toml"), text=SCEN), log_path=path)
    finally:
        ev.CHECKPOINT = old
    data = open(path, "rb").read()
    up = msgpack.Unpacker(raw=False, ext_hook=lambda c, b: None)
    up.feed(data)
    ends = [0]  # ends[n]: where record n-1 ends (n records read)
    for obj in up:
        if isinstance(obj, list):
            ends.append(up.tell())
    return d, data, ends


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``asyncnet ARGV`` in this process: (status, stdout, stderr); a traceback
    raises here, a hang raises :class:`Hang`."""
    out, err = io.StringIO(), io.StringIO()

    def alarm(*_):
        raise Hang(" ".join(argv))

    prev = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(HANG)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            code = main(argv)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, prev)
    return code, out.getvalue(), err.getvalue()


def clean_error(code: int, out: str, err: str) -> None:
    errors = [ln for ln in err.splitlines() if not ln.startswith("asyncnet: warning:")]
    assert code == 2 and len(errors) == 1 and errors[0].startswith("asyncnet: error: "), err
    assert "Traceback" not in err and not out


def mutate(data: bytes, muts: list[tuple]) -> bytes:
    b = bytearray(data)
    for m in muts:
        if not b:
            break
        op, at = m[0], m[1] % len(b)
        if op == "flip":
            b[at] ^= 1 << m[2]
        elif op == "insert":
            b[at:at] = m[2]
        elif op == "delete":
            del b[at:at + m[2]]
        elif op == "overwrite":
            b[at:at + len(m[2])] = m[2]
        elif op == "truncate":
            del b[at:]
    return bytes(b)


POS = st.integers(0, 1 << 20)
MUTATION = st.one_of(
    st.tuples(st.just("flip"), POS, st.integers(0, 7)),
    st.tuples(st.just("insert"), POS, st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), POS, st.integers(1, 16)),
    st.tuples(st.just("overwrite"), POS, st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("truncate"), POS),
)


def check_success(name: str, data: bytes, original: bytes, ends: list[int],
                  truncated: bool, n: int) -> None:
    """A success on an altered log is correct only as a flagged prefix whose
    ``n`` records it vouches for (compared by a re-run, or covered by a
    digest) are the original's, byte for byte."""
    if data == original:
        return
    assert truncated, f"{name}: altered log accepted without a flag"
    assert n < len(ends), f"{name}: more records than the original"
    assert data[:ends[n]] == original[:ends[n]], f"{name}: vouched for altered records"


def check_tools(data: bytes) -> None:
    d, original, ends = base()
    path = os.path.join(d, "mutated.log")
    with open(path, "wb") as f:
        f.write(data)
    truncation_only = original.startswith(data)
    # replay --verify
    code, out, err = run_cli(["replay", path, "--verify", "-q", "--json"])
    if code == 2:
        clean_error(code, out, err)
    else:
        r = json.loads(out)
        assert code == (0 if r["identical"] else 1)
        if code == 0:
            check_success("replay", data, original, ends, r["truncated"], r["compared"])
        else:
            assert data != original and not truncation_only, r
    # stats (refuses an altered log)
    code, out, err = run_cli(["stats", path, "--json"])
    if code == 2:
        clean_error(code, out, err)
    else:
        assert code == 0
        s = json.loads(out)
        # records after the last digest are counted but flagged as unverified
        check_success("stats", data, original, ends, s["log"]["truncated"],
                      s["messages"]["total"] - s["log"]["unverified_records"])
    # inspect
    code, out, err = run_cli(["inspect", path, "--node", "l1", "--json"])
    if code == 2:
        clean_error(code, out, err)
    else:
        r = json.loads(out)
        if code == 0:
            assert r["identical"] and not r["log_altered"]
            check_success("inspect", data, original, ends, r["truncated"],
                          r["verified_records"])
        else:
            assert code == 1 and data != original and not truncation_only, r


def test_the_unaltered_log_passes_everywhere():
    _, original, ends = base()
    assert len(ends) > 200  # several checkpoints (every 97 records)
    check_tools(original)
    code, out, _ = run_cli(["replay", os.path.join(base()[0], "mutated.log"), "--verify",
                            "-q"])
    assert code == 0 and out.startswith(f"identical: {len(ends) - 1:,} messages")


FAST = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.lists(MUTATION, min_size=1, max_size=3))
@example([("flip", 388, 0), ("truncate", 421)])  # a flipped record after the last digest
def test_mutated_logs_never_crash_or_lie(muts):
    check_tools(mutate(base()[1], muts))


@pytest.mark.slow
@SLOW
@given(st.lists(MUTATION, min_size=1, max_size=4))
def test_mutated_logs_never_crash_or_lie_many(muts):
    check_tools(mutate(base()[1], muts))


# -- scenario bytes ---------------------------------------------------------------
VALID = SCEN.replace('name = "hostile"', 'name = "hostile"\ndescription = "réseau à délais"')
ENCODINGS = ["latin-1", "cp1252", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "cp437"]
TOML_NOISE = st.text(alphabet='[]{}="\'\n#.,\\ \t0e+-_xé', min_size=1, max_size=6)


def parses(data: bytes) -> bool:
    """Whether the bytes are UTF-8 TOML at all (then they are past decoding, and
    what they mean is the scenario validation's business, not this test's)."""
    try:
        tomllib.loads(data.decode("utf-8-sig"))
        return True
    except Exception:
        return False


SCENARIO_BYTES = st.one_of(
    st.binary(min_size=0, max_size=400),
    st.sampled_from(ENCODINGS).map(lambda enc: VALID.encode(enc)),
    st.tuples(st.integers(0, len(VALID)), TOML_NOISE).map(
        lambda p: (VALID[:p[0]] + p[1] + VALID[p[0]:]).encode()),
    st.tuples(st.integers(0, len(VALID)), st.binary(min_size=1, max_size=4)).map(
        lambda p: VALID.encode()[:p[0]] + p[1] + VALID.encode()[p[0]:]),
    st.integers(400, 3000).map(lambda n: (VALID + "x = " + "[" * n + "]" * n).encode()),
    st.sampled_from([b"\x89PNG\r\n\x1a\n\x00\x00", b"\xff\xfe[\x00", b"\xef\xbb\xbf\xff",
                     b"%PDF-1.4", b"PK\x03\x04"]),
)


def check_scenario_bytes(data: bytes) -> None:
    d = base()[0]
    path = os.path.join(d, "scenario.toml")
    with open(path, "wb") as f:
        f.write(data)
    code, out, err = run_cli(["run", path, "-q", "--no-log"])
    clean_error(code, out, err)
    assert path in err


@FAST
@given(SCENARIO_BYTES)
def test_undecodable_scenarios_get_one_line(data):
    assume(not parses(data))
    check_scenario_bytes(data)


def test_a_log_given_as_scenario_gets_one_line():
    check_scenario_bytes(base()[1])


@pytest.mark.slow
@SLOW
@given(SCENARIO_BYTES)
def test_undecodable_scenarios_get_one_line_many(data):
    assume(not parses(data))
    check_scenario_bytes(data)
