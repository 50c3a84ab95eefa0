"""Record every scenario's messages and summary figures, to compare across a change.

    python tools/scenario_baseline.py OUT.json [--logs DIR]

For each ``scenarios/*.toml``: the sha256 of the log's *record* bytes (the
header and footer are left out, so a header format change does not hide an
unchanged message stream), the record count, and the ``--json`` summary
without the figures that depend on the machine (wall time, rates, paths).
``tests/test_scenario_baseline.py`` compares a fresh run against the files
``tests/data/scenario_baseline*.json`` written by the commit before the
redesign (e7df5ab), i.e. by a different implementation of the same runs, one
per OpenBLAS kernel family (their last bits differ). To write one, run this
file from a worktree of e7df5ab under the kernel::

    git worktree add /tmp/pre e7df5ab && cd /tmp/pre
    OPENBLAS_CORETYPE=Haswell python /path/to/asyncnet/tools/scenario_baseline.py OUT.json
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import msgpack

VOLATILE = ("wall_seconds", "messages_per_second", "path", "log", "state", "cluster",
            "report")  # report: text lines, not figures


def records_digest(path: str) -> tuple[str, int]:
    """sha256 of the raw bytes of every record (top-level arrays) of a log."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        data = f.read()
    up = msgpack.Unpacker(raw=True, strict_map_key=False, max_buffer_size=len(data) + 1)
    up.feed(data)
    start = 0
    for obj in up:
        end = up.tell()
        if isinstance(obj, list):
            h.update(data[start:end])
            n += 1
        start = end
    return h.hexdigest(), n


def stable(summary: dict) -> dict:
    """The summary without machine-dependent figures."""
    return {k: v for k, v in summary.items() if k not in VOLATILE}


def run_one(toml: str, logdir: str, extra: list[str] | None = None) -> dict:
    """Run one scenario through the CLI; its record digest and stable summary."""
    name = os.path.splitext(os.path.basename(toml))[0]
    log = os.path.join(logdir, name + ".log")
    out = subprocess.run([sys.executable, "-m", "asyncnet", "run", toml, "--json", "-q",
                          "--log", log, *(extra or [])],
                         capture_output=True, text=True, check=True)
    digest, n = records_digest(log) if os.path.exists(log) else (None, 0)  # write_log = false
    return {"records_sha256": digest, "records": n, "summary": stable(json.loads(out.stdout))}


def main(argv: list[str]) -> int:
    out = argv[0]
    logdir = argv[argv.index("--logs") + 1] if "--logs" in argv else tempfile.mkdtemp()
    res = {}
    for toml in sorted(glob.glob("scenarios/*.toml")):
        res[os.path.basename(toml)] = run_one(toml, logdir)
        print(toml, res[os.path.basename(toml)]["records"], file=sys.stderr)
    with open(out, "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
