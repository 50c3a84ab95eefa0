"""Event-log records and recordings as tables (for pandas, Arrow, CSV).

The log is streamed: :func:`log_batches` yields columns of at most
``batch_size`` records, so ``asyncnet export`` writes a log of any size with
bounded memory. :meth:`asyncnet.logfile.EventLog.to_dataframe` and
:meth:`asyncnet.runner.Result.to_dataframe` build on it. pandas and pyarrow
are the ``export`` extra; numpy is all this module needs by itself.

Columns of a log table, one row per delivered message, in the log's
(canonical) order:

=========  =========  ==============================================
column     type       meaning
=========  =========  ==============================================
time       float64    arrival time (simulated units)
kind       str        ``forward``, ``delta`` or ``control``
src        str        sending agent (``"h1"``, ``"h0->h1"``, ``"src:l0"``)
dst        str        receiving agent
t_sent     float64    sending time
delay      float64    ``time - t_sent`` (the link's delay)
seq        int64      the sender's message counter
size       int64      number of values in the payload (0: none)
value      float64    the payload's first value (NaN if none)
mean       float64    mean of the payload's values
norm       float64    Euclidean norm of the payload's values
values     list       every value, flattened (``payload="values"`` only)
=========  =========  ==============================================
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from .logcols import Payloads, read_columns
from .logformat import LogError
from .logscan import payload_value
from .messages import KIND_NAMES, QUANTA

COLUMNS = ("time", "kind", "src", "dst", "t_sent", "delay", "seq", "size", "value", "mean",
           "norm")
"""The columns of a log table (``values`` is added with ``payload="values"``)."""


TABLE_ENDINGS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
"""File endings that name a table's format."""


def table_format(path: str, format: str | None, flag: str = "format=") -> str:
    """The format to write the table ``path`` in: ``format``, else its ending's.

    Parameters
    ----------
    path:
        the table's file.
    format:
        ``"parquet"``, ``"csv"`` or ``None`` (from the ending; no ending: parquet).
    flag:
        how the caller's user gives the format (named in the errors).

    Returns
    -------
    ``"parquet"`` or ``"csv"``.

    Raises
    ------
    ValueError
        an unknown format, an ending that names the other format (a parquet
        table named ``.csv`` misleads whatever opens it), or, with no
        format, an ending that names none (``x.txt``: which was meant?).
    """
    ending = os.path.splitext(str(path))[1].lower()
    named = TABLE_ENDINGS.get(ending)
    if format is not None:
        if format not in ("parquet", "csv"):
            raise ValueError(f"format must be 'parquet' or 'csv', got {format!r}")
        if named is not None and named != format:
            raise ValueError(f"{path}: a {ending} name for a {format} table (name it "
                             f".{format}, or give {flag}{named})")
        return format
    if named is None and ending:
        raise ValueError(f"{path}: the ending {ending} names no table format (name it "
                         f".parquet or .csv, or give {flag}parquet or {flag}csv)")
    return named or "parquet"


class MissingExtra(ImportError):
    """An optional dependency (pandas, pyarrow) is not installed."""


def need(module: str, what: str) -> Any:
    """Import an optional module or raise :class:`MissingExtra` naming the extra.

    Parameters
    ----------
    module:
        ``"pandas"``, ``"pyarrow"``, ``"pyarrow.parquet"``, ...
    what:
        What needs it (for the message).

    Returns
    -------
    The imported module.
    """
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        from .outputs import extra_hint
        raise MissingExtra(f"{what} needs {module.split('.')[0]}, which is not installed: "
                           f"{extra_hint('export')}") from None


def _flat(payload: Any) -> np.ndarray:
    if payload is None:
        return np.empty(0)
    if isinstance(payload, np.ndarray):
        return payload.reshape(-1)
    if isinstance(payload, list):
        return np.asarray(payload, dtype=float)
    return np.asarray([payload], dtype=float)


def log_batches(log: Any, payload: str = "summary", batch_size: int = 65_536
                ) -> Iterator[dict[str, list]]:
    """Stream a log's records as column batches.

    Parameters
    ----------
    log:
        An :class:`~asyncnet.logfile.EventLog` (``open_log(path)``).
    payload:
        ``"summary"`` (size, first value, mean, norm) or ``"values"`` (also
        every value, flattened, in a ``values`` column).
    batch_size:
        Records per batch.

    Returns
    -------
    An iterator of ``{column: list}`` dicts (columns as in :data:`COLUMNS`).
    """
    if payload not in ("summary", "values"):
        raise ValueError(f"payload must be 'summary' or 'values', got {payload!r}")
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) \
            or batch_size < 1:  # 0 gave empty batches without end (export_log hung)
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}"[:200])
    if not hasattr(log, "records"):
        raise TypeError("log_batches needs an opened log: asyncnet.logfile.open_log(path)")
    cols = COLUMNS + (("values",) if payload == "values" else ())
    names = np.array(log.agents, dtype=object)
    pending: dict[str, list] = {c: [] for c in cols}
    for block in read_columns(log):
        try:
            got = _block_columns(block, names, payload == "values")
        except LogError as e:  # a payload decoded only here: named with its file, as the
            raise LogError(f"{log.path}: {e}") from None  # reader's errors are
        for c, v in got.items():
            pending[c] += v
        at = 0  # batches cut from the front; the rest moved once a block
        while len(pending["time"]) - at >= batch_size:
            yield {c: v[at:at + batch_size] for c, v in pending.items()}
            at += batch_size
        if at:
            pending = {c: v[at:] for c, v in pending.items()}
    if pending["time"]:
        yield pending


_KINDS = np.array(KIND_NAMES, dtype=object)
_EXACT = 2**53
"""Below this, an int64 time converts to float exactly (so ``t / QUANTA`` rounds once,
as Python's ``int / int`` does)."""


def _times(q: np.ndarray) -> list[float]:
    """Quanta as time units, each ``q / QUANTA`` correctly rounded (as Python divides)."""
    if len(q) and int(q.max()) >= _EXACT:
        return [x / QUANTA for x in q.tolist()]
    return (q.astype(np.float64) / QUANTA).tolist()


def _block_columns(block: Any, names: np.ndarray, values: bool) -> dict[str, list]:
    """One column block of the log (:func:`asyncnet.logcols.read_columns`) as table columns.

    Payloads that are floats or float64 vectors are summarised a group of
    one length at a time, with the numpy reductions a single record gets
    (the same bits: row means, and each norm a dot product); anything else
    one record at a time.
    """
    t, k, s, d, ts = block.t_arrive, block.kind, block.src, block.dst, block.t_sent
    m = len(t)
    size = np.zeros(m, dtype=np.int64)
    value, mean, norm = np.full(m, np.nan), np.full(m, np.nan), np.full(m, np.nan)
    rows: list | None = [None] * m if values else None
    done = np.zeros(m, dtype=bool)
    with np.errstate(over="ignore", invalid="ignore"):
        for idx, V in _vectors(block.payload, m):
            size[idx] = V.shape[1]
            done[idx] = True
            if V.shape[1]:
                value[idx] = V[:, 0]
                mean[idx] = V.mean(axis=1)
                norm[idx] = np.sqrt((V[:, None, :] @ V[:, :, None])[:, 0, 0])
            if rows is not None:
                for i, r in zip(idx.tolist(), V.tolist(), strict=True):
                    rows[i] = r
    for i in np.flatnonzero(~done).tolist():  # anything else: record by record
        v = _flat(payload_value(block.payload[i]))
        size[i] = v.size
        if v.size:
            value[i], mean[i], norm[i] = v[0], v.mean(), np.sqrt(v @ v)
        if rows is not None:
            rows[i] = v.tolist()
    seq = block.seq.tolist() if isinstance(block.seq, np.ndarray) else list(block.seq)
    out = {"time": _times(t), "kind": _KINDS[k].tolist(), "src": names[s].tolist(),
           "dst": names[d].tolist(), "t_sent": _times(ts), "delay": _times(t - ts),
           "seq": seq, "size": size.tolist(), "value": value.tolist(), "mean": mean.tolist(),
           "norm": norm.tolist()}
    if rows is not None:
        out["values"] = rows
    return out


_EXT_HEAD = {0xC7: 3, 0xC8: 4, 0xC9: 6}
"""ext 8/16/32: bytes before the extension's data (type code included)."""
_GATHER = 1 << 22
"""Most bytes gathered at once (bounds the index arrays' memory)."""


def _vectors(payloads: Any, m: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(records, values)`` for payloads that are floats or float64 vectors, a group
    of one length at a time (``values``: one row per record)."""
    if not isinstance(payloads, Payloads) or not m:
        return
    buf = np.frombuffer(payloads.data, dtype=np.uint8)
    lo, hi = payloads.bounds[0], payloads.bounds[1]
    first = buf[lo]
    f = np.flatnonzero((first == 0xCB) & (hi - lo == 9))  # a float64, big-endian
    if len(f):
        yield f, _gather(buf, lo[f] + 1, 8).view(">f8").astype(np.float64)
    for code, head in _EXT_HEAD.items():
        e = np.flatnonzero((first == code) & (hi - lo >= head + 5))
        if not len(e):
            continue
        ds = lo[e] + head  # the data: [ndim 1, length <u4, the values <f8]
        meta = _gather(buf, ds - 1, 6)
        n = meta[:, 2:].copy().view("<u4")[:, 0].astype(np.int64)
        ok = (meta[:, 0] == 1) & (meta[:, 1] == 1) & (hi[e] - ds == 5 + 8 * n)
        e, ds, n = e[ok], ds[ok], n[ok]
        for width in np.unique(n).tolist():
            sel = np.flatnonzero(n == width)
            step = max(1, _GATHER // max(8 * width, 1))
            for a in range(0, len(sel), step):
                part = sel[a:a + step]
                raw = _gather(buf, ds[part] + 5, 8 * width)
                yield e[part], raw.view("<f8").reshape(len(part), width)


def _gather(buf: np.ndarray, at: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` bytes at each of ``at`` (rows of a uint8 array)."""
    return buf[at[:, None] + np.arange(n)]


def log_dataframe(log: Any, payload: str = "summary") -> Any:
    """The whole log as one ``pandas.DataFrame`` (see :func:`log_batches`).

    Parameters
    ----------
    log:
        An :class:`~asyncnet.logfile.EventLog` (``open_log(path)``).
    payload:
        ``"summary"`` or ``"values"``.

    Returns
    -------
    A DataFrame with one row per record; ``kind``, ``src`` and ``dst`` are
    categoricals.
    """
    pd = need("pandas", "to_dataframe")
    frames = [pd.DataFrame(b) for b in log_batches(log, payload)]
    cols = list(COLUMNS) + (["values"] if payload == "values" else [])
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    for c in ("kind", "src", "dst"):
        df[c] = df[c].astype("category")
    return df


def recording_columns(times: np.ndarray, recorded: dict[str, dict[str, np.ndarray]]
                      ) -> dict[str, np.ndarray]:
    """Recordings as long-format columns ``time, agent, variable, index, value``.

    Parameters
    ----------
    times:
        The sample times, shape ``(samples,)``.
    recorded:
        ``{agent: {variable: array (samples, ...)}}`` (``Result.recorded``).

    Returns
    -------
    ``{column: array}``; one row per sample and scalar entry (``index`` is
    the entry's position in the flattened variable).
    """
    times = np.asarray(times, dtype=float)
    cols: dict[str, list] = {"time": [], "agent": [], "variable": [], "index": [], "value": []}
    for agent, d in recorded.items():
        for var, arr in d.items():
            if isinstance(arr, np.ndarray) and arr.dtype == object:  # its shape changed:
                # sample by sample (as one float array: "setting an array element with a
                # sequence")
                rows = [np.asarray(s, dtype=float).reshape(-1) for s in arr]
                sizes = [len(r) for r in rows]
                cols["time"].append(np.repeat(times[:len(rows)], sizes))
                cols["agent"].append(np.full(sum(sizes), agent, dtype=object))
                cols["variable"].append(np.full(sum(sizes), var, dtype=object))
                cols["index"].append(np.concatenate([np.arange(k) for k in sizes]))
                cols["value"].append(np.concatenate(rows))
                continue
            flat = np.asarray(arr, dtype=float).reshape(len(arr), -1)
            n, m = flat.shape
            cols["time"].append(np.repeat(times[:n], m))
            cols["agent"].append(np.full(n * m, agent, dtype=object))
            cols["variable"].append(np.full(n * m, var, dtype=object))
            cols["index"].append(np.tile(np.arange(m), n))
            cols["value"].append(flat.reshape(-1))
    return {k: (np.concatenate(v) if v else np.empty(0)) for k, v in cols.items()}
