"""`revstudy data …`: fetch the public file, build a CSV from nmrshiftdb2, describe a data file.

Mounted by revstudy/cli.py with `app.add_typer(data_app, name="data")`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from revstudy.cli.common import user_errors
from revstudy.errors import RevstudyError
from revstudy.outputs import output_dir, output_file

data_app = typer.Typer(
    help="Get, build and inspect data files in the paper's CSV format.",
    no_args_is_help=True,
)

DataOption = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="CSV in the paper's format (default: the cached public file, fetched if absent).",
    ),
]


@data_app.command("fetch")
def fetch_cmd(
    dest: Annotated[
        Path | None,
        typer.Option(help="Directory to store the file in (default: the user cache dir)."),
    ] = None,
    url: Annotated[str | None, typer.Option(help="Download from here instead.")] = None,
    sha256: Annotated[
        str | None, typer.Option("--sha256", help="Expected sha256 (hex) of --url.")
    ] = None,
    from_copy: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Cache this local copy of the public file instead of downloading (offline "
            "machines); its sha256 must match.",
        ),
    ] = None,
) -> None:
    """Download the paper's public CSV, verify its sha256 and print where it is."""
    from revstudy.data import fetch as fetch_mod

    with user_errors():
        if (url is None) != (sha256 is None):
            raise RevstudyError("--url and --sha256 go together: a download must be verifiable")
        if from_copy is not None:
            if url is not None or dest is not None:
                raise RevstudyError("--from caches a copy: it takes no --url or --dest")
            print(fetch_mod.install_copy(from_copy))
            return
        if dest is not None:
            output_dir(dest, "--dest")
        path = fetch_mod.fetch(
            dest,
            url=url or fetch_mod.DEFAULT_URL,
            sha256=sha256 or fetch_mod.DEFAULT_SHA256,
            progress=sys.stderr.isatty(),
        )
    print(path)


@data_app.command("build")
def build_cmd(
    sdf: Annotated[Path, typer.Option("--sdf", help="nmrshiftdb2 SD dump to read.")],
    out: Annotated[Path, typer.Option("--out", help="CSV to write.")] = Path("reversibledata.csv"),
    max_carbons: Annotated[int, typer.Option(help="Skip molecules with more carbons.")] = 17,
    elements: Annotated[
        str, typer.Option(help="Allowed elements, comma-separated (the grid encodes C only).")
    ] = "C,H",
) -> None:
    """Write the paper's CSV from an nmrshiftdb2 SD file, one row per 13C spectrum."""
    from rich.console import Console
    from rich.table import Table

    from revstudy.data.chem import build_csv_from_sdf

    with user_errors():
        output_file(out)
        report = build_csv_from_sdf(sdf, out, max_carbons=max_carbons, elements=elements.split(","))
    table = Table(title=f"{sdf} -> {out}")
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_row("SD records read", str(report.records))
    for reason, count in report.skipped.items():
        table.add_row(f"skipped: {reason}", str(count))
    table.add_row("molecules written", str(report.molecules_written))
    table.add_row("rows written (spectra)", str(report.rows_written))
    Console().print(table)


@data_app.command("info")
def info_cmd(
    path: Annotated[
        str | None, typer.Argument(help="CSV to inspect (same as --data)", show_default=False)
    ] = None,
    data: DataOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Rows, carbon counts, bond types, code densities, entropy, duplicates, suspicious rows."""
    from revstudy.data.dataset import read_dataset
    from revstudy.data.fetch import resolve_data
    from revstudy.data.info import compute_info, print_info
    from revstudy.errors import RevstudyError

    with user_errors():
        if path is not None and data is not None and path != data:
            raise RevstudyError(f"give the file once: PATH {path} or --data {data}")
        chosen = path if path is not None else data
        info = compute_info(read_dataset(resolve_data(chosen, progress=sys.stderr.isatty())))
    if as_json:
        print(json.dumps(info.as_dict(), indent=2))
    else:
        print_info(info)
