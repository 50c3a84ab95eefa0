"""Optional CURVE encryption and authentication for runs across machines.

``asyncnet keys DIR`` makes a server key pair for the coordinator and a
client key pair for the workers (``zmq.auth.create_certificates``); the
coordinator accepts only clients whose public key is in ``DIR/authorized``.
Copy ``DIR`` (the client secret and the server *public* key are enough) to
every worker machine and pass ``--keys DIR`` there. Without keys, traffic is
plain TCP: fine on 127.0.0.1 or a trusted network, not across the internet.
"""

from __future__ import annotations

import os
import shutil

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from .errors import KeysError


def make_keys(directory: str) -> dict[str, str]:
    """Create server and client key pairs in ``directory``; authorize the client."""
    if not zmq.has("curve"):
        raise KeysError("this libzmq was built without CURVE support")
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise KeysError(f"{directory}: a file, not a directory (keys go into a directory)")
    there = [f for f in ("server.key", "server.key_secret", "client.key", "client.key_secret")
             if os.path.exists(os.path.join(directory, f))]
    if there:  # new pairs would silently lock out every machine given the old ones
        raise KeysError(f"{directory}: already holds keys ({', '.join(there)}); making new "
                        f"ones would shut out every worker given these: remove them first, "
                        f"or give another directory")
    os.makedirs(directory, exist_ok=True)
    auth = os.path.join(directory, "authorized")
    os.makedirs(auth, exist_ok=True)
    server_pub, server_sec = zmq.auth.create_certificates(directory, "server")
    client_pub, client_sec = zmq.auth.create_certificates(directory, "client")
    shutil.copy(client_pub, os.path.join(auth, "client.key"))
    for f in (server_sec, client_sec):
        os.chmod(f, 0o600)
    return {"server_public": server_pub, "server_secret": server_sec,
            "client_public": client_pub, "client_secret": client_sec, "authorized": auth}


def load_key(path: str, secret: bool) -> tuple[bytes, bytes | None]:
    """A key file's pair, with clear errors.

    Parameters
    ----------
    path:
        a key file made by ``asyncnet keys``.
    secret:
        whether it must hold the secret key.

    Returns
    -------
    ``(public, secret)`` (Z85); secret is None in a public key file.
    """
    if not os.path.exists(path):
        raise KeysError(f"{path}: no such key file (make keys with: asyncnet keys DIR)")
    try:
        pub, sec = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise KeysError(f"{path}: unreadable key file ({e})") from None
    if secret and sec is None:
        raise KeysError(f"{path}: holds no secret key")
    return pub, sec


def client_setup(sock: zmq.Socket, directory: str) -> None:
    """Make ``sock`` a CURVE client of the coordinator whose keys are in ``directory``."""
    pub, sec = load_key(os.path.join(directory, "client.key_secret"), True)
    server, _ = load_key(os.path.join(directory, "server.key"), False)
    sock.curve_publickey = pub
    sock.curve_secretkey = sec
    sock.curve_serverkey = server


def server_setup(ctx: zmq.Context, sock: zmq.Socket, directory: str) -> ThreadAuthenticator:
    """Make ``sock`` a CURVE server accepting the keys in ``directory/authorized``.

    Returns the running authenticator; stop it when the run closes.
    """
    pub, sec = load_key(os.path.join(directory, "server.key_secret"), True)
    allowed = os.path.join(directory, "authorized")
    if not os.path.isdir(allowed):
        raise KeysError(f"{allowed}: no directory of authorized client keys")
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=allowed)
    sock.curve_secretkey = sec
    sock.curve_publickey = pub
    sock.curve_server = True
    return auth
