"""Reading an event log: streamed, checked, with bounded memory.

:func:`open_log` is the one entry point every log tool uses (``replay``,
``stats``, ``inspect``, ``plot``, ``waves``): it reads and checks the header
(and its digest) now, and streams the records on demand. It knows nothing of
scenarios (``asyncnet.logtools.scenario_of`` turns the header's text into
one). See :mod:`asyncnet.eventlog` for the layout and the digest.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import Any

import msgpack
import numpy as np

from . import logformat as fmt
from .logformat import (
    _DIGEST_LEN,
    FORMAT,
    HEADER_KEYS,
    VERSION,
    LogError,
    _new_hash,
    _packer,
)
from .logscan import read_chunks, unpacker
from .messages import QUANTA, Message, decode_ext


def _unpacker() -> msgpack.Unpacker:
    return unpacker(decode_ext)


def _is_int(x: Any) -> bool:
    return type(x) is int


def _payload_ok(p: Any) -> bool:
    if p is None or type(p) in (int, float):
        return True
    if type(p) is np.ndarray:
        return True
    if type(p) is list:  # a tuple payload travels as an array of numbers
        return len(p) <= 1_000_000 and all(type(x) in (int, float) for x in p)
    return False


class EventLog:
    """A log read back, streamed and checked: header, records, checkpoints, footer.

    Opening reads and checks the header only. ``raw()`` (and ``records()``,
    ``messages()``) stream the records in file order, checking each record's
    types and ranges and every checkpoint's digest; when the stream ends the
    attributes ``count``, ``verified_count``, ``footer``, ``complete``,
    ``interrupted``, ``truncated``, ``altered`` and ``verified`` describe the
    whole file (until then they describe what was read: ``count`` is 0 after
    opening; ``scan()`` reads it all).

    With ``strict`` (the default) a digest that does not match raises
    :class:`LogError` where it is found; otherwise it is noted in ``altered``
    and reading goes on (``replay`` and ``inspect`` report it with their
    findings). Malformed content always raises :class:`LogError`.
    """

    def __init__(self, path: str | os.PathLike, strict: bool = True):
        if not isinstance(path, (str, os.PathLike)):  # os.fspath's own message names no path
            raise TypeError(f"an event log's path must be a str or os.PathLike, got "
                            f"{type(path).__name__} {path!r}"[:200])
        self.path = os.fspath(path)
        self.strict = strict
        if os.path.isdir(self.path):
            raise LogError(f"{self.path}: is a directory, not an event log")
        if not os.path.exists(self.path):
            raise LogError(f"{self.path}: no such file")
        self.size = os.path.getsize(self.path)
        self.footer: dict | None = None
        self.checkpoints: list[dict] = []
        self.truncated = False
        self.altered: str | None = None
        self.count = 0
        self.verified_count = 0
        self.tail_bytes = 0
        self._done = False
        got = []
        for item in self._items(header_only=True):
            got.append(item)
            if len(got) == 1:
                self._check_version(got[0][0])
            if len(got) == 2:
                break
        if len(got) < 2:
            raise self._fail("empty or truncated before the header's digest")
        (head, _, hb), (seal, pos, sb) = got
        if not isinstance(seal, dict) or seal.get("checkpoint") != 0 or seal.get("t") != 0:
            raise self._fail("the header is not followed by its digest")
        strict, self.strict = self.strict, True
        try:
            h = _new_hash()
            h.update(hb)
            self._check_sealed(seal, sb, h, pos, {"checkpoint", "t", "digest"})
        except LogError:
            raise self._fail("the header was altered (its digest does not match)") from None
        finally:
            self.strict = strict
        # its keys only now: a flipped bit in one reads "altered", not "lacks key"
        self._check_header(head)
        self.header = head
        self.agents: list[str] = list(self.header["agents"])
        self.scenario_text: str = self.header["scenario"]

    @property
    def complete(self) -> bool:
        """The run reached its end and its footer was read (after a full read)."""
        return self.footer is not None and self.footer.get("complete", True) is True

    @property
    def interrupted(self) -> bool:
        """The run stopped early and closed its log as a prefix (footer says so)."""
        return self.footer is not None and self.footer.get("complete", True) is False

    @property
    def verified(self) -> bool:
        """Every byte read is covered by a matching digest (after a full read)."""
        return self._done and self.altered is None and self.footer is not None \
            and not self.truncated

    def _fail(self, what: str) -> LogError:
        return LogError(f"{self.path}: {what}")

    def _check_version(self, head: Any) -> None:
        if not isinstance(head, dict) or head.get("format") != FORMAT:
            raise self._fail("not an asyncnet event log")
        v = head.get("version")
        if v != VERSION:
            why = (" (version 1 logs have no digest over the header; re-run the scenario "
                   "to get a version 2 log)" if v == 1 else "")
            raise self._fail(f"log format version {v!r} is not supported: this asyncnet "
                             f"reads version {VERSION}{why}")

    def _check_header(self, head: dict) -> None:
        for k, t in HEADER_KEYS.items():
            if k not in head:
                raise self._fail(f"the header lacks key {k!r}")
            if not isinstance(head[k], t) or isinstance(head[k], bool):
                raise self._fail(f"the header's {k!r} has the wrong type "
                                 f"({type(head[k]).__name__})")
        if head["quanta"] != QUANTA:
            raise self._fail(f"the header's quanta is {head['quanta']}, not {QUANTA}")
        agents = head["agents"]
        if not agents or not all(isinstance(a, str) for a in agents) \
                or len(set(agents)) != len(agents):
            raise self._fail("the header's agent table is not a list of distinct names")

    def _items(self, header_only: bool = False) -> Iterator[tuple[Any, int, bytes]]:
        """``(object, start offset, raw bytes)`` of every item, streamed."""
        up = _unpacker()
        buf = bytearray()
        base = pos = 0
        with open(self.path, "rb") as f:
            while True:
                chunk = f.read(8192 if header_only else fmt.CHUNK)
                try:
                    if chunk:
                        up.feed(chunk)
                        buf += chunk
                    while True:
                        try:
                            obj = next(up)
                        except StopIteration:
                            break
                        end = up.tell()
                        yield obj, pos, bytes(buf[pos - base:end - base])
                        pos = end
                except LogError:
                    raise
                except Exception as e:  # msgpack raises several types: all mean corrupt
                    raise self._fail(f"corrupt at byte {pos}, after {self.count} records "
                                     f"({type(e).__name__}: {e})") from None
                del buf[:pos - base]
                base = pos
                if not chunk:
                    break
        self.tail_bytes = base + len(buf) - pos

    def raw(self) -> Iterator[tuple[list, bytes]]:
        """Yield ``(record, packed bytes)`` for every record, in file order.

        Each record is checked (seven fields, integer times and indices in
        range, canonical order, a numeric payload); each checkpoint and the
        footer against the hash of every byte before them. Memory stays
        bounded (the file is read in ``CHUNK``-byte pieces).

        Returns
        -------
        An iterator of ``([t_arrive, kind, src, dst, t_sent, seq, payload],
        bytes)``; raises :class:`LogError` at malformed content (and, when
        ``strict``, at a digest that does not match).
        """
        self.count = self.verified_count = 0
        self.footer, self.checkpoints, self.altered, self.truncated = None, [], None, False
        self._done = False
        h = _new_hash()
        n = 0
        n_agents = len(self.agents)
        by_kind = [0, 0, 0]
        prev: tuple | None = None
        first = True
        for obj, pos, b in self._items():
            if first:
                first = False
                h.update(b)
                continue
            if self.footer is not None:
                raise self._fail(f"unexpected item after the footer at byte {pos}")
            if type(obj) is list:
                if len(obj) != 7:
                    raise self._fail(f"record {n} at byte {pos} is malformed "
                                     f"({len(obj)} fields, not 7)")
                t, kind, s, d, ts, seq, payload = obj
                if not (_is_int(t) and _is_int(kind) and _is_int(s) and _is_int(d)
                        and _is_int(ts) and _is_int(seq)):
                    raise self._fail(f"record {n} at byte {pos} is malformed (a time, "
                                     f"kind, index or seq is not an integer)")
                if not (0 <= kind <= 2 and 0 <= s < n_agents and 0 <= d < n_agents):
                    raise self._fail(f"record {n} at byte {pos}: kind or agent index out "
                                     f"of range ({n_agents} agents)")
                if not 0 <= ts < t or seq < 0:
                    raise self._fail(f"record {n} at byte {pos}: impossible times "
                                     f"(sent {ts}, arrives {t}) or seq {seq}")
                if not _payload_ok(payload):
                    raise self._fail(f"record {n} at byte {pos}: payload of type "
                                     f"{type(payload).__name__} is not a number or array")
                key = (t, d, kind, s, seq)
                if prev is not None and key < prev:
                    raise self._fail(f"record {n} at byte {pos} is out of canonical order")
                prev = key
                h.update(b)
                n += 1
                self.count = n
                by_kind[kind] += 1
                yield obj, b
            elif isinstance(obj, dict) and "checkpoint" in obj:
                self._check_sealed(obj, b, h, pos, {"checkpoint", "t", "digest"})
                if obj["checkpoint"] != n or (prev is not None and obj["t"] != prev[0]):
                    self._altered(f"the checkpoint at byte {pos} does not match the {n} "
                                  f"records before it (the log was altered)")
                if self.altered is None:
                    self.verified_count = n
                if obj["checkpoint"] or self.checkpoints or n:  # not the header's seal
                    self.checkpoints.append(obj)
                h.update(b)
            elif isinstance(obj, dict) and obj.get("footer") is True:
                self._check_sealed(obj, b, h, pos, None)
                if obj.get("count") != n or obj.get("by_kind") != by_kind:
                    self._altered(f"the footer's counts do not match the {n} records "
                                  f"(the log was altered)")
                if self.altered is None:
                    self.verified_count = n
                self.footer = obj
                h.update(b)
            else:
                raise self._fail(f"unexpected item at byte {pos} (after {n} records)")
        self._finish(not first, n)

    def _finish(self, header_seen: bool, n: int) -> None:
        """End a full read: refuse what cannot be a log, flag a truncated one."""
        if not header_seen:
            raise self._fail("empty or truncated before the header")
        if self.footer is not None and self.tail_bytes:
            raise self._fail(f"{self.tail_bytes} unexpected bytes after the footer")
        self._done = True
        if self.tail_bytes or self.footer is None:
            self.truncated = True
            loose = n - self.verified_count
            # (none loose: every whole record lies before a digest; saying "the last 0" reads
            # as if something were missing)
            tail = f"; the last {loose:,} are not covered by a digest" if loose else \
                "; every one is covered by a digest"
            warnings.warn(f"{self.path}: truncated after {n:,} whole records "
                          f"({self.tail_bytes} trailing bytes); read up to there{tail}",
                          stacklevel=3)

    def _altered(self, what: str) -> None:
        if self.strict:
            raise self._fail(what)
        if self.altered is None:
            self.altered = what

    def _check_sealed(self, obj: dict, b: bytes, h: Any, pos: int,
                      keys: set[str] | None) -> None:
        what = "checkpoint" if keys else "footer"
        digest = obj.get("digest")
        if (keys is not None and set(obj) != keys) or not isinstance(digest, str) \
                or list(obj)[-1] != "digest" or len(digest) != 32:
            raise self._fail(f"the {what} at byte {pos} is malformed")
        if keys is not None and not (_is_int(obj["checkpoint"]) and _is_int(obj["t"])):
            raise self._fail(f"the {what} at byte {pos} is malformed")
        h2 = h.copy()
        h2.update(b[:-_DIGEST_LEN])
        if b[-_DIGEST_LEN:] != _packer().pack(digest) or h2.hexdigest() != digest:
            self._altered(f"the {what} at byte {pos} does not match the digest of the "
                          f"{self.count:,} records and the header before it (the log was "
                          f"altered)")

    def records(self) -> Iterator[list]:
        """Every record, in file order, with the checks of :meth:`raw`.

        Returns
        -------
        An iterator of ``[t_arrive, kind, src, dst, t_sent, seq, payload]``.
        """
        for chunk in self.chunks():
            yield from chunk

    def messages(self) -> Iterator[Message]:
        """Every record as a ``Message`` with agent names (see :meth:`raw`).

        Returns
        -------
        An iterator of :class:`~asyncnet.messages.Message`.
        """
        names = self.agents
        for chunk in self.chunks():
            for r in chunk:
                yield Message(r[1], names[r[2]], names[r[3]], r[4], r[0], r[5], r[6])

    def scan(self) -> EventLog:
        """Read the whole log once, checking it (see :meth:`raw`).

        Returns
        -------
        ``self``, with ``footer``, ``complete``, ``truncated``, ``altered``
        and ``verified`` set.
        """
        for _ in self.chunks(lazy=True):
            pass
        return self

    def chunks(self, lazy: bool = False) -> Iterator[list[list]]:
        """The records in file order, a list per piece of the file read.

        The same checks as :meth:`raw` (each record; each checkpoint and the
        footer against the digest), but the bytes are hashed a piece at a
        time and no record's bytes are copied: the fast way through a log.

        Parameters
        ----------
        lazy:
            leave array payloads encoded: such a payload is ``slice(code,
            bytes)``, :func:`asyncnet.logscan.payload_value` decodes (and
            checks) it. For readers that look at few payloads (``stats``).

        Returns
        -------
        An iterator of lists of records ``[t_arrive, kind, src, dst, t_sent,
        seq, payload]``.
        """
        return read_chunks(self, lazy)

    def to_dataframe(self, payload: str = "summary") -> Any:
        """Every record as a ``pandas.DataFrame``, one row per message.

        Needs the ``export`` extra (pandas). The log is read (and checked)
        once; for a log too large for memory use ``asyncnet export`` or
        :func:`asyncnet.tables.log_batches`, which stream.

        Parameters
        ----------
        payload:
            ``"summary"``: the payload's size, first value, mean and norm;
            ``"values"``: also every value, flattened, in a ``values`` column.

        Returns
        -------
        A DataFrame with the columns ``time, kind, src, dst, t_sent, delay,
        seq, size, value, mean, norm`` (see :mod:`asyncnet.tables`).
        """
        from .tables import log_dataframe
        return log_dataframe(self, payload)

    def verify_digest(self) -> tuple[bool, int]:
        """Read everything, noting (not raising) a digest that does not match.

        Returns
        -------
        ``(verified, records)``: whether every digest matched and the footer
        was found, and the number of records read.
        """
        strict, self.strict = self.strict, False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.scan()
        finally:
            self.strict = strict
        return self.verified, self.count


def open_log(path: str | os.PathLike, strict: bool = True) -> EventLog:
    """Open an event log: read and check its header; records stream on demand.

    Parameters
    ----------
    path:
        the log file.
    strict:
        raise :class:`LogError` at the first digest that does not match
        (``stats``); if false, note it in ``altered`` and read on
        (``replay --verify``, ``inspect``, which report it with their results).

    Returns
    -------
    An :class:`EventLog`: ``header``, ``agents``, ``scenario_text`` now;
    ``raw()``, ``records()``, ``messages()`` stream and check the records and
    leave ``footer``, ``checkpoints``, ``complete``, ``interrupted``,
    ``truncated``, ``altered`` and ``verified`` set at the end.

    Raises
    ------
    LogError
        the file is missing, not an event log, of another format version, or
        its header is malformed.
    """
    return EventLog(path, strict=strict)
