"""``asyncnet export LOG --format parquet|csv -o FILE``: the log as a table.

One row per delivered message (time, kind, src, dst, t_sent, delay, seq and
a payload summary, or every value with ``--values``; the columns are listed
in :mod:`asyncnet.tables`). The log is streamed through ``open_log`` and
written in batches, so memory stays bounded whatever the log's size. Needs
pyarrow (the ``export`` extra).
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

from .commands import command
from .logfile import open_log
from .outputs import OutputError, check_apart, check_output, renamable
from .tables import MissingExtra, log_batches, need, table_format


def _arrow_batch(pa: Any, cols: dict[str, list], csv: bool) -> Any:
    """One column batch as a ``pyarrow.RecordBatch``."""
    arrays = {}
    for k, v in cols.items():
        if k in ("kind", "src", "dst"):
            arrays[k] = pa.array(v, pa.string())
        elif k in ("seq", "size"):
            arrays[k] = pa.array(v, pa.int64())
        elif k == "values":
            # CSV has no lists: the values as one space-separated field
            arrays[k] = (pa.array([" ".join(repr(x) for x in row) for row in v], pa.string())
                         if csv else pa.array(v, pa.list_(pa.float64())))
        else:
            arrays[k] = pa.array(v, pa.float64())
    return pa.RecordBatch.from_pydict(arrays)


def export_log(path: str, out: str, format: str | None = None, payload: str = "summary",
               batch_size: int = 65_536) -> int:
    """Write a log's records to a Parquet or CSV file, streaming.

    Parameters
    ----------
    path:
        The event log.
    out:
        The table file to write.
    format:
        ``"parquet"`` or ``"csv"``; default: from ``out``'s ending (``.parquet``/``.pq``
        or ``.csv``; none: parquet). An ending naming the other format, or none, is
        refused (as by ``asyncnet export`` and ``Result.export``).
    payload:
        ``"summary"`` or ``"values"`` (see :func:`asyncnet.tables.log_batches`).
    batch_size:
        Records per written batch.

    Returns
    -------
    The number of rows written.
    """
    if not isinstance(out, (str, os.PathLike)):  # None failed in os.stat
        raise TypeError(f"out must be a path (str or os.PathLike), got "
                        f"{type(out).__name__} {out!r}"[:200])
    # (format="parquet" by default wrote a parquet table into out="t.csv")
    format = table_format(out, format)
    # out=path overwrote the log with its own table; a directory failed inside pyarrow
    check_apart({"table": out}, {"log": path})
    check_output(os.fspath(out), create_dirs=False)
    need("pyarrow", "asyncnet export")
    need("pyarrow.parquet" if format == "parquet" else "pyarrow.csv", "asyncnet export")
    log = open_log(path)
    # written beside and renamed over ``out`` once whole (a file already there was
    # removed when the export failed or was interrupted); through a symlink, its
    # target; a pipe or a device (/dev/stdout) is written into
    whole = renamable(out)
    target = os.path.realpath(out)
    tmp = f"{target}.partial-{os.getpid()}" if whole else out

    try:
        rows = _write_table(log, tmp, format, payload, batch_size)
        if whole:
            os.replace(tmp, target)
    except BaseException:
        if whole and os.path.exists(tmp):
            os.remove(tmp)
        raise
    return rows


def _write_table(log: Any, sink: Any, format: str, payload: str, batch_size: int) -> int:
    """Write ``log``'s records into ``sink`` (a path or a binary stream); the rows written."""
    pa = need("pyarrow", "asyncnet export")
    writer_mod = need("pyarrow.parquet" if format == "parquet" else "pyarrow.csv",
                      "asyncnet export")
    writer, rows = None, 0

    def open_writer(schema: Any) -> Any:
        return (writer_mod.ParquetWriter(sink, schema) if format == "parquet"
                else writer_mod.CSVWriter(sink, schema))

    try:
        for cols in log_batches(log, payload, batch_size):
            batch = _arrow_batch(pa, cols, format == "csv")
            writer = writer or open_writer(batch.schema)
            writer.write_batch(batch)
            rows += batch.num_rows
        if writer is None:  # an empty log: a table with the columns and no rows
            batch = _arrow_batch(pa, {k: [] for k in _columns(payload)}, format == "csv")
            writer = open_writer(batch.schema)
            writer.write_batch(batch)
        writer, done = None, writer
        done.close()
    except BaseException:
        if writer is not None:
            writer.close()
        raise
    return rows


def _columns(payload: str) -> tuple[str, ...]:
    from .tables import COLUMNS
    return COLUMNS + (("values",) if payload == "values" else ())


@command("export", "write a log's records as a table (parquet or csv; the 'export' extra)")
def cmd_export(args) -> int:
    """``asyncnet export LOG --format parquet|csv -o FILE``."""
    try:
        fmt = table_format(args.output or "", args.format, "--format ")
    except ValueError as e:
        raise OutputError(str(e)) from None
    out = args.output or os.path.splitext(args.log)[0] + (".csv" if fmt == "csv"
                                                           else ".parquet")
    try:
        need("pyarrow", "asyncnet export")
    except MissingExtra as e:
        print(f"asyncnet: error: {args.log}: {e}", file=sys.stderr)
        return 2
    log = open_log(args.log)  # a bad log is an error before any output exists
    if args.output == "-":  # stdout (it wrote a file named '-')
        return _export_to_stdout(log, fmt, "values" if args.values else "summary")
    # a missing directory is refused, as by plot -o and Result.export (a typo in -o
    # made a directory tree)
    check_output(out, create_dirs=False)
    check_apart({"table": out}, {"log": args.log})
    _not_over_a_run_file(out)
    try:
        rows = export_log(args.log, out, fmt, "values" if args.values else "summary")
    except BaseException as e:  # export_log left no part of a table (and ``out`` as it was)
        if isinstance(e, BrokenPipeError):  # -o /dev/stdout | head: the reader left
            raise
        if isinstance(e, OSError) and not e.filename:  # pyarrow's: it names no file
            why = os.strerror(e.errno) if e.errno else str(e)
            raise OutputError(f"{out}: cannot write the {fmt} table ({why})") from None
        raise
    # the table itself may be going to stdout (-o /dev/stdout): the note goes to stderr then
    print(f"wrote {out} ({rows:,} rows, {fmt})",
          file=sys.stdout if renamable(out) else sys.stderr)
    return 0


def _export_to_stdout(log: Any, fmt: str, payload: str) -> int:
    """``-o -``: the table as CSV on stdout, the note on stderr; a binary table refused
    (parquet bytes on a terminal or in a text pipe are of no use to anything)."""
    if fmt != "csv":
        raise OutputError(f"-o -: a {fmt} table is binary and is not written to stdout "
                          f"(give --format csv, or -o FILE.{fmt})")
    sys.stdout.flush()
    rows = _write_table(log, sys.stdout.buffer, fmt, payload, 65_536)
    sys.stdout.buffer.flush()
    print(f"wrote stdout ({rows:,} rows, {fmt})", file=sys.stderr)
    return 0


def _not_over_a_run_file(out: str) -> None:
    """Refuse an ``-o`` that is another run's event log or a scenario file: the table
    replaced it (only the log being exported was protected)."""
    if not os.path.isfile(out):
        return
    if out.endswith(".toml"):
        raise OutputError(f"{out}: a scenario file; the table would overwrite it (give "
                          f"-o another path)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            open_log(out)
    except (ValueError, OSError):
        return  # not a log: a table of an earlier export, say
    raise OutputError(f"{out}: an event log; the table would overwrite it (give -o another "
                      f"path)")


cmd_export.configure = lambda p: (
    p.add_argument("log", help="an event log"),
    p.add_argument("--format", choices=("parquet", "csv"),
                   help="default: from -o's ending (.parquet, .pq or .csv; none: parquet)"),
    p.add_argument("-o", "--output", metavar="FILE",
                   help="default: LOG with .parquet or .csv; '-': stdout (csv only)"),
    p.add_argument("--values", action="store_true",
                   help="every payload value (a list column; space-separated in CSV), "
                        "not only size/value/mean/norm"),
)
