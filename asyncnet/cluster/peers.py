"""Worker-to-worker messages over ZeroMQ: no relay through the coordinator.

Every worker binds one ROUTER socket for what its neighbours send it (its
*peer endpoint*, given to the coordinator in HELLO and to every worker in
INIT) and connects one DEALER to each neighbouring partition. After each
window a worker sends every neighbour exactly one frame (empty if nothing
crossed), headed by the run's nonce, its partition and the window's number;
before the next window it waits until it has that window's frame from every
neighbour. Frames of a later window (a quick neighbour) wait in a buffer.

With CURVE keys the peer sockets use the workers' own key pair (every
worker holds ``client.key_secret``): a worker's ROUTER is a CURVE server
that accepts only that public key, so peers are as authenticated and
encrypted as the coordinator's link. Frames with another run's nonce are
dropped: a stranger cannot inject messages into a run.
"""

from __future__ import annotations

import socket
import struct

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from .security import load_key
from .sockets import NOBLOCK, recv_frames, send_frames
from .wire import WireError

_HEAD = struct.Struct("<8sIq")  # nonce, sender's partition, window


def local_address(endpoint: str) -> str:
    """The address of this machine that reaches the host of an endpoint.

    Parameters
    ----------
    endpoint:
        ``tcp://HOST:PORT`` (the coordinator's).

    Returns
    -------
    The local address on the route to HOST: where workers on the same
    network can reach us (127.0.0.1 for a local coordinator).
    """
    host = endpoint.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    if host in ("127.0.0.1", "localhost", "::1"):
        return "127.0.0.1" if host != "::1" else "::1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((host, 9))  # no packet is sent: this only picks a route
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"


class _OnlyKey:
    """ZAP credentials: accept one CURVE public key (the workers' own)."""

    def __init__(self, public: bytes):
        self.public = public  # Z85, as zmq.auth.load_certificate gives it

    def callback(self, domain: str, key: bytes) -> bool:
        """Whether the client with Z85 public ``key`` may connect (any domain)."""
        return key == self.public


class PeerNet:
    """A worker's sockets to its neighbouring partitions (see the module docstring).

    Parameters
    ----------
    ctx:
        The worker's ZeroMQ context.
    host:
        The address to listen on (reachable by the other workers).
    keys:
        A CURVE key directory, or None for plain TCP.
    """

    def __init__(self, ctx: zmq.Context, host: str, keys: str | None = None):
        self.ctx = ctx
        self.keys = keys
        self.auth: ThreadAuthenticator | None = None
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.out: dict[int, zmq.Socket] = {}
        self.buffer: dict[int, dict[int, bytes]] = {}
        self.nonce = b"\0" * 8
        self.part = -1
        try:
            if keys:
                pub, sec = load_key(f"{keys}/client.key_secret", True)
                self.auth = ThreadAuthenticator(ctx)
                self.auth.start()
                self.auth.configure_curve_callback("*", _OnlyKey(pub))
                self.sock.curve_publickey, self.sock.curve_secretkey = pub, sec
                self.sock.curve_server = True
                self._pair = (pub, sec)
            addr = f"[{host}]" if ":" in host else host
            self.sock.bind_to_random_port(f"tcp://{addr}")
            self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        except BaseException:
            self.close()
            raise

    def connect(self, part: int, nonce: bytes, endpoints: dict[int, str]) -> None:
        """Connect to the neighbouring partitions.

        Parameters
        ----------
        part:
            this worker's partition.
        nonce:
            the run's 8 random bytes (frames without them are dropped).
        endpoints:
            ``{partition: peer endpoint}`` of every neighbour.
        """
        self.part, self.nonce = part, nonce
        for p, ep in sorted(endpoints.items()):
            s = self.ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.IDENTITY, f"p{part}".encode())
            if self.keys:
                pub, sec = self._pair
                s.curve_publickey, s.curve_secretkey, s.curve_serverkey = pub, sec, pub
            s.connect(ep)
            self.out[p] = s

    def send(self, window: int, frames: dict[int, bytes]) -> None:
        """Send each neighbour its frame of a window.

        Parameters
        ----------
        window:
            the window's number.
        frames:
            ``{partition: frame}``, one for every neighbour.
        """
        for p, frame in frames.items():
            send_frames(self.out[p], [_HEAD.pack(self.nonce, self.part, window), frame],
                        copy=False)

    def take(self, window: int, peers: list[int]) -> list[bytes] | None:
        """Read what has arrived, and hand out a window's frames once complete.

        Parameters
        ----------
        window:
            the window whose frames are wanted.
        peers:
            the neighbouring partitions, in order.

        Returns
        -------
        Their frames of ``window`` in the order of ``peers``, or None while
        some are missing.
        """
        while True:
            try:
                msg = recv_frames(self.sock, NOBLOCK)
            except zmq.Again:
                break
            if len(msg) != 3 or len(msg[1]) != _HEAD.size:
                raise WireError("malformed frame from a peer worker")
            nonce, p, w = _HEAD.unpack(msg[1])
            if nonce != self.nonce:
                continue  # not of this run
            if p not in self.out or w < window or p in self.buffer.get(w, {}):
                raise WireError(f"peer worker {p} sent an unexpected frame (window {w})")
            self.buffer.setdefault(w, {})[p] = msg[2]
        got = self.buffer.get(window, {})
        if len(got) < len(peers):
            return None
        del self.buffer[window]
        return [got[p] for p in peers]

    def close(self) -> None:
        """Close every socket (and stop the authenticator)."""
        for s in self.out.values():
            s.close(0)
        self.out = {}
        if self.sock is not None:
            self.sock.close(0)
            self.sock = None
        if self.auth is not None:
            self.auth.stop()
            self.auth = None
