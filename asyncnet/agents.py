"""Agent shells: the plumbing between a rule's local physics and the router.

An agent owns a *model* (the rule's neuron or synapse physics), its links
(neighbour -> delay) and its per-sender sequence counter; the messages
waiting for it are the engine's (``Engine.inbox``). It never reads another
agent.

An agent is small on purpose (a per-neuron net has one per synapse): its
slots only, its random stream made at the first draw (:class:`LazyRng`),
its links the engine's own table and its port lists shared tuples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from .api import ModelError
from .ids import is_synapse
from .messages import CONTROL, LocalityError, Message
from .network import agent_rng


class LazyRng:
    """An agent's random stream, made only when it is first used.

    Making a numpy ``Generator`` costs ~1 KB and ~20 µs; most agents of a
    per-neuron net never draw. The stream is the one :func:`agent_rng`
    gives for ``(seed, name)``, so the draws are the same as with an eager
    generator. Attribute access (``rng.uniform(...)``) forwards to it.

    Parameters
    ----------
    seed:
        the run's seed.
    name:
        the agent's name.
    """

    __slots__ = ("seed", "name", "gen")

    def __init__(self, seed: int, name: str):
        self.seed = seed
        self.name = name
        self.gen: np.random.Generator | None = None

    def get(self) -> np.random.Generator:
        """The generator, made now if it was not yet.

        Returns
        -------
        The agent's ``numpy.random.Generator``.
        """
        g = self.gen
        if g is None:
            g = self.gen = agent_rng(self.seed, self.name)
        return g

    def __getattr__(self, attr: str) -> Any:
        # only reached for names that are not slots: the Generator's methods
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(self.get(), attr)


class UnmadeRng:
    """The stream of an agent whose rule kept no proxy and drew nothing yet.

    One per engine, shared by every such agent (a synapse of a per-neuron
    net): the agent makes its :class:`LazyRng` from the seed and its name
    when the stream is first asked for — the same stream it would have had.

    Parameters
    ----------
    seed:
        the run's seed.
    """

    __slots__ = ("seed",)

    def __init__(self, seed: int):
        self.seed = seed


class Elsewhere:
    """A receiver that another partition runs (a cluster worker's view of it).

    It stands in an agent's routes where an :class:`Agent` would: its
    negative ``idx``, ``-1 - `` its index in the run's agent table, sends
    the message to the engine's ``remote``.
    """

    __slots__ = ("name", "idx")
    timer_due = None

    def __init__(self, name: str, index: int):
        self.name = name
        self.idx = -1 - index


class Outbox:
    """What an engine sends to agents other partitions run, as it sends it.

    Passed as the engine's ``remote``, it keeps each message as six integers,
    ``kind, sender, receiver, t_sent, t_arrive, seq`` (agents as indices into
    the run's agent table, times in quanta), and its payload: no
    :class:`~asyncnet.messages.Message` is made for a message that leaves,
    and a window's messages become a frame's columns in one conversion
    (:func:`asyncnet.cluster.frames.outbox_frames`).

    Parameters
    ----------
    index:
        agent name -> its index in the run's agent table (for a message
        routed by name, :meth:`__call__`).
    """

    __slots__ = ("numbers", "payloads", "index")

    def __init__(self, index: dict[str, int]):
        self.numbers: list[int] = []
        self.payloads: list[Any] = []
        self.index = index

    def __call__(self, m: Message) -> None:
        """Keep a message routed by name (``Engine.inject``'s, not the hot path)."""
        self.numbers.extend((m.kind, self.index[m.src], self.index[m.dst], m.t_sent,
                             m.t_arrive, m.seq))
        self.payloads.append(m.payload)

    def __len__(self) -> int:
        return len(self.payloads)

    def take(self) -> tuple[list[int], list[Any]]:
        """What was kept since the last take, ``(numbers, payloads)``; empty after."""
        got = self.numbers, self.payloads
        self.numbers, self.payloads = [], []
        return got


Routes = tuple[tuple[int, tuple[Any, ...], int | None], ...]
"""A port's routes: ``((delay in quanta, receivers, group key), ...)``, neighbours in
port order; the key names the receivers' group in the engine's
:class:`~asyncnet.wiring.ReceiverTable` (what a recorder expands a send to), or
is ``None`` where every receiver is another partition's (nothing to record here)."""


class Agent:
    """One neuron, synapse or source, as the engine sees it.

    ``out`` and ``inp`` are the neighbours a rule's emit on port ``"out"``
    or ``"in"`` goes to (:attr:`ports` as a table), kept as ``routes_out``
    and ``routes_in``: runs of neighbours with the same link delay, each
    neighbour its :class:`Agent` (or :class:`Elsewhere`), so that sending
    looks nothing up. ``links`` maps every neighbour to the link delay in
    quanta; sending anywhere else raises ``LocalityError``.
    ``idx`` is the agent's place in the engine's sorted ``names`` (the
    canonical order of wake-ups within an instant).

    ``timer_due`` (quanta or ``None``), ``started`` and ``seq`` are the
    agent's scheduling state, with the messages waiting for it (the engine
    keeps them: ``Engine.inbox``); ``rng`` its random stream (made at first use, and
    assignable, e.g. to restore a checkpoint).
    """

    __slots__ = ("name", "idx", "timer_due", "started", "model", "seq", "routes_out",
                 "routes_in", "links", "_rng", "send")

    def __init__(self, name: str, model: Any, links: dict[str, int],
                 rng: np.random.Generator | LazyRng | UnmadeRng, idx: int = 0):
        self.name = name
        self.idx = idx
        self.model = model
        # set by the engine once every agent exists: ((delay, receivers, key), ...)
        # per port, shared tuples (not a {port: neighbours} dict per agent)
        self.routes_out: Routes = ()
        self.routes_in: Routes = ()
        self.links = links
        self.seq = 0
        self._rng = rng
        self.timer_due: int | None = None
        self.started = False
        self.send: Callable[[Message], None] | None = None  # set by the engine

    @property
    def out(self) -> tuple[str, ...]:
        """The neighbours a rule's emit on port ``"out"`` goes to, in order."""
        return tuple(a.name for _, group, _ in self.routes_out for a in group)

    @property
    def inp(self) -> tuple[str, ...]:
        """The neighbours a rule's emit on port ``"in"`` goes to, in order."""
        return tuple(a.name for _, group, _ in self.routes_in for a in group)

    @property
    def ports(self) -> dict[str, tuple[str, ...]]:
        """Port name -> the neighbours a rule's emit on it goes to (a new table)."""
        return {"out": self.out, "in": self.inp}

    def proxy(self) -> LazyRng | np.random.Generator:
        """The agent's stream as its rule sees it: the lazy proxy, or the generator.

        Returns
        -------
        A :class:`LazyRng` (made now from the seed if the agent had none) or
        the ``numpy.random.Generator`` the agent was given.
        """
        r = self._rng
        if type(r) is UnmadeRng:
            r = self._rng = LazyRng(r.seed, self.name)
        return r

    @property
    def rng(self) -> np.random.Generator:
        """The agent's random stream (made now if it was not yet)."""
        r = self.proxy()
        return r.get() if type(r) is LazyRng else r

    @rng.setter
    def rng(self, gen: np.random.Generator) -> None:
        r = self.proxy()
        if type(r) is LazyRng:
            r.gen = gen  # the rule may hold the proxy: it must see the new stream
        else:
            self._rng = gen

    def send_to(self, now: int, dst: str, kind: int, payload: Any) -> Message:
        """Send one message to neighbour ``dst``; refuse non-neighbours.

        Parameters
        ----------
        now:
            the sending instant, in quanta.
        dst:
            the neighbour.
        kind:
            the message kind.
        payload:
            the value.

        Returns
        -------
        The message sent.
        """
        delay = self.links.get(dst)
        if delay is None:
            raise LocalityError(f"{self.name} cannot address {dst}: not a neighbour")
        self.seq += 1
        m = Message(kind, self.name, dst, now, now + delay, self.seq, payload)
        self.send(m)
        return m


class Source:
    """The physics of a data source: control values on a fixed period.

    At t = 0, p, 2p, ... it sends to its population the value the stream
    has at the instant the message will arrive (``t + delay``).
    """

    def __init__(self, value: Callable[[float], np.ndarray | None], period: float,
                 delay: float):
        self.value = value
        self.period = period
        self.delay = delay

    def start(self, t: float) -> list:
        """The first control value is sent at t = 0."""
        return self.on_timer(t)

    def react(self, t: float, batch: list) -> list:
        """Sources receive nothing."""
        return []

    def next_interval(self, rng: np.random.Generator) -> float:
        """A fixed period."""
        return self.period

    def on_timer(self, t: float) -> list:
        """Send the stream's value at arrival time, if it has one."""
        v = self.value(t + self.delay)
        return [] if v is None else [("out", CONTROL, v)]

    def state(self) -> dict:
        """Sources carry no state of their own."""
        return {}


def unknown_kind(m: Message) -> ValueError:
    """The error for a delivered message whose kind is none of the three."""
    return ValueError(f"{m.dst}: a message of unknown kind {m[0]!r} from {m.src} "
                      f"(kinds: 0 forward, 1 delta, 2 control)")


def check_model(rule: Any, name: str, model: Any) -> None:
    """Refuse what a rule's factory gave for agent ``name`` unless it is a model
    (:class:`asyncnet.api.Model`: ``react`` and ``state`` at least, its state a
    dict), naming the factory, where the run would fail at its first message
    otherwise (or, for a state that is no dict, at its end, the run lost)."""
    made = "synapse" if is_synapse(name) else "neuron"
    scheme = getattr(rule, "name", type(rule).__name__)
    if not (callable(getattr(model, "react", None)) and callable(getattr(model, "state", None))):
        raise ModelError(f"rule {scheme!r}: {made}() for {name!r} gave a "
                         f"{type(model).__name__}, not a model (one with react(t, batch) and "
                         f"state(): asyncnet.api.Model)")
    try:
        state = model.state()
    except Exception:  # a state only whole once the run began: checked where it is read
        return
    if not isinstance(state, Mapping):
        raise ModelError(f"rule {scheme!r}: the model {made}() gave for {name!r} returned a "
                         f"{type(state).__name__} from state(), not a dict ({{variable: "
                         f"value}}: asyncnet.api.Model)")


def emit_error(rule: Any, name: str, emits: Any, err: Exception) -> Exception:
    """The error for what a model of ``rule`` returned as agent ``name``'s emits when
    sending them failed with ``err``: naming the scheme, the agent and what was
    expected if the emits are no list of ``(port, kind, payload)`` triples to ``'out'``
    or ``'in'`` (an unpacking error, or a port that is neither); else ``err`` itself
    (the failure was not the emits').

    Parameters
    ----------
    rule:
        the run's scheme object.
    name:
        the agent whose model returned ``emits``.
    emits:
        what ``start``, ``react`` or ``on_timer`` returned.
    err:
        the error sending them raised.

    Returns
    -------
    The exception to raise.
    """
    scheme = getattr(rule, "name", type(rule).__name__)
    expected = "a list of (port, kind, payload) triples: asyncnet.api.Model"
    if isinstance(emits, (str, bytes, Mapping)) or not isinstance(emits, Iterable):
        return ModelError(f"rule {scheme!r}: agent {name!r}'s model returned a "
                          f"{type(emits).__name__} as its emits, not {expected}")
    for emit in emits:
        try:
            if isinstance(emit, (str, bytes)):  # 'out' unpacks into three letters
                raise TypeError(emit)
            port, _, _ = emit
        except (TypeError, ValueError):
            return ModelError(f"rule {scheme!r}: agent {name!r}'s model returned the emit "
                              f"{emit!r}"[:200] + f", not a (port, kind, payload) triple "
                              f"({expected})")
        if port not in ("out", "in"):
            return ValueError(f"{name}: an emit to port {port!r} (a model sends (port, kind, "
                              f"payload) to 'out', its outputs, or 'in', its inputs)")
    return err
