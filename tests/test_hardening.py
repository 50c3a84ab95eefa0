"""Misuse of the command line gets one line and exit 2; outputs are checked
before a run; a full disk, an interrupt or a vanished coordinator leave a
readable log and no process behind; ``--json`` is always strict JSON."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings

import msgpack
import numpy as np
import pytest

import asyncnet
import asyncnet.eventlog as ev
from asyncnet.cli import main
from asyncnet.eventlog import open_log
from asyncnet.jsonout import dumps
from asyncnet.replay import verify

from .helpers import small_tmpfs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = os.path.join(ROOT, "scenarios", "quickstart.toml")
SHORT = """[scenario]
name = "short"
seed = 1
duration = {duration}
[network]
layers = [2, 3, 1]
[rule]
name = "diffusion"
eta = 0.05
[data]
kind = "xor"
hold = 5
"""


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asyncnet", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def one_error_line(r: subprocess.CompletedProcess, *words: str) -> str:
    """Exit 2, no traceback, exactly one stderr line ``asyncnet: error: ...``."""
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("asyncnet: error: "), r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def strict_json(text: str):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def scenario(tmp_path, duration: float = 40) -> str:
    p = tmp_path / "short.toml"
    p.write_text(SHORT.format(duration=duration))
    return str(p)


# -- the command line -------------------------------------------------------
def test_version():
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"asyncnet {asyncnet.__version__}"


@pytest.mark.parametrize("n", ["0", "-1", "two"])
def test_workers_below_one_refused(tmp_path, n):
    one_error_line(cli("run", scenario(tmp_path), "-q", "--no-log", "--workers", n),
                   "--workers")


def in_process(argv: list[str], capsys) -> subprocess.CompletedProcess:
    """``main(argv)`` here, as a CompletedProcess (argparse errors exit)."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, out, err)


def test_inspect_until_must_be_finite(capsys):
    for t in ("nan", "inf", "-inf", "NaN"):
        one_error_line(in_process(["inspect", "x.log", "--node", "l1", f"--until={t}"],
                                  capsys), "--until", "finite")


def _png() -> bytes:
    return b"\x89PNG\r\n\x1a\n" + bytes(range(256))


@pytest.mark.parametrize("kind,content,words", [
    ("latin1", "# réseau\n[scenario]\nduration = 5\n".encode("latin-1"), ["not UTF-8"]),
    ("utf16", "[scenario]\nduration = 5\n".encode("utf-16"), ["UTF-16"]),
    ("png", _png(), ["PNG"]),
    ("nul", b"[scenario]\x00\nduration = 5\n", ["binary"]),
    ("random", bytes(np.random.default_rng(3).integers(0, 256, 500, dtype=np.uint8)), []),
])
def test_scenario_that_is_not_utf8_text(tmp_path, kind, content, words):
    f = tmp_path / f"{kind}.toml"
    f.write_bytes(content)
    one_error_line(cli("run", str(f), "-q", "--no-log"), str(f), *words)


def test_a_log_passed_as_scenario(tmp_path):
    log = tmp_path / "a.log"
    assert main(["run", scenario(tmp_path), "-q", "--log", str(log)]) == 0
    one_error_line(cli("run", str(log), "-q", "--no-log"), str(log), "event log")


def test_utf8_with_bom_is_read(tmp_path):
    f = tmp_path / "bom.toml"
    f.write_bytes(b"\xef\xbb\xbf" + SHORT.format(duration=5).encode())
    r = cli("run", str(f), "-q", "--no-log")
    assert r.returncode == 0, r.stderr


def test_binary_cluster_file_and_bogus_bind(tmp_path):
    c = tmp_path / "cluster.toml"
    c.write_bytes(_png())
    one_error_line(cli("run", scenario(tmp_path), "-q", "--no-log", "--cluster", str(c)),
                   str(c), "PNG")
    one_error_line(cli("run", scenario(tmp_path), "-q", "--no-log", "--workers", "2",
                       "--bind", "bogus"), "bogus", "tcp://HOST:PORT")


# -- strict JSON --------------------------------------------------------------
def test_jsonout_has_no_nan_or_infinity():
    obj = {"a": float("nan"), "b": [1.0, float("inf"), -float("inf")],
           "c": np.array([[1.0, np.nan], [np.inf, 2.0]]), "d": np.float64("nan"),
           "e": np.int64(3), "f": (1, "x", None, True), 4: 1.5}
    back = strict_json(dumps(obj))
    assert back == {"a": None, "b": [1.0, None, None], "c": [[1.0, None], [None, 2.0]],
                    "d": None, "e": 3, "f": [1, "x", None, True], "4": 1.5}


def test_json_of_a_run_that_blows_up_is_strict(tmp_path):
    f = tmp_path / "blow.toml"
    f.write_text(SHORT.format(duration=60).replace('eta = 0.05', 'eta = 5.0')
                 .replace("layers = [2, 3, 1]", 'layers = [2, 4, 1]\nactivation = "linear"\n'
                          "scale = 3.0"))
    log = tmp_path / "blow.log"
    r = cli("run", str(f), "-q", "--json", "--log", str(log))
    # whatever the run's verdict (a divergence may become an error status), what
    # it prints on stdout is strict JSON
    if r.stdout.strip():
        s = strict_json(r.stdout)
        if r.returncode == 0:
            assert s["result"]["loss"] is None  # it was NaN
    if log.exists() and r.returncode == 0:
        r = cli("inspect", str(log), "--node", "l1", "--json")
        st = strict_json(r.stdout)["state"]
        assert any(v is None for v in st["state"])


# -- output paths ---------------------------------------------------------------
def _listing(d) -> list[str]:
    return sorted(os.path.relpath(os.path.join(a, f), d)
                  for a, ds, fs in os.walk(d) for f in fs + ds)


def test_output_paths_are_checked_before_the_run(tmp_path, capsys):
    sc = scenario(tmp_path, duration=100000)  # would take minutes if it started
    blocker = tmp_path / "file"
    blocker.write_text("x")
    (tmp_path / "adir").mkdir()
    before = _listing(tmp_path)
    cases = [(["--log", str(blocker / "x.log")], "not a directory"),
             (["--log", str(tmp_path / "adir")], "is a directory"),
             (["--no-log", "--save-state", str(tmp_path / "missing" / "s.npz")],
              "does not exist"),
             (["--no-log", "--save-state", str(blocker / "s")], "not a directory")]
    for extra, words in cases:
        t0 = time.monotonic()
        one_error_line(in_process(["run", sc, "-q", *extra], capsys), words)
        assert time.monotonic() - t0 < 30
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if not os.access(ro, os.W_OK):  # not as root: root writes anywhere
            one_error_line(in_process(["run", sc, "-q", "--log", str(ro / "x.log")], capsys),
                           "not writable")
    finally:
        ro.chmod(0o755)
    ro.rmdir()
    assert _listing(tmp_path) == before  # nothing left behind


def test_save_state_reports_the_file_it_wrote(tmp_path):
    out = tmp_path / "state"
    r = cli("run", scenario(tmp_path, 10), "-q", "--no-log", "--json", "--save-state",
            str(out))
    assert r.returncode == 0, r.stderr
    s = strict_json(r.stdout)
    assert s["state"] == str(out) + ".npz" and os.path.exists(s["state"])
    assert not out.exists()


# -- a full disk, an interrupt ---------------------------------------------------------
class _SmallDisk:
    """A file that takes ``room`` bytes, then fails like a full disk."""

    def __init__(self, f, room: int):
        self.f, self.room = f, room

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            self.f.write(data[:self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)


def test_full_disk_stops_the_run_and_the_log_stays_readable(tmp_path, monkeypatch, capsys):
    log = tmp_path / "full.log"
    monkeypatch.setattr(ev, "open", lambda p, mode: _SmallDisk(open(p, mode), 30_000),
                        raising=False)
    assert main(["run", scenario(tmp_path, 400), "-q", "--log", str(log)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"asyncnet: error: {log}: cannot write")
    assert "No space left on device" in err[0]
    assert os.path.getsize(log) == 30_000
    monkeypatch.undo()
    r = verify(str(log))
    assert r["identical"] and r["truncated"] and r["compared"] > 100


def test_full_disk_for_real_on_a_small_tmpfs(tmp_path):
    with small_tmpfs(tmp_path, "100k") as mnt:
        log = mnt / "q.log"
        one_error_line(cli("run", scenario(tmp_path, 400), "-q", "--log", str(log)),
                       str(log), "No space left on device")
        r = cli("replay", str(log), "--verify", "-q")
        assert r.returncode == 0 and "identical:" in r.stdout and "truncated" in r.stdout


def _sigint_default():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def children_of(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    st = f.read()
            except OSError:
                continue
            if int(st.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("sig, code, said", [(signal.SIGINT, 130, "interrupted"),
                                              (signal.SIGTERM, 143, "terminated (SIGTERM)")])
@pytest.mark.parametrize("workers", [None, 2])
def test_ctrl_c_or_sigterm_leaves_a_verified_prefix_and_no_process(tmp_path, workers, sig,
                                                                   code, said):
    log = tmp_path / "int.log"
    args = [sys.executable, "-m", "asyncnet", "run", scenario(tmp_path, 1e6), "-q", "--log",
            str(log)] + (["--workers", str(workers)] if workers else [])
    p = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, preexec_fn=_sigint_default)
    t0 = time.monotonic()
    kids: list[int] = []
    while time.monotonic() - t0 < 60:  # running, and writing records
        kids = children_of(p.pid)
        if log.exists() and log.stat().st_size > 20_000 and len(kids) >= (workers or 0):
            break
        time.sleep(0.05)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == code and f"asyncnet: {said};" in err and "Traceback" not in err, err
    deadline = time.monotonic() + 30  # slack for a loaded machine
    while any(alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [k for k in kids if alive(k)]
    lg = open_log(str(log))
    lg.scan()
    assert lg.interrupted and lg.verified and lg.count > 0
    r = cli("replay", str(log), "--verify", "-q")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith(f"identical: {lg.count:,} messages") and "interrupted" in r.stdout


@pytest.mark.parametrize("after", [0.0, 3.0])  # starting up / joined and running
def test_workers_leave_within_5s_when_the_coordinator_is_killed(tmp_path, after):
    p = subprocess.Popen([sys.executable, "-m", "asyncnet", "run", scenario(tmp_path, 1e6),
                          "-q", "--no-log", "--workers", "2"], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    while len(children_of(p.pid)) < 2 and time.monotonic() - t0 < 60:
        time.sleep(0.01)
    time.sleep(after)
    kids = children_of(p.pid)
    assert len(kids) == 2
    p.kill()
    t_kill = time.monotonic()
    p.wait()
    while any(alive(k) for k in kids) and time.monotonic() - t_kill < 60:
        time.sleep(0.05)
    gone = time.monotonic() - t_kill
    for k in kids:
        if alive(k):
            os.kill(k, signal.SIGKILL)
    # ~2 s on an idle machine (the closed connection is noticed at once); the
    # slack is for a loaded CI box: this checks that they leave, not how fast
    assert gone < 45.0, f"workers still there {gone:.1f} s after the coordinator died"


def test_interrupted_footer_is_checked_like_any_other(tmp_path):
    """A footer complete=false is covered by the digest too: flipping it to true
    (claiming a complete run) is caught."""
    from asyncnet.scenario import load
    from asyncnet.simulation import build_engine, log_header
    sc = load(scenario(tmp_path, 30))
    eng, _, _ = build_engine(sc)
    path = tmp_path / "cut.log"
    w = ev.EventLogWriter(str(path), log_header(sc, eng.names))
    eng.sinks.append(w)
    eng.run(12.3)
    w.close(complete=False)
    lg = open_log(str(path))
    lg.scan()
    assert lg.interrupted and lg.verified
    data = path.read_bytes()
    i = data.rindex(msgpack.packb("complete") + b"\xc2")  # false
    bad = tmp_path / "claims_complete.log"
    bad.write_bytes(data[:i + 9] + b"\xc3" + data[i + 10:])
    with pytest.raises(ev.LogError, match="altered"):
        open_log(str(bad)).scan()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = verify(str(bad))
    assert not r["identical"] and "altered" in r["divergence"]
    assert math.isfinite(r["compared"])


def test_missing_extra_hint_works_from_a_checkout(tmp_path):
    log = tmp_path / "a.log"
    assert main(["run", scenario(tmp_path, 10), "-q", "--log", str(log)]) == 0
    code = ("import sys; sys.modules['matplotlib'] = None; from asyncnet.cli import main; "
            "sys.exit(main(['plot', sys.argv[1], '--waves']))")
    r = subprocess.run([sys.executable, "-c", code, str(log)], capture_output=True,
                       text=True, timeout=120, cwd=ROOT)
    one_error_line(r, str(log), "matplotlib", "pip install -e '.[plot]'")


# -- crafted logs: digests recomputed, content impossible ----------------------------
def _items(path) -> list:
    from asyncnet.messages import decode_ext
    with open(path, "rb") as f:
        return list(msgpack.Unpacker(f, raw=False, ext_hook=decode_ext))


def _forge(items: list, out) -> None:
    """Write ``items`` as a log whose every digest matches (a careful forger)."""
    import hashlib
    pk = ev._packer()
    h, n, parts = hashlib.blake2b(digest_size=16), 0, []
    for i, it in enumerate(items):
        if i > 0 and isinstance(it, dict) and ("checkpoint" in it or it.get("footer")):
            body = {k: v for k, v in it.items() if k != "digest"}
            body["checkpoint" if "checkpoint" in it else "count"] = n
            b = ev._sealed(body, h)
        else:
            b = pk.pack(it)
            n += isinstance(it, list)
        h.update(b)
        parts.append(b)
    out.write_bytes(b"".join(parts))


RECORD_CRAFTS = {
    "index out of range": (lambda r: r.__setitem__(2, 999), "index out of range"),
    "negative index": (lambda r: r.__setitem__(3, -1), "index out of range"),
    "string time": (lambda r: r.__setitem__(0, "12"), "not an integer"),
    "float time": (lambda r: r.__setitem__(4, 1.5), "not an integer"),
    "kind 7": (lambda r: r.__setitem__(1, 7), "kind"),
    "arrives before it is sent": (lambda r: r.__setitem__(4, r[0] + 1), "impossible times"),
    "string payload": (lambda r: r.__setitem__(6, "abc"), "payload"),
    "six fields": (lambda r: r.pop(), "6 fields"),
}
HEADER_CRAFTS = {
    "no agents": (lambda h: h.pop("agents"), "lacks key 'agents'"),
    "no scenario": (lambda h: h.pop("scenario"), "lacks key 'scenario'"),
    "seed a string": (lambda h: h.__setitem__("seed", "one"), "'seed' has the wrong type"),
    "agents not names": (lambda h: h.__setitem__("agents", [1, 2]), "agent table"),
    "other quanta": (lambda h: h.__setitem__("quanta", 1000), "quanta"),
}


@pytest.mark.parametrize("case", sorted(RECORD_CRAFTS) + sorted(HEADER_CRAFTS))
def test_crafted_logs_get_one_line_from_every_tool(tmp_path, case, capsys):
    log = tmp_path / "a.log"
    assert main(["run", scenario(tmp_path, 20), "-q", "--log", str(log)]) == 0
    items = _items(log)
    if case in RECORD_CRAFTS:
        fn, words = RECORD_CRAFTS[case]
        k = [i for i, it in enumerate(items) if isinstance(it, list)][50]
        fn(items[k])
    else:
        fn, words = HEADER_CRAFTS[case]
        fn(items[0])
    bad = tmp_path / "crafted.log"
    _forge(items, bad)
    _forge(_items(log), tmp_path / "same.log")  # the forger itself is faithful
    assert (tmp_path / "same.log").read_bytes() == log.read_bytes()
    capsys.readouterr()
    for argv in (["replay", str(bad), "--verify", "-q"], ["stats", str(bad)],
                 ["inspect", str(bad), "--node", "l1"]):
        with warnings.catch_warnings():
            assert main(argv) == 2, argv
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"asyncnet: error: {bad}: "), err
        assert words in lines[0], (words, lines[0])


@pytest.mark.parametrize("key", [b"scenario", b"agents", b"seed"])
def test_a_flipped_bit_in_a_header_key_reads_altered(tmp_path, key, capsys):
    """A bit flipped inside a header key read "the header lacks key 'scenario'"
    (the keys were checked before the header's digest)."""
    log = tmp_path / "a.log"
    assert main(["run", scenario(tmp_path, 10), "-q", "--log", str(log)]) == 0
    data = bytearray(log.read_bytes())
    head = len(ev._packer().pack(_items(log)[0]))
    at = data.index(bytes([0xA0 | len(key)]) + key)  # the key as msgpack packs it
    assert at < head  # in the header
    data[at + 1] ^= 0x01
    bad = tmp_path / "flipped.log"
    bad.write_bytes(bytes(data))
    capsys.readouterr()
    for argv in (["replay", str(bad), "--verify", "-q"], ["stats", str(bad)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"asyncnet: error: {bad}: the header was altered (its digest does "
                       f"not match)"], err


def test_a_version_1_log_is_refused_naming_the_version(tmp_path, capsys):
    log = tmp_path / "a.log"
    assert main(["run", scenario(tmp_path, 10), "-q", "--log", str(log)]) == 0
    items = _items(log)
    items[0]["version"] = 1
    old = tmp_path / "v1.log"
    old.write_bytes(b"".join(ev._packer().pack(it) for it in items))
    capsys.readouterr()
    for argv in (["replay", str(old), "--verify"], ["stats", str(old)],
                 ["inspect", str(old), "--node", "l1"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "log format version 1 is not supported" in err[0], err
        assert "version 2" in err[0]


@pytest.mark.parametrize("address", ["garbage", "tcp://", "tcp://127.0.0.1:notaport"])
def test_a_worker_given_an_address_that_is_none_says_so(address, capsys):
    """``asyncnet worker --connect garbage`` was ZeroMQ's traceback."""
    rc = main(["worker", "--connect", address, "--wait", "1"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if "warning" not in ln]
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"asyncnet: error: --connect {address}: cannot connect there")


def test_a_gradep_state_directory_of_another_run_is_one_line(tmp_path, capsys):
    """The scheme's own refusal (GradEPError: here a state directory that holds a
    run with another learning rate) was a traceback from the CLI."""
    import tomllib

    import tomli_w
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "scenarios", "floweqprop_short.toml"), "rb") as f:
        doc = tomllib.load(f)
    doc["rule"].update(steps=1, checkpoint_every=1, workers=1, free_steps=5, nudge_steps=5)
    doc["data"]["batch"] = 32
    doc["output"]["state_dir"] = str(tmp_path / "state")
    first, second = tmp_path / "a.toml", tmp_path / "b.toml"
    first.write_text(tomli_w.dumps(doc), encoding="utf-8")
    doc["rule"]["lr"] = 2 * doc["rule"]["lr"]
    second.write_text(tomli_w.dumps(doc), encoding="utf-8")
    assert main(["run", str(first), "-q"]) == 0
    capsys.readouterr()
    assert main(["run", str(second), "-q"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if "warning" not in ln]
    assert len(err) == 1 and "holds a run with other settings (lr)" in err[0], err


def test_an_os_error_without_a_file_name_is_not_given_one(tmp_path, capsys):
    """pyarrow's OSError names no file: the line read 'asyncnet: error: asyncnet: ...'."""
    pytest.importorskip("pyarrow")
    log = tmp_path / "q.log"
    assert main(["run", os.path.join(os.path.dirname(os.path.dirname(__file__)),
                                      "scenarios", "quickstart.toml"),
                 "--log", str(log), "-q"]) == 0
    capsys.readouterr()
    # /proc passes the check before writing (as root) and pyarrow's open then fails
    rc = main(["export", str(log), "--output", "/proc/no/x.csv"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if "warning" not in ln]
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("asyncnet: error: ") and "asyncnet: error: asyncnet:" not in err[0]
