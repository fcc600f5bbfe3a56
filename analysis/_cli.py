"""The one function `revstudy report` calls, so the CLI stays a thin typer wrapper."""

from __future__ import annotations

import sys
import webbrowser
from collections.abc import Sequence
from pathlib import Path

from ._load import export_table, load_study
from ._report import write_report

__all__ = ["cli_report"]


def cli_report(
    study_path: str | Path,
    out: str | Path | None = None,
    csv: str | Path | None = None,
    parquet: str | Path | None = None,
    epochs: bool = False,
    open_browser: bool = False,
    compare: Sequence[str | Path] = (),
) -> Path | None:
    """`revstudy report STUDY [--out F] [--csv F] [--parquet F] [--epochs] [--open]`.

    With --csv/--parquet only the table is written (per trial, or per epoch with
    --epochs) and None is returned; otherwise the HTML report is written and its path
    returned (opened in the default browser with --open).
    """
    if csv is not None or parquet is not None:
        study = load_study(study_path)
        if csv is not None:
            export_table(study, csv, fmt="csv", epochs=epochs)
        if parquet is not None:
            export_table(study, parquet, fmt="parquet", epochs=epochs)
        return None
    path = write_report(study_path, out, compare=compare)
    if open_browser and not webbrowser.open(path.resolve().as_uri()):
        print(
            f"no web browser found to open it; open {path.resolve().as_uri()} in one "
            "(or copy the file: it works offline)",
            file=sys.stderr,
        )
    return path
