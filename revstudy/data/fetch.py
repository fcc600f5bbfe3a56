"""Getting the paper's public data file into a user cache, verified, without partial files.

Every command that takes `--data` goes through `resolve_data`, so a fresh install works with
no arguments (it downloads once) while offline machines get a clear message instead of a
hang; `$REVSTUDY_DATA` names a local file once for every command. A file a config or model
records (`recorded_data`) is used only with the checksum it was recorded with.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import platformdirs

from revstudy.data.dataset import file_sha256
from revstudy.errors import DataError, RevstudyError
from revstudy.files import replaced_atomically

DEFAULT_URL = (
    "https://raw.githubusercontent.com/stefhk3/RevMolSpec/"
    "2d7156ebaa82b85c1fc25af779bc20322f27ebdf/reversibledata.csv"
)
DEFAULT_SHA256 = "bf6c1c8f01389e0682b8e2325bcd44a0444095d87b2085411b2a326f091ff3c3"
DATA_FILENAME = "reversibledata.csv"
CACHE_ENV = "REVSTUDY_CACHE_DIR"
OFFLINE_ENV = "REVSTUDY_OFFLINE"
DATA_ENV = "REVSTUDY_DATA"  # a local data file every command uses when --data is not given
TIMEOUT_S = 60.0
_CHUNK = 1 << 16


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def cache_dir() -> Path:
    """Where downloaded data lives: $REVSTUDY_CACHE_DIR, else the platform's user cache dir."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path(platformdirs.user_cache_dir("revstudy"))


def cached_data_path() -> Path:
    """Path of the cached public data file (it may not exist yet)."""
    return cache_dir() / DATA_FILENAME


def is_offline(offline: bool | None = None) -> bool:
    """An explicit argument wins; otherwise $REVSTUDY_OFFLINE=1 (or true/yes) means offline."""
    if offline is not None:
        return offline
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _offline_error(target: Path) -> RevstudyError:
    state = "damaged (sha256 differs)" if target.exists() else "not cached"
    return RevstudyError(
        f"{target}: data file {state} and offline mode is on ({OFFLINE_ENV}=1): run "
        "`revstudy data fetch` on a machine with network access (or `revstudy data fetch "
        f"--from COPY` with a copy of the public file), or pass --data FILE / set {DATA_ENV}"
    )


def fetch(
    dest: str | Path | None = None,
    *,
    url: str = DEFAULT_URL,
    sha256: str = DEFAULT_SHA256,
    offline: bool | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = _stderr,
) -> Path:
    """Download `url` into `dest` (default: the cache dir), verify its sha256, return the path.

    A file already there with the right checksum is kept. The download goes to a temporary
    name in the same directory and is renamed into place only after the checksum matches, so
    an interrupted or corrupted download never leaves a file a later run would read.
    """
    sha256 = sha256.strip().lower()
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise RevstudyError(f"sha256 {sha256!r}: expected 64 hex digits")
    folder = Path(dest) if dest is not None else cache_dir()
    target = folder / DATA_FILENAME
    if target.is_file():
        if file_sha256(target) == sha256:
            echo(f"{target}: already present, checksum verified")
            return target
        echo(f"{target}: checksum differs from the expected one; downloading again")
    if is_offline(offline):
        raise _offline_error(target)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RevstudyError(f"{folder}: cannot create directory: {e.strerror or e}") from e
    echo(f"downloading {url} -> {target}")
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{DATA_FILENAME}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _download(url, out, progress=progress)
        if digest != sha256:
            raise DataError(
                f"{url}: sha256 mismatch (expected {sha256}, got {digest}); nothing was saved"
            )
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    echo(f"{target}: checksum verified")
    return target


def install_copy(source: str | Path, *, sha256: str | None = None) -> Path:
    """Put a local copy of the public file (e.g. carried to an offline machine) into the
    cache, after checking its sha256 (default: the public file's); written under a
    temporary name and renamed, like a download."""
    sha256 = sha256 or DEFAULT_SHA256
    src = Path(source)
    if not src.is_file():
        raise DataError(f"{src}: file not found")
    found = file_sha256(src)
    if found != sha256:
        raise DataError(
            f"{src}: sha256 {found[:12]}… is not the public file's ({sha256[:12]}…); a local "
            f"file of your own is used with --data FILE or {DATA_ENV}=FILE, not cached"
        )
    target = cache_dir() / DATA_FILENAME
    with replaced_atomically(target) as tmp:
        shutil.copyfile(src, tmp)
        if file_sha256(tmp) != sha256:
            raise DataError(f"{src}: changed while it was copied; nothing was saved")
    return target


def _download(url: str, out: BinaryIO, *, progress: bool) -> str:
    """Stream `url` into the binary file `out`; return the sha256 of what was received."""
    h = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
            length_header = resp.headers.get("Content-Length")
            total = int(length_header) if length_header and length_header.isdigit() else None
            with _progress_bar(progress, total) as advance:
                while chunk := resp.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
                    advance(len(chunk))
    except urllib.error.HTTPError as e:
        raise RevstudyError(f"{url}: download failed: HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        raise RevstudyError(f"{url}: download failed: {e.reason}") from e
    except (OSError, ValueError) as e:  # timeouts, resets, IncompleteRead, bad URLs
        raise RevstudyError(f"{url}: download failed: {e or type(e).__name__}") from e
    if total is not None and received != total:
        raise RevstudyError(
            f"{url}: download interrupted after {received} of {total} bytes; nothing was saved"
        )
    return h.hexdigest()


@contextmanager
def _progress_bar(enabled: bool, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr (yields an `advance(n_bytes)`), or a no-op when disabled."""
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    columns = (TextColumn("download"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("download", total=total)
        yield lambda n: bar.advance(task, n)


def resolve_data(
    data: str | Path | None,
    *,
    offline: bool | None = None,
    echo: Callable[[str], None] = _stderr,
    url: str = DEFAULT_URL,
    sha256: str = DEFAULT_SHA256,
    progress: bool = True,
) -> Path:
    """The data file a command should read: `data` when given, else `$REVSTUDY_DATA`, else
    the public file from the cache (its sha256 checked at every use; fetched, saying so on
    stderr, when absent or damaged). A named file must exist; offline, a fetch is an error
    that says how to get the file."""
    source = "--data"
    if data is None and os.environ.get(DATA_ENV, "").strip():
        data, source = os.environ[DATA_ENV].strip(), f"${DATA_ENV}"
    if data is not None:
        p = Path(data)
        if not p.is_file():
            raise DataError(f"{p}: data file not found (from {source})")
        return p
    return public_data(offline=offline, echo=echo, url=url, sha256=sha256, progress=progress)


def public_data(
    *,
    offline: bool | None = None,
    echo: Callable[[str], None] = _stderr,
    url: str = DEFAULT_URL,
    sha256: str = DEFAULT_SHA256,
    progress: bool = True,
) -> Path:
    """The cached public file, verified by its sha256; fetched first when absent or
    damaged (a torn or edited cache is never read as data)."""
    cached = cached_data_path()
    if cached.is_file() and file_sha256(cached) == sha256:
        return cached
    if is_offline(offline):
        raise _offline_error(cached)
    if not cached.exists():
        echo(f"no data file given and {cached} is not cached yet: fetching the paper's public file")
    return fetch(url=url, sha256=sha256, offline=offline, progress=progress, echo=echo)


def recorded_data(owner: str, path: str, sha256: str) -> Path:
    """The data file that `owner` (an exported config, a model's metrics.json) records,
    used only with the checksum it was recorded with, so retraining or scoring never
    silently switches data. A recorded public file that is gone from its path is taken from
    the cache (same checksum, so the same data)."""
    p = Path(path)
    fix = "pass --data FILE (the file it was made from)"
    if p.is_file():
        found = file_sha256(p)
        if found != sha256:
            raise DataError(
                f"{owner}: records data file {path} with sha256 {sha256[:12]}…, but that file "
                f"now has {found[:12]}…; {fix}"
            )
        return p
    if sha256 == DEFAULT_SHA256:
        return public_data(url=DEFAULT_URL, sha256=sha256)
    raise DataError(
        f"{owner}: records data file {path} (sha256 {sha256[:12]}…), which is not there; {fix}"
    )
