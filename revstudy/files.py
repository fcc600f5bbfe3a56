"""JSON files written atomically and read defensively: the record format of study, trial and
run folders (light: standard library only).

Readers treat these folders as untrusted: nothing is unpickled, and a damaged file reads as
absent (`read_json` → None) so the caller can report it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["json_safe", "read_json", "write_json_atomic"]


def write_json_atomic(path: Path, doc: Any, indent: int = 1) -> None:
    """Temp file + rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(json_safe(doc), indent=indent))
    os.replace(tmp, path)


def json_safe(obj: Any) -> Any:
    """JSON has no NaN or inf: write null instead, so any JSON reader can load the file."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or None when it is missing, unreadable, damaged or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
