"""xpnet's files: one ``.npz`` archive of plain arrays and a JSON description.

Every file xpnet writes (models, grids, estimators, checkpoints) is a NumPy
``.npz`` archive holding numeric, boolean or unicode arrays and one entry,
``__meta__``, with UTF-8 JSON bytes.  Files are read with
``allow_pickle=False``: nothing in a file is ever executed, so a file from
anywhere is as safe to open as a CSV.  Writes go to a temporary file in the
same directory, which then replaces the target in one rename, so a crash
mid-write leaves the previous file (or none), never half of one.  A new file
gets the permissions the umask gives any new file; one written over keeps the
permissions of the file it replaces.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import stat
import zipfile
import zlib
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ._exceptions import ModelFileError

#: The format version this xpnet writes, and the newest it reads.
FORMAT = 1
#: What a file can hold.
KINDS = ("model", "grid", "estimator", "checkpoint")
_META = "__meta__"
_NAME = "xpnet"


class Archive(NamedTuple):
    """A file's contents: what it holds, its description, and its arrays (NumPy)."""

    kind: str
    meta: dict
    arrays: dict[str, np.ndarray]


def write(path: str | os.PathLike, kind: str, meta: dict, arrays: dict[str, Any]) -> Path:
    """Write ``arrays`` and ``meta`` (JSON-able) to ``path`` atomically; the path written.

    The directory must exist.  An existing file at ``path`` is replaced only
    once the new one is complete.
    """
    from ._version import __version__

    if kind not in KINDS:
        raise ValueError(f"unknown file kind {kind!r}; one of {KINDS}")
    path = Path(os.fspath(path))
    header = {"format_name": _NAME, "format": FORMAT, "kind": kind, "xpnet": __version__}
    text = json.dumps({**header, **meta}, allow_nan=True, sort_keys=True)
    entries = {_META: np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
    for name, value in arrays.items():
        a = np.asarray(value)
        if a.dtype.kind not in "biufcU":  # objects would need pickle to read back
            raise TypeError(f"cannot store {name!r} of dtype {a.dtype} in an xpnet file")
        entries[name] = a
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"cannot write {path}: the directory {directory} does not exist")
    fd, temporary = _temporary(directory, path.name)
    try:
        _keep_mode(fd, path)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **entries)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:  # Ctrl-C included: never leave the temporary behind
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def _temporary(directory: Path, name: str) -> tuple[int, Path]:
    """A new file ``.<name>.<random>.tmp`` in ``directory``, open for writing: its fd and path.

    Unlike :func:`tempfile.mkstemp`, which makes every file 0600, the file is
    created with mode 0666 and the kernel takes off what the umask (or the
    directory's default ACL) says, as for any new file of the user's (and as
    ``np.savez``, ``joblib`` and ``savefig`` make theirs).  Reading the umask
    instead would need ``os.umask``, which can only be read by setting it, for
    the whole process, racing with other threads that create files.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_BINARY", 0)
    for _ in range(100):  # as mkstemp: a random name, taken only if nothing has it
        temporary = directory / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot write {directory / name}: no free temporary file name")


def _keep_mode(fd: int, path: Path) -> None:
    """Give the file open as ``fd`` the permissions of the file at ``path``, if there is one.

    So that overwriting a file (a model saved again, a checkpoint) keeps its
    permissions, as writing into it in place would.
    """
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:  # no file there yet (or none we may look at): the new file's own mode
        return
    if hasattr(os, "fchmod"):  # POSIX; on Windows a file's mode is only its read-only flag
        with contextlib.suppress(OSError):  # file systems without permissions (FAT, some CIFS)
            os.fchmod(fd, mode)


def read(
    path: str | os.PathLike, kinds: str | tuple[str, ...], *, also: tuple[str, ...] = ()
) -> Archive:
    """The archive at ``path``, which must hold one of ``kinds``, or of ``also``: kinds read
    for the caller to say why it cannot use them, and not named in the messages.

    Raises
    ------
    FileNotFoundError
        When there is no file at ``path``.
    ModelFileError
        When the file is not a complete xpnet file of a format this xpnet
        reads, or holds something other than ``kinds``.
    """
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    path = Path(os.fspath(path))
    data = path.read_bytes()  # FileNotFoundError, IsADirectoryError, PermissionError as is
    wanted = " or ".join(kinds)
    what = f"{path} is not a readable xpnet {wanted} file"
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ModelFileError(f"{what}: it is not an .npz archive (truncated, or another format)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}  # reads and checks every entry
    # RuntimeError: zipfile's NotImplementedError (a compression method, zip version or flag
    # it does not know) and its "encrypted" error, both what a flipped header bit gives
    except (
        zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError, KeyError, RuntimeError
    ) as exc:  # fmt: skip
        detail = str(exc) if len(str(exc)) < 100 else str(exc)[:100] + "..."
        raise ModelFileError(f"{what}: corrupted ({type(exc).__name__}: {detail})") from None
    if _META not in arrays:
        raise ModelFileError(f"{what}: it has no xpnet description (not written by xpnet?)")
    raw = arrays.pop(_META)
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError("the description is not a byte string")
        meta = json.loads(raw.tobytes().decode("utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("the description is not a JSON object")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{what}: its description is corrupted ({exc})") from None
    if meta.get("format_name") != _NAME:
        raise ModelFileError(f"{what}: its description is not xpnet's")
    version = meta.get("format")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{what}: its format version {version!r} is not valid")
    if version > FORMAT:
        raise ModelFileError(
            f"{path} was written by a newer xpnet ({meta.get('xpnet', '?')}, file format "
            f"{version}); this xpnet reads format {FORMAT} and older: upgrade xpnet to read it"
        )
    kind = meta.get("kind")
    if kind not in kinds and kind not in also:
        raise ModelFileError(f"{path} holds an xpnet {kind!r}, not a {wanted}")
    return Archive(kind, meta, arrays)


def require(archive: Archive, path: Any, names: list[str]) -> list[np.ndarray]:
    """The arrays ``names`` of ``archive``; a ModelFileError names any that are missing."""
    missing = [name for name in names if name not in archive.arrays]
    if missing:
        raise ModelFileError(f"{path} is incomplete: it lacks {', '.join(missing)}")
    return [archive.arrays[name] for name in names]
