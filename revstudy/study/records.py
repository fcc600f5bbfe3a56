"""The study directory's tidy records, written and read without ray (see docs/study-dir.md).

Each trial writes its own files under `trials/<trial_id>/` (epochs.jsonl as it goes,
result.json and arrays.npz when it finishes, failure.json when it fails): they are the record
of truth. The driver merges them with Ray's trial states into trials.parquet/epochs.parquet.
"""

from __future__ import annotations

import json
import os
import stat
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from revstudy.files import UnsafeFileError, json_safe, read_json, read_regular, replaced_atomically
from revstudy.studyfolder import (
    EPOCHS_FILE,
    EPOCHS_TABLE,
    RESULT_FILE,
    STATE_FILE,
    TRIALS_DIR,
    TRIALS_TABLE,
    trial_dir,
    trial_entries,
)
from revstudy.trialtable import build_trials_table

__all__ = [
    "append_epochs",
    "drop_finished_checkpoints",
    "read_epochs",
    "read_jsonl",
    "refresh_tables",
    "remove_stale_temps",
    "write_parquet_atomic",
]


def append_epochs(study: Path, trial_id: str, rows: list[dict[str, Any]]) -> None:
    """Append rows with one `write` on an O_APPEND descriptor, so a kill leaves whole lines.

    A torn tail left by an older writer (no final newline) is cut off first, with a warning,
    so new rows never glue onto half a line.
    """
    path = trial_dir(study, trial_id) / EPOCHS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(json_safe(row)) + "\n" for row in rows).encode()
    try:  # never through a planted link (O_NOFOLLOW), never into a FIFO or device
        fd = os.open(
            path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644
        )
    except OSError as e:
        raise UnsafeFileError(f"{path}: not a file of this trial ({e.strerror}): refused") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeFileError(f"{path}: not a regular file: refused")
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            keep = _last_newline(fd, size)
            warnings.warn(f"{path}: cut a torn last line ({size - keep} bytes)", stacklevel=2)
            os.ftruncate(fd, keep)
        os.write(fd, data)
    finally:
        os.close(fd)


def remove_stale_temps(study: Path) -> int:
    """Remove the temporary files (`.NAME.*.tmp`, `revstudy.files.unique_temp`) a run
    killed mid-write, or stopped by a full disk, left in the study folder and its trial
    folders; call under the study lock (no other driver is writing). Links are removed as
    links. Returns how many."""
    ids, _ = trial_entries(study)
    n = 0
    for folder in [study, *(study / TRIALS_DIR / tid for tid in ids)]:
        try:
            entries = list(folder.iterdir()) if folder.is_dir() else []
        except OSError:
            continue
        for p in entries:
            if p.name.startswith(".") and p.name.endswith(".tmp") and not p.is_dir():
                p.unlink(missing_ok=True)
                n += 1
    return n


def drop_finished_checkpoints(study: Path) -> int:
    """Remove the checkpoint of every trial that has its result (it is never needed again).
    The driver removes it as a trial ends; one is left when a driver died between telling
    Optuna and removing it, and no later run would touch that trial. Returns how many."""
    n = 0
    ids, _ = trial_entries(study)  # never through a linked folder
    for ckpt in [study / TRIALS_DIR / tid / STATE_FILE for tid in ids]:
        if not ckpt.is_file() or ckpt.is_symlink():
            continue
        result = read_json(ckpt.parent / RESULT_FILE)
        if result is not None and isinstance(result.get("report"), dict):
            ckpt.unlink(missing_ok=True)
            n += 1
    return n


def _last_newline(fd: int, size: int) -> int:
    """Offset just past the file's last newline (0 if none)."""
    pos = size
    while pos > 0:
        start = max(0, pos - 65536)
        chunk = os.pread(fd, pos - start, start)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        pos = start
    return 0


# epochs.jsonl: one line per repeat and epoch (~2 KB); far beyond any real trial
JSONL_LIMIT = 256 * 2**20


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file; a damaged line (a torn last line after a kill) is skipped
    with a warning that names the file and line, never silently. A file that is not a
    regular one of bounded size (a link, FIFO, /dev/zero) gives no rows and a warning."""
    rows: list[dict[str, Any]] = []
    try:
        text = read_regular(path, JSONL_LIMIT).decode(errors="replace")
    except (OSError, UnsafeFileError) as e:
        warnings.warn(f"{path}: not read ({e})", stacklevel=2)
        return rows
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict):
            warnings.warn(f"{path}:{n}: skipped a damaged line", stacklevel=2)
            continue
        rows.append(row)
    return rows


def read_epochs(study: Path) -> pd.DataFrame:
    """All trials' epoch rows; a resumed trial's repeated epochs keep their last record."""
    frames = []
    ids, _ = trial_entries(study)
    for path in [study / TRIALS_DIR / tid / EPOCHS_FILE for tid in ids]:
        if not path.exists():
            continue
        rows = read_jsonl(path)
        if rows:
            df = pd.DataFrame(rows)
            df.insert(0, "trial_id", path.parent.name)
            frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["trial_id", "repeat", "epoch"])
    df = pd.concat(frames, ignore_index=True)
    df = df.drop_duplicates(["trial_id", "repeat", "epoch"], keep="last")
    return df.sort_values(["trial_id", "repeat", "epoch"]).reset_index(drop=True)


def write_parquet_atomic(df: pd.DataFrame, path: Path) -> None:
    with replaced_atomically(path) as tmp:
        df.to_parquet(tmp, index=False)


def refresh_tables(study: Path, ray_states: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Rewrite trials.parquet and epochs.parquet atomically; return the trials table."""
    trials = build_trials_table(study, ray_states)
    write_parquet_atomic(trials, study / TRIALS_TABLE)
    write_parquet_atomic(read_epochs(study), study / EPOCHS_TABLE)
    return trials
