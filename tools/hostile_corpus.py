"""A corpus of malformed inputs, run against the checkout in the current directory.

Counts outcomes per class — clean error (one ``asyncnet: error:`` line, exit
2), detected (exit 1: DIVERGED / ALTERED), flagged (exit 0 but the log is
reported truncated or interrupted, and the records used are the original's),
correct success, wrong success (an altered log accepted, or a prefix called
DIVERGED), traceback, hang — for ``replay --verify``, ``stats`` and
``inspect`` on mutated and crafted logs, and for ``run`` on scenario files
that are not UTF-8 TOML. Works on the old log format (version 1) and the new
one, so the same corpus measures a checkout before and after a change:

    cd CHECKOUT && python /path/to/tools/hostile_corpus.py [--n 20]

Everything runs in one process (``asyncnet.cli.main``), with an alarm as the
hang detector. Prints one table.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import tomllib
import traceback
import warnings
from collections import Counter, defaultdict

import msgpack

sys.path.insert(0, os.getcwd())
from asyncnet.cli import main  # noqa: E402
from asyncnet.messages import decode_ext, encode_payload  # noqa: E402
from asyncnet.scenario import load  # noqa: E402
from asyncnet.simulation import simulate  # noqa: E402

SCEN = """[scenario]
name = "corpus"
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
HANG = 30


class Hang(Exception):
    pass


def run(argv):
    out, err = io.StringIO(), io.StringIO()

    def alarm(*_):
        raise Hang

    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(HANG)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            code = main(argv)
    except Hang:
        return "hang", "", ""
    except SystemExit as e:
        code = e.code
    except BaseException:
        return "traceback", "", traceback.format_exc().splitlines()[-1]
    finally:
        signal.alarm(0)
    return code, out.getvalue(), err.getvalue()


def clean(code, out, err) -> bool:
    lines = [ln for ln in err.splitlines() if not ln.startswith("asyncnet: warning:")]
    return code == 2 and len(lines) == 1 and lines[0].startswith("asyncnet: error: ")


def items_of(data: bytes) -> list[tuple[object, int, int]]:
    up = msgpack.Unpacker(raw=False, ext_hook=decode_ext)
    up.feed(data)
    out, pos = [], 0
    for obj in up:
        out.append((obj, pos, up.tell()))
        pos = up.tell()
    return out


def rewrite(items: list, version: int) -> bytes:
    """Re-encode decoded items with digests recomputed (a careful forger)."""
    pk = msgpack.Packer(default=encode_payload, use_bin_type=True)
    if version == 1:
        h, n, out = hashlib.blake2b(digest_size=16), 0, [pk.pack(items[0])]
        for it in items[1:]:
            if isinstance(it, list):
                b = pk.pack(it)
                h.update(b)
                n += 1
                out.append(b)
            elif isinstance(it, dict) and "checkpoint" in it:
                out.append(pk.pack({**it, "checkpoint": n, "digest": h.hexdigest()}))
            elif isinstance(it, dict) and it.get("footer"):
                out.append(pk.pack({**it, "count": n, "digest": h.hexdigest()}))
        return b"".join(out)
    from asyncnet.eventlog import _sealed  # the new format's sealing
    h, n, out = hashlib.blake2b(digest_size=16), 0, []
    for i, it in enumerate(items):
        if isinstance(it, dict) and ("checkpoint" in it or it.get("footer")) and i > 0:
            body = {k: v for k, v in it.items() if k != "digest"}
            if "checkpoint" in it:
                body["checkpoint"] = n
            else:
                body["count"] = n
            b = _sealed(body, h)
        else:
            b = pk.pack(it)
            n += isinstance(it, list)
        h.update(b)
        out.append(b)
    return b"".join(out)


def crafted(items: list, version: int) -> dict[str, bytes]:
    """Logs whose digests match but whose content is impossible."""
    recs = [i for i, it in enumerate(items) if isinstance(it, list)]
    k = recs[len(recs) // 2]
    out = {}

    def with_record(name, fn):
        its = [list(x) if isinstance(x, list) else dict(x) if isinstance(x, dict) else x
               for x in items]
        fn(its[k])
        out[name] = rewrite(its, version)

    with_record("index out of range", lambda r: r.__setitem__(2, 10_000))
    with_record("negative index", lambda r: r.__setitem__(3, -1))
    with_record("string time", lambda r: r.__setitem__(0, "12"))
    with_record("float time", lambda r: r.__setitem__(0, 1.5))
    with_record("kind 7", lambda r: r.__setitem__(1, 7))
    with_record("arrives before sent", lambda r: r.__setitem__(4, r[0] + 10))
    with_record("string payload", lambda r: r.__setitem__(6, "abc"))
    with_record("map payload", lambda r: r.__setitem__(6, {"a": 1}))
    with_record("six fields", lambda r: r.pop())
    for key in ("agents", "scenario", "seed", "quanta", "scenario_path"):
        its = [dict(items[0])] + items[1:]
        its[0].pop(key, None)
        out[f"header without {key}"] = rewrite(its, version)
    for key, val in (("agents", "l0"), ("seed", "one"), ("scenario", 5), ("agents", [1, 2]),
                     ("quanta", 7)):
        its = [dict(items[0]) | {key: val}] + items[1:]
        out[f"header {key}={val!r}"] = rewrite(its, version)
    its = [dict(items[0]) | {"version": 99}] + items[1:]
    out["version 99"] = rewrite(its, version)
    return out


def mutate(data: bytes, rng: random.Random, kind: str, header_end: int) -> bytes:
    b = bytearray(data)
    at = rng.randrange(header_end if kind == "header flip" else len(b))
    if kind in ("flip", "header flip"):
        b[at] ^= 1 << rng.randrange(8)
    elif kind == "insert":
        b[at:at] = rng.randbytes(rng.randint(1, 8))
    elif kind == "delete":
        del b[at:at + rng.randint(1, 16)]
    elif kind == "overwrite":
        b[at:at + 4] = rng.randbytes(4)
    elif kind == "truncate":
        del b[at:]
    return bytes(b)


def judge(tool: str, code, out: str, err: str, data: bytes, orig: bytes, ends: list[int],
          truncation: bool) -> str:
    if code in ("hang", "traceback"):
        return code
    if code == 2:
        return "clean error" if clean(code, out, err) else "messy error"
    try:
        r = json.loads(out)
    except ValueError:
        return "traceback"
    if tool == "stats":  # the records it vouches for: covered by a digest
        n = r["messages"]["total"] - r["log"].get("unverified_records", 0)
        flag = not r["log"].get("complete", True) or r["log"].get("truncated")
        ok = True
    elif tool == "replay":
        n, flag, ok = r["compared"], r["truncated"] or r.get("interrupted"), r["identical"]
    else:
        n = r.get("verified_records")
        flag, ok = r["truncated"] or r.get("interrupted"), r["identical"] and not r.get(
            "log_altered")
    if code == 1 or not ok:
        return "wrong (prefix called DIVERGED)" if truncation else "detected"
    if data == orig:
        return "correct success"
    if flag and n is not None and n < len(ends) and data[:ends[n]] == orig[:ends[n]]:
        return "flagged prefix"
    if flag and n is None:  # old inspect: no count to check
        return "flagged (unchecked)"
    return "WRONG SUCCESS"


def main_corpus() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="random mutations per class")
    ap.add_argument("--checkpoint", type=int, default=97,
                    help="records between checkpoints in the base log (the default of "
                         "asyncnet is 100,000: a small log then has none)")
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="corpus-")
    atexit.register(shutil.rmtree, d, True)
    base = os.path.join(d, "base.log")
    import asyncnet.eventlog as ev
    ev.CHECKPOINT = args.checkpoint
    simulate(load(os.path.join(d, "corpus.toml"), text=SCEN), log_path=base)
    orig = open(base, "rb").read()
    its = items_of(orig)
    version = its[0][0]["version"]
    ends = [0] + [e for o, _, e in its if isinstance(o, list)]
    header_end = its[0][2]
    rng = random.Random(7)
    cases: list[tuple[str, bytes]] = []
    for kind in ("flip", "header flip", "insert", "delete", "overwrite", "truncate"):
        cases += [(kind, mutate(orig, rng, kind, header_end)) for _ in range(args.n)]
    cases += [("crafted: " + name, b) for name, b in
              crafted([o for o, _, _ in its], version).items()]
    table: dict[str, Counter] = defaultdict(Counter)
    path = os.path.join(d, "m.log")
    for kind, data in cases:
        with open(path, "wb") as f:
            f.write(data)
        cls = "crafted" if kind.startswith("crafted") else kind
        for tool, argv in (("replay", ["replay", path, "--verify", "-q", "--json"]),
                           ("stats", ["stats", path, "--json"]),
                           ("inspect", ["inspect", path, "--node", "l1", "--json"])):
            code, out, err = run(argv)
            table[f"log {cls} / {tool}"][judge(tool, code, out, err, data, orig, ends,
                                               kind == "truncate")] += 1
    # scenario files that are not UTF-8 TOML
    valid = SCEN.replace('name = "corpus"', 'name = "corpus"\ndescription = "réseau"')
    scen = {"latin-1": valid.encode("latin-1"), "cp1252": valid.encode("cp1252"),
            "utf-16": valid.encode("utf-16"), "utf-16-le": valid.encode("utf-16-le"),
            "utf-16-be": valid.encode("utf-16-be"), "utf-32": valid.encode("utf-32"),
            "png": b"\x89PNG\r\n\x1a\n" + rng.randbytes(200), "event log": orig,
            "NUL byte": valid.encode().replace(b"[network]", b"[net\x00work]"),
            "nested 500": (valid + "x = " + "[" * 500 + "]" * 500).encode(),
            "nested 5000": (valid + "x = " + "[" * 5000 + "]" * 5000).encode(),
            "cut UTF-8": valid.encode()[:valid.encode().index(b"\xc3") + 1]}
    for i in range(args.n):
        scen[f"random binary {i}"] = rng.randbytes(rng.randint(1, 400))
    noise = 0
    while noise < args.n:
        p = rng.randrange(len(valid))
        t = (valid[:p] + "".join(rng.choice('[]{}="\'\n#.,\\') for _ in range(3))
             + valid[p:]).encode()
        try:
            tomllib.loads(t.decode())
        except Exception:
            scen[f"TOML noise {noise}"] = t
            noise += 1
    sp = os.path.join(d, "s.toml")
    for name, data in scen.items():
        with open(sp, "wb") as f:
            f.write(data)
        code, out, err = run(["run", sp, "-q", "--no-log"])
        cls = name.split(" ")[0] if name[-1].isdigit() else "encoding/binary"
        r = ("clean error" if clean(code, out, err) and sp in err else code
             if code in ("hang", "traceback") else f"exit {code}")
        table[f"scenario {cls}"][r] += 1
    print(f"asyncnet at {os.getcwd()}, log format version {version}, "
          f"checkpoint every {args.checkpoint} records")
    for k in sorted(table):
        print(f"{k:38s} " + ", ".join(f"{v} {n}" for v, n in table[k].most_common()))


if __name__ == "__main__":
    main_corpus()
