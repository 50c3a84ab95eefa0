"""Subcommands of the ZeroMQ runtime: ``asyncnet worker`` and ``asyncnet keys``.

Loaded as a plugin by ``asyncnet.cli`` on every start, so it imports
nothing of ZeroMQ until one of its commands runs.
"""

from __future__ import annotations

from ..commands import add_user_errors, command, positive_time
from .errors import ClusterError, KeysError
from .wire import WireError

# a dead worker, a hostile peer or a bad cluster file: the user's to fix, not a bug
add_user_errors(ClusterError, KeysError, WireError)


@command("worker", "join a distributed run (asyncnet worker --connect tcp://HOST:PORT)")
def cmd_worker(args) -> int:
    """Serve one run for the coordinator at ``--connect``, then exit."""
    from .worker import main
    return main(args.connect, args.token, args.wait, args.keys)


cmd_worker.configure = lambda p: (
    p.add_argument("--connect", required=True, metavar="tcp://HOST:PORT",
                   help="the coordinator's address"),
    p.add_argument("--wait", type=positive_time, default=60.0, metavar="SECONDS",
                   help="how long to wait for the coordinator to hand out work"),
    p.add_argument("--keys", metavar="DIR",
                   help="CURVE keys (client.key_secret, server.key) made by asyncnet keys"),
    p.add_argument("--token", help=argparse_suppress()),
)


@command("keys", "make CURVE keys for encrypted, authenticated distributed runs")
def cmd_keys(args) -> int:
    """Write a server and a client key pair into a directory."""
    from .security import make_keys
    files = make_keys(args.directory)
    for k, v in files.items():
        print(f"{k:14s} {v}")
    print("coordinator: give [security] keys = DIR in the cluster file; "
          "workers: asyncnet worker --keys DIR (needs client.key_secret and server.key)")
    return 0


cmd_keys.configure = lambda p: p.add_argument("directory", help="where to write the keys")


def argparse_suppress() -> str:
    """Hide internal options (the token local workers are started with)."""
    import argparse
    return argparse.SUPPRESS
