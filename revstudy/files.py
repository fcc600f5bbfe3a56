"""JSON files written atomically and read defensively: the record format of study, trial and
run folders (light: standard library only).

Readers treat these folders as untrusted: nothing is unpickled, and a damaged file reads as
absent (`read_json` → None) so the caller can report it. A folder's own files are read only
when they are regular files of bounded size, opened without following a symbolic link
(`read_regular`): a link planted in a copied folder must not make revstudy read /dev/zero,
block on a FIFO, or read or write some other file. Temporary files get unique names created
exclusively (`unique_temp`), so a link planted under a predictable name is never written
through.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from revstudy.errors import RevstudyError

__all__ = [
    "ARRAYS_LIMIT",
    "JSON_LIMIT",
    "TABLE_LIMIT",
    "UnsafeFileError",
    "json_safe",
    "read_json",
    "read_regular",
    "read_text",
    "regular_file",
    "replaced_atomically",
    "unique_temp",
    "write_json_atomic",
]

# The largest JSON record a folder holds legitimately is a study's result.json (a few
# hundred KB with per-epoch histories); anything far larger is not a record of ours
JSON_LIMIT = 64 * 2**20
# a study's parquet tables: ~1 KB per trial and ~2 KB per trial epoch
TABLE_LIMIT = 2**30
# a trial's arrays.npz: per-sample arrays of its evaluation, a few MB
ARRAYS_LIMIT = 2**30


class UnsafeFileError(RevstudyError):
    """A folder entry that is not a regular file (a link, FIFO, device), or is too large."""


def regular_file(path: Path, limit: int) -> os.stat_result:
    """The stat of `path` if it is a regular file (not a link to one) of at most `limit`
    bytes; UnsafeFileError naming what it is otherwise, FileNotFoundError if absent."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeFileError(f"{path}: a symbolic link, not a file of this folder: refused")
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFileError(f"{path}: not a regular file (a FIFO, device or folder): refused")
    if st.st_size > limit:
        raise UnsafeFileError(f"{path}: {st.st_size} bytes, over the {limit} a record may have")
    return st


def check_inflation(path: Path, limit: int, what: str) -> None:
    """Refuse, before anything inflates it, a zip whose entries would inflate past `limit`
    bytes (a zip bomb: 1.9 MB on disk made 2.4 GB in memory); `what` names what the file
    should be. A file that is not a zip passes: its own reader refuses it. Python's zipfile
    stops each entry at its declared size, so the declared sizes bound the memory."""
    try:
        with zipfile.ZipFile(path) as z:
            total = sum(i.file_size for i in z.infolist())
    except zipfile.BadZipFile:
        return
    if total > limit:
        raise UnsafeFileError(
            f"{path}: would inflate to {total / 2**30:.1f} GiB, over the "
            f"{limit / 2**30:.0f} GiB {what} may hold: refused"
        )


def read_regular(path: Path, limit: int = JSON_LIMIT) -> bytes:
    """The bytes of `path`, a regular file of at most `limit` bytes, opened without following
    a link and without blocking (a FIFO swapped in after the check is refused, not waited
    on)."""
    regular_file(path, limit)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)  # the file actually opened
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFileError(f"{path}: not a regular file: refused")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise UnsafeFileError(f"{path}: over the {limit} bytes a record may have")
    return data


@contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """A fresh temporary path beside `path` (`unique_temp`) to write; on leaving the block
    it replaces `path` in one rename (a link at `path` itself is replaced, never written
    through), or, when the block raised (a kill, a full disk), is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = unique_temp(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.filename is None:  # a write error (a full disk) names no file: name ours
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def unique_temp(path: Path) -> Path:
    """A new, empty temporary file beside `path` (created exclusively, so never a planted
    link), for writing `path` atomically with `os.replace`."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes it private (0600); the record it becomes is shared like the rest of
        # the folder (colleagues report on and continue a study): the umask decides
        os.fchmod(fd, 0o666 & ~UMASK)
    finally:
        os.close(fd)
    return Path(name)


def _umask() -> int:
    """This process's umask: read by setting it and setting it back, once, at import (a
    worker's threads must not see it change while they create files)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _umask()


def write_json_atomic(path: Path, doc: Any, indent: int = 1) -> None:
    """Temp file + rename, so readers never see half a file; the rename replaces a link
    at `path` itself, never the file it points to."""
    with replaced_atomically(path) as tmp:
        tmp.write_text(json.dumps(json_safe(doc), indent=indent))


def json_safe(obj: Any) -> Any:
    """JSON has no NaN or inf: write null instead, so any JSON reader can load the file."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def read_text(path: Path) -> str:
    """A user's text file (SMILES, structures, a spectrum) as UTF-8, a byte-order mark
    dropped; one line naming the file and the first byte that is not UTF-8 otherwise."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise RevstudyError(f"{path}: cannot read it ({e.strerror or type(e).__name__})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise RevstudyError(
            f"{path}: not UTF-8 text (byte {data[e.start]:#04x} at offset {e.start}); "
            "save it as UTF-8"
        ) from None


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or None when it is missing, unreadable, damaged, not an object,
    or not a regular file of at most `JSON_LIMIT` bytes (a link, FIFO or device)."""
    try:
        data = json.loads(read_regular(path))
    except (OSError, ValueError, UnsafeFileError):
        return None
    return data if isinstance(data, dict) else None
