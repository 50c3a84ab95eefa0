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

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from .messages import KIND_NAMES, QUANTA

COLUMNS = ("time", "kind", "src", "dst", "t_sent", "delay", "seq", "size", "value", "mean",
           "norm")
"""The columns of a log table (``values`` is added with ``payload="values"``)."""


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
    if not hasattr(log, "records"):
        raise TypeError("log_batches needs an opened log: asyncnet.logfile.open_log(path)")
    names = log.agents
    cols = COLUMNS + (("values",) if payload == "values" else ())

    def empty() -> dict[str, list]:
        return {c: [] for c in cols}

    batch = empty()
    for t, kind, s, d, ts, seq, p in log.records():
        v = _flat(p)
        batch["time"].append(t / QUANTA)
        batch["kind"].append(KIND_NAMES[kind])
        batch["src"].append(names[s])
        batch["dst"].append(names[d])
        batch["t_sent"].append(ts / QUANTA)
        batch["delay"].append((t - ts) / QUANTA)
        batch["seq"].append(seq)
        batch["size"].append(int(v.size))
        batch["value"].append(float(v[0]) if v.size else math.nan)
        batch["mean"].append(float(v.mean()) if v.size else math.nan)
        batch["norm"].append(float(np.sqrt(v @ v)) if v.size else math.nan)
        if payload == "values":
            batch["values"].append(v.tolist())
        if len(batch["time"]) >= batch_size:
            yield batch
            batch = empty()
    if batch["time"]:
        yield batch


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
            flat = np.asarray(arr, dtype=float).reshape(len(arr), -1)
            n, m = flat.shape
            cols["time"].append(np.repeat(times[:n], m))
            cols["agent"].append(np.full(n * m, agent, dtype=object))
            cols["variable"].append(np.full(n * m, var, dtype=object))
            cols["index"].append(np.tile(np.arange(m), n))
            cols["value"].append(flat.reshape(-1))
    return {k: (np.concatenate(v) if v else np.empty(0)) for k, v in cols.items()}
