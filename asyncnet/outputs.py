"""Output paths checked before a run starts, and read-only input files decoded.

A run that cannot write its log or its saved state should say so before it
spends an hour simulating, and leave nothing behind; a scenario or cluster
file that is not UTF-8 text (an editor's Latin-1 or UTF-16, a PNG or an event
log passed by mistake) should get one line, not a ``UnicodeDecodeError``.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from typing import BinaryIO

import numpy as np

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None  # type: ignore[assignment]

_MAGIC = ((b"\x89PNG", "a PNG image"), (b"%PDF", "a PDF document"),
          (b"PK\x03\x04", "a zip archive (an .npz?)"), (b"\x93NUMPY", "a numpy array file"),
          (b"\x1f\x8b", "a gzip file"), (b"\x7fELF", "an executable"))


class OutputError(ValueError):
    """An output path cannot be written."""


def check_output(path: str, create_dirs: bool) -> None:
    """Fail now if a file cannot later be written at ``path``; create nothing.

    Parameters
    ----------
    path:
        where a log or saved state will be written.
    create_dirs:
        whether missing directories will be created (the log: like the
        default ``runs/``); if not, the directory must exist.

    Raises
    ------
    OutputError
        ``path`` is a directory, lies under a regular file, in a missing
        directory (unless ``create_dirs``), where this user cannot write, or
        holds a NUL character.
    """
    if "\0" in os.fspath(path):  # open() said "embedded null byte", in a traceback
        raise OutputError(f"{path!r}: a NUL character, which no file name can hold")
    full = os.path.abspath(path)
    if os.path.isdir(full):
        raise OutputError(f"{path}: is a directory")
    if os.path.exists(full):
        if not os.access(full, os.W_OK):
            raise OutputError(f"{path}: not writable")
        return
    d = os.path.dirname(full)
    probe = d
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise OutputError(f"{path}: {probe} is not a directory")
    if probe != d and not create_dirs:
        raise OutputError(f"{path}: directory {os.path.dirname(path) or '.'} does not exist")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: directory {probe} is not writable")


def check_apart(outputs: dict[str, str | None], inputs: dict[str, str | None]) -> None:
    """Refuse an output that is one of the inputs, or another output: writing it
    would destroy the other (``--log`` given the scenario's own path, say).

    Parameters
    ----------
    outputs, inputs:
        what each is (``"log"``, ``"scenario"``) -> its path (``None``: none).

    Raises
    ------
    OutputError
        two of them are one file (compared after resolving links, and by inode
        where they exist: a hard link is the same file under another name).
    """
    seen: dict[object, str] = {}
    for what, path in [*inputs.items(), *outputs.items()]:
        if path is None:
            continue
        key = file_identity(path)
        if key in seen:
            if what in inputs:  # two inputs: nothing is written, one was given for the other
                raise OutputError(f"{path}: given as the {what}, but it is the "
                                  f"{seen[key]}")
            raise OutputError(f"{path}: the {what} would overwrite the {seen[key]} "
                              f"(give it another path)")
        seen[key] = what


def file_identity(path: str | os.PathLike) -> object:
    """What two paths of one file have in common: the device and inode of what
    exists (a hard link has its own path but the same inode), else the path
    with its links resolved (a file still to be written).

    Parameters
    ----------
    path:
        a file's path.

    Returns
    -------
    ``(st_dev, st_ino)`` if ``path`` exists, else its real path; equal for two
    paths of the same file.
    """
    try:
        st = os.stat(path)
    except (OSError, ValueError):  # nothing there yet (or a name no file can have)
        return os.path.realpath(path)
    return (st.st_dev, st.st_ino)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name one file: through symlinks, hard links or not.

    Parameters
    ----------
    a, b:
        two paths.

    Returns
    -------
    ``True`` if writing one would change the other.
    """
    return file_identity(a) == file_identity(b)


def lock_alone(f: BinaryIO) -> None:
    """Hold an exclusive advisory lock (``flock``) on an open file while it is open.

    Two runs given one log path would interleave their bytes into a file
    neither can read, and two runs given one checkpoint directory would
    remove each other's checkpoints; the second to open the log (or the
    directory's lock file) is refused instead, before it changes a byte.
    Released when the file closes (or its process dies).

    Parameters
    ----------
    f:
        the file, open for writing and not yet cut.

    Raises
    ------
    BlockingIOError
        another process holds the lock.
    """
    if fcntl is None:  # not POSIX: unlocked
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise
    except OSError:  # a file system without locks (some network ones): unlocked, as before
        pass


def write_whole(path: str, fill: Callable[[BinaryIO], object], what: str,
                tmp: str | None = None) -> None:
    """Write ``path`` whole or not at all: into a temporary file, fsynced, renamed.

    A full disk or any other failure removes the temporary file and raises
    one error that names the file (an ``OSError`` of ``write`` names none).

    Parameters
    ----------
    path:
        the file.
    fill:
        writes the contents into the open binary file it is given.
    what:
        what the file is, for the message (``"the checkpoint"``).
    tmp:
        the temporary file (default ``path + ".tmp"``), in ``path``'s directory.

    Raises
    ------
    OutputError
        the file could not be written; ``path`` is as it was.
    """
    if not renamable(path):  # a pipe, a device (/dev/stdout): written into, as given
        try:
            with open(path, "wb") as f:
                fill(f)
        except OSError as e:
            raise OutputError(f"{path}: cannot write {what} ({e.strerror or e})") from None
        return
    target = os.path.realpath(path)  # through a symlink: the link stays, its file changes
    tmp = tmp if tmp and target == os.path.abspath(path) else target + ".tmp"
    try:
        with open(tmp, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise OutputError(f"{path}: cannot write {what} ({e.strerror or e})") from None
    fsync_dir(os.path.dirname(target))


def renamable(path: str) -> bool:
    """Whether ``path`` is written by renaming a finished file over it: a regular
    file, a link to one, or nothing yet; not a pipe or a device (``/dev/stdout``,
    which a rename would replace by a file and never feed).

    Parameters
    ----------
    path:
        an output path.

    Returns
    -------
    ``True`` unless what is at ``path`` (through links) exists and is no regular file.
    """
    try:
        mode = os.stat(path).st_mode  # through links (/dev/stdout -> /proc/self/fd/1 -> a pipe)
    except OSError:
        return True  # nothing there yet (or a link to nothing yet)
    return stat.S_ISREG(mode)


def fsync_dir(directory: str) -> None:
    """Make a rename in ``directory`` durable (where the platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_npz(path: str, arrays: dict, what: str = "the final state") -> str:
    """Save ``arrays`` as ``numpy.savez`` would, whole or not at all (:func:`write_whole`).

    Parameters
    ----------
    path:
        the file (``.npz`` is added if missing, as numpy does).
    arrays:
        name -> array.
    what:
        what the file is, for the message.

    Returns
    -------
    The file written.
    """
    out = npz_name(path)
    write_whole(out, lambda f: np.savez(f, **arrays), what)
    return out


def sidecar_path(log_path: str) -> str:
    """Where the per-worker figures of a distributed run are kept, next to its log
    (not in it: the log itself is the same bytes whatever the number of workers).

    Parameters
    ----------
    log_path:
        the event log.

    Returns
    -------
    ``LOG.cluster.json``.
    """
    return log_path + ".cluster.json"


def npz_name(path: str) -> str:
    """The file ``numpy.savez`` really writes for ``path`` (it adds ``.npz``).

    Parameters
    ----------
    path:
        the name asked for.

    Returns
    -------
    ``path`` itself if it ends in ``.npz``, else ``path + ".npz"``.

    Raises
    ------
    OutputError
        ``path`` names a directory (``runs/`` became a hidden ``runs/.npz``).
    """
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        raise OutputError(f"{path}: is a directory (give the state a file name)")
    return path if path.endswith(".npz") else path + ".npz"


def read_text(path: str, what: str = "file") -> str:
    """A UTF-8 text file's contents, or ``ValueError`` with one clear sentence.

    Parameters
    ----------
    path:
        the file.
    what:
        what the file should be ("scenario", "cluster file"), for messages.

    Returns
    -------
    The text (a UTF-8 byte-order mark is dropped).

    Raises
    ------
    OSError
        the file cannot be read.
    ValueError
        the file is not UTF-8 text; the message says what it looks like.
    """
    with open(path, "rb") as f:
        data = f.read()
    return decode_text(data, what)


def decode_text(data: bytes, what: str = "file") -> str:
    """Decode ``data`` as UTF-8 text or raise ``ValueError`` saying what it is.

    Parameters
    ----------
    data:
        the file's bytes.
    what:
        what the file should be, for the message.

    Returns
    -------
    The text (a UTF-8 byte-order mark is dropped).
    """
    for magic, name in _MAGIC:
        if data.startswith(magic):
            raise ValueError(f"this is {name}, not a {what} (a UTF-8 TOML text file)")
    if data[:1] and (0x80 <= data[0] <= 0x8f or data[0] in (0xde, 0xdf)) \
            and b"asyncnet-eventlog" in data[:64]:
        raise ValueError(f"this is an asyncnet event log, not a {what} "
                         f"(asyncnet replay/stats/inspect read logs)")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ValueError(f"this {what} is UTF-16 text (a byte-order mark); save it as UTF-8")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ValueError(f"not UTF-8 text: byte 0x{data[e.start]:02x} at offset {e.start} "
                         f"(line {line}); save the {what} as UTF-8 (Latin-1 or another "
                         f"encoding?)") from None
    if "\x00" in text:
        raise ValueError(f"a binary file (it contains NUL bytes), not a {what}")
    return text


_DISTRIBUTIONS = {"sklearn": "scikit-learn"}
"""Module -> what pip installs, where the two names differ."""


def missing_extra(err: ModuleNotFoundError, what: str, extra: str) -> str | None:
    """The message for an optional dependency that is not installed, or ``None``
    if the missing module is asyncnet's own (a broken install: not an extra's).

    Parameters
    ----------
    err:
        the failed import's error.
    what:
        what needs it (``"rule 'gradep'"``, ``"asyncnet sample"``).
    extra:
        the extra in ``pyproject.toml`` that installs it.

    Returns
    -------
    ``"<what> needs <package>, which is not installed: pip install ..."``.
    """
    top = (err.name or "").split(".")[0]
    if not top or top == "asyncnet":
        return None
    return (f"{what} needs {_DISTRIBUTIONS.get(top, top)}, which is not installed: "
            f"{extra_hint(extra)}")


def extra_hint(extra: str) -> str:
    """The command that installs an optional extra, for this installation.

    Parameters
    ----------
    extra:
        the extra's name in ``pyproject.toml`` (``plot``, ``digits``).

    Returns
    -------
    ``pip install -e 'CHECKOUT[extra]'`` when asyncnet runs from a checkout
    (``pip install 'asyncnet[extra]'`` fails there: the package is not on an
    index), else ``pip install 'asyncnet[extra]'``.
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.exists(os.path.join(root, "pyproject.toml")):
        here = os.path.relpath(root) if not os.path.relpath(root).startswith("..") else root
        return f"pip install -e '{here}[{extra}]'"
    return f"pip install 'asyncnet[{extra}]'"




def check_figure_path(out: str) -> None:
    """Refuse a figure path matplotlib cannot write (an unknown ending was its
    traceback after the figure was drawn) or that cannot be written at all.

    Parameters
    ----------
    out:
        the figure's path; its ending picks the format (none: PNG).

    Raises
    ------
    OutputError
        naming the endings matplotlib writes, or why the path cannot be written.
    """
    from matplotlib.backend_bases import FigureCanvasBase
    ext = os.path.splitext(out)[1][1:].lower()
    known = FigureCanvasBase.get_supported_filetypes()
    if ext and ext not in known:
        raise OutputError(f"{out}: matplotlib writes no .{ext} figure (endings: "
                          f"{', '.join(sorted(known))})")
    check_output(out, create_dirs=False)


__all__ = ["OutputError", "check_output", "check_apart", "file_identity", "same_file",
           "lock_alone", "write_whole",
           "renamable", "save_npz", "fsync_dir", "npz_name", "read_text", "decode_text",
           "extra_hint", "missing_extra", "check_figure_path"]
