"""Cluster files: which workers a run uses and where they connect.

A cluster file (TOML, see ``distributed/*.toml``) lists the hosts that take
part and how many workers each runs; workers on hosts marked ``local`` are
started by the coordinator, the others join with ``asyncnet worker
--connect``. It also says where the coordinator binds, how long silence
means a lost worker, and which CURVE keys secure the traffic.
"""

from __future__ import annotations

import os
import tomllib

from ..outputs import read_text
from .errors import ClusterError

SECTIONS = {
    "coordinator": {"bind": str, "timeout": (int, float), "join_timeout": (int, float),
                    "step_timeout": (int, float)},
    "security": {"keys": str},
}
HOST_KEYS = {"name": str, "workers": int, "local": bool, "address": str}


def load_cluster(path: str) -> dict:
    """Read a cluster file into ``simulate_distributed`` keyword arguments."""
    try:
        doc = tomllib.loads(read_text(path, "cluster file"))
    except OSError as e:
        raise ClusterError(f"{path}: cannot read ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise ClusterError(f"{path}: not valid TOML ({e})") from None
    except RecursionError:
        raise ClusterError(f"{path}: not valid TOML (nested too deeply)") from None
    except ValueError as e:  # not UTF-8 text
        raise ClusterError(f"{path}: {e}") from None
    for sec, val in doc.items():
        if sec == "hosts":
            continue
        if sec not in SECTIONS:
            raise ClusterError(f"{path}: unknown section [{sec}] "
                               f"(known: coordinator, hosts, security)")
        _check(val, SECTIONS[sec], f"[{sec}]", path)
    hosts = doc.get("hosts")
    if not isinstance(hosts, list) or not hosts:
        raise ClusterError(f"{path}: needs at least one [[hosts]] entry")
    workers = local = 0
    for i, h in enumerate(hosts):
        _check(h, HOST_KEYS, f"[[hosts]] #{i + 1}", path)
        n = h.get("workers", 1)
        if n < 1:
            raise ClusterError(f"{path}: [[hosts]] #{i + 1} workers must be at least 1")
        workers += n
        if h.get("local", False):
            local += n
    co = doc.get("coordinator", {})
    out: dict = {"workers": workers, "local": local, "bind": co.get("bind")}
    for k in ("timeout", "join_timeout", "step_timeout"):
        if k in co:
            if not co[k] > 0:
                raise ClusterError(f"{path}: [coordinator] {k} must be positive")
            out[k] = float(co[k])
    keys = doc.get("security", {}).get("keys")
    if keys is not None:
        # relative to the cluster file, so the file can travel with its keys
        out["keys"] = keys if os.path.isabs(keys) else os.path.join(
            os.path.dirname(os.path.abspath(path)), keys)
    return out


def _check(tbl, schema: dict, where: str, path: str) -> None:
    if not isinstance(tbl, dict):
        raise ClusterError(f"{path}: {where} must be a table")
    for k, v in tbl.items():
        if k not in schema:
            raise ClusterError(f"{path}: {where} unknown key {k!r} (known: {', '.join(schema)})")
        want = schema[k]
        if not isinstance(v, want) or (isinstance(v, bool) and want is not bool):
            raise ClusterError(f"{path}: {where} key {k!r} has the wrong type ({v!r})")
