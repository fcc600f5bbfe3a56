"""`revstudy export | evaluate | predict | elucidate | benchmark | reference`: using a study's
results and saved models.

`register(app)` adds the commands to the main typer app. Each command's work is a library
function the Python API (`revstudy.api`) calls too; here are only the options, the printing,
progress bars and streaming. Heavy imports (torch, RDKit) happen inside the commands so
`revstudy --help` stays fast.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from revstudy.cli.common import ThreadsOption, message_console, user_errors
from revstudy.outputs import output_file

console = message_console()
ModelOpt = Annotated[Path, typer.Option("--model", help="run folder written by `revstudy train`")]


def _print_json(doc: Any, out: Path | None = None) -> None:
    from revstudy.files import json_safe, replaced_atomically

    text = json.dumps(json_safe(doc), indent=2)
    if out is not None:
        with replaced_atomically(output_file(out)) as tmp:  # checked again: it may have changed
            tmp.write_text(text + "\n")
        console.print(f"wrote {out}")
    else:
        print(text)


def export(
    study: Annotated[str, typer.Argument(help="study name under --storage, or its folder")],
    top: Annotated[int, typer.Option(min=1, help="how many best configs to write")] = 1,
    objective: Annotated[
        str | None, typer.Option(help="rank by this metric (NAME or NAME:max|min)")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="file (--top 1, default best.yaml) or folder (default best)")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(help="studies root (default ./revstudy-results, or $REVSTUDY_STORAGE)"),
    ] = None,
) -> None:
    """Write a study's best configurations as YAML that `revstudy train --config` accepts."""
    from revstudy.study.export import export_study

    res = export_study(study, top=top, objective=objective, out=out, storage=storage)
    t = Table(title=f"best of {study} by " + ", ".join(o.metric for o in res.objectives))
    for col in ("rank", "trial", "front", *[o.metric for o in res.objectives], "file"):
        t.add_column(col)
    for r, p in zip(res.ranked, res.paths, strict=True):
        vals = [f"{r.metrics.get(o.metric, float('nan')):.4g}" for o in res.objectives]
        t.add_row(str(r.rank), r.trial_id, str(r.front), *vals, str(p))
    Console(width=120).print(t)
    if len(res.ranked) < top:
        console.print(f"only {len(res.ranked)} finished trial(s): wrote {len(res.ranked)}")
    if res.unfinished:
        console.print(
            f"{res.unfinished} trial(s) were interrupted before their last epoch and are not "
            f"ranked: `revstudy resume {_study_arg(study, storage)}` finishes them",
            highlight=False,
        )


DataOpt = Annotated[
    Path | None,
    typer.Option(
        help="CSV in the paper's format (default: the file the model was trained on, else "
        "$REVSTUDY_DATA, else the cached public file)",
        show_default=False,
    ),
]


def _model_data(saved: Any, data: Path | None) -> Path:
    """The data file for a model command, saying on stderr which one when not given."""
    from revstudy.training.saved import model_data

    path, why = model_data(saved, data)
    if why is not None:
        console.print(f"data: {path} ({why})", highlight=False)
    return path


def evaluate(
    model: ModelOpt,
    data: DataOpt = None,
    split: Annotated[
        str,
        typer.Option(
            help="all rows, or the train/val/test split the model was trained with "
            "(needs its training file)"
        ),
    ] = "all",
    out: Annotated[Path | None, typer.Option(help="write the JSON here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    threads: ThreadsOption = None,
) -> None:
    """All metrics of a saved model on a data file (keys as in metrics.json's repeats)."""
    from revstudy.cli.common import paper_table
    from revstudy.data.dataset import read_dataset
    from revstudy.training.runs import aggregate
    from revstudy.training.saved import evaluate_split, load_model
    from revstudy.training.threads import set_threads

    if out is not None:
        output_file(out)  # before any work
    saved = load_model(model)
    dataset = read_dataset(_model_data(saved, data))
    line = set_threads(threads)  # once the inputs are known good: the work starts here
    if line:
        console.print(line, highlight=False)
    doc = evaluate_split(saved, dataset, split)
    n = doc["split"]["eval"]
    trained = len(saved.run.get("repeats") or []) or 1
    which = f"repeat 0 of the {trained} trained" if trained > 1 else "its only repeat"
    console.print(
        f"{split}: {n} row(s); {doc['split']['note']}. The model folder holds {which} (seed "
        f"{doc['seed']}); every repeat's validation figures are in metrics.json",
        highlight=False,
    )
    if as_json or out is not None:
        _print_json(doc, out)
    if not as_json:
        agg = aggregate([{k: v for k, v in doc.items() if isinstance(v, int | float)}])
        title = f"{dataset.path} ({split}, {n} rows), {which}"
        Console(width=110).print(paper_table(agg, title, saved.config.y_dim, runs=1))


def _warn_numbering(saved: Any) -> None:
    """One line on stderr when the model's predictions depend on the input's numbering."""
    warning = saved.numbering_warning()
    if warning:
        console.print(f"warning: {warning}", highlight=False)


def predict(
    model: ModelOpt,
    structures: Annotated[
        Path | None, typer.Option(help="CSV in the paper's format, or SMILES one per line")
    ] = None,
    smiles: Annotated[list[str] | None, typer.Option(help="a SMILES (repeatable)")] = None,
    average: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="average over this many carbon numberings (models trained with relabel)",
        ),
    ] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Predicted spectrum code (set bins with ppm ranges) of each structure.

    The structures are put in the model's atom order first, so with a model trained with
    `atom_order: canonical` every spelling of a molecule gets the same prediction."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from revstudy.elucidation import prediction
    from revstudy.training.saved import load_model

    saved = load_model(model)
    _warn_numbering(saved)
    items = prediction.structure_inputs(structures, smiles)
    prediction.check_average(saved, average)  # before the output starts
    batch = prediction.PREDICT_BATCH  # more than one batch shows a progress bar on stderr
    out = _PredictionOutput(saved, average, as_json, len(items))
    errors: list[dict[str, Any]] = []
    with Progress(
        TextColumn("predict"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True, disable=len(items) <= batch,
    ) as bar:  # fmt: skip
        task = bar.add_task("predict", total=len(items))
        for rows in prediction.prediction_batches(saved, items, average, batch):
            out.write(rows)  # bounded memory, streamed output
            errors += [r for r in rows if "error" in r]
            bar.advance(task, len(rows))
    out.close()
    for r in errors:
        print(f"error: {r['input'] or repr(r['input'])}: {r['error']}", file=sys.stderr)
    if errors:
        raise typer.Exit(2)


# more predictions than this print as tab-separated lines, not a table (a table of 100k
# rows took minutes to lay out)
TABLE_ROWS = 500


class _PredictionOutput:
    """`predict`'s output, written batch by batch: JSON (one document, streamed) or a
    table for a few structures, tab-separated lines for many."""

    def __init__(self, saved: Any, average: int, as_json: bool, n: int):
        self.as_json, self.first = as_json, True
        self.lines = not as_json and n > TABLE_ROWS
        self.rows: list[dict[str, Any]] = []
        self.y_dim = saved.config.y_dim
        if as_json:
            head = {"y_dim": self.y_dim, "atom_order": saved.config.atom_order}
            head["numberings_averaged"] = average
            print(json.dumps(head)[:-1] + ', "predictions": [', flush=True)
        elif self.lines:
            print("input\tSMILES\tset bins (ppm)")

    def write(self, rows: list[dict[str, Any]]) -> None:
        from revstudy.files import json_safe

        if self.as_json:
            for r in rows:
                sep = "" if self.first else ",\n"
                print(sep + json.dumps(json_safe(r)), end="")
                self.first = False
            sys.stdout.flush()
        elif self.lines:
            for r in rows:
                if "error" not in r:
                    print(f"{r['input']}\t{r['smiles']}\t{_ranges(r['bins'])}")
        else:
            self.rows += [r for r in rows if "error" not in r]

    def close(self) -> None:
        if self.as_json:
            print("\n]}")
        elif not self.lines and self.rows:  # none read: the errors below say why, alone
            t = Table(title=f"predicted {self.y_dim}-bit codes")
            for col in ("input", "SMILES", "set bins (ppm)"):
                t.add_column(col, overflow="fold")
            for r in self.rows:
                t.add_row(r["input"], r["smiles"], _ranges(r["bins"]) or "(none)")
            Console(width=140).print(t)


def _ranges(bins: list[dict[str, Any]]) -> str:
    return ", ".join(f"{b['ppm_low']:g}–{b['ppm_high']:g}" for b in bins)


def elucidate(
    model: ModelOpt,
    spectrum: Annotated[
        str, typer.Option(help="ppm list '12.3,45.6', a file of them, or 1024 bits")
    ],
    samples: Annotated[int, typer.Option(min=1, help="Z_free draws to invert")] = 100,
    library: Annotated[Path | None, typer.Option(help="CSV whose molecules to rank too")] = None,
    top: Annotated[int, typer.Option(min=1, help="candidates to show")] = 10,
    seed: Annotated[int, typer.Option(help="seed of the Z_free draws")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
) -> None:
    """Candidate structures for a 13C spectrum, ranked by their predicted spectra."""
    from revstudy.data.chem import require_rdkit

    require_rdkit("elucidation")
    from revstudy.elucidation.elucidate import elucidation_document, parse_query_spectrum
    from revstudy.training.saved import load_model

    bits = parse_query_spectrum(spectrum)
    saved = load_model(model)
    _warn_numbering(saved)
    doc = elucidation_document(saved, bits, samples, top, seed, library)
    if as_json:
        _print_json(doc)
        return
    con = Console(width=120)
    con.print(f"{doc['valid']}/{doc['samples']} samples decoded to valid molecules")
    sections = [("generated", doc["candidates"], True)]
    if library is not None:
        sections.append((f"library {library}", doc["library"], False))
    for title, items, counted in sections:
        t = Table(title=title)
        for col in ("rank", "SMILES", "match", *(["samples", "note"] if counted else [])):
            t.add_column(col)
        for i, c in enumerate(items, start=1):
            extra = [str(c["count"]), "strained" if c["strained"] else ""] if counted else []
            t.add_row(str(i), c["smiles"], f"{c['score']:.3f}", *extra)
        con.print(t)
    con.print(
        "match: F1 between the candidate's forward-predicted code and the query's code, a "
        f"set bit counting as found within ±1 bin ({saved.config.y_dim}-bit code); 1.000 = "
        "the same code. Equal matches are not told apart: the code cannot separate them; "
        "`samples` says how often the inverse pass proposed each one. Strained candidates "
        "(a triple bond or allene in a small ring) are ranked last and marked."
    )


def benchmark(
    model: ModelOpt,
    data: DataOpt = None,
    split: Annotated[str, typer.Option(help="the model's own split to score: val or test")] = "val",
    samples: Annotated[int, typer.Option(min=1, help="Z_free draws to invert per spectrum")] = 100,
    seed: Annotated[int, typer.Option(help="seed of the Z_free draws")] = 0,
    limit: Annotated[int | None, typer.Option(min=1, help="only the split's first N rows")] = None,
    out: Annotated[Path | None, typer.Option(help="write the JSON here")] = None,
) -> None:
    """Score elucidation on a split: generation vs library retrieval, as JSON."""
    from revstudy.data.chem import require_rdkit

    require_rdkit("the elucidation benchmark")
    from revstudy.elucidation.benchmark import elucidation_benchmark
    from revstudy.training.saved import load_model

    if out is not None:
        output_file(out)  # before any work
    saved = load_model(model)
    path = _model_data(saved, data)
    _print_json(elucidation_benchmark(saved, path, split, samples, seed, limit), out)


def reference(
    data: Annotated[str | None, typer.Option(help="CSV (default: the cached public file)")] = None,
    study: Annotated[
        str | None,
        typer.Option(
            help="a study: use its data file and write STUDY/reference.json for its report"
        ),
    ] = None,
    storage: Annotated[str | None, typer.Option(help="studies root (with --study)")] = None,
    y_dim: Annotated[int, typer.Option(help="code size to score at (the paper's: 128)")] = 128,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Score a dedicated 13C predictor (CSP5) on a data file with revstudy's metrics."""
    from revstudy.cli.common import paper_table
    from revstudy.data.dataset import check_y_dim, read_dataset
    from revstudy.data.fetch import cache_dir, resolve_data
    from revstudy.errors import RevstudyError
    from revstudy.files import write_json_atomic
    from revstudy.studyfolder import REFERENCE_FILE, find_study
    from revstudy.studyinfo import read_study
    from revstudy.training.reference import run_reference
    from revstudy.training.runs import aggregate

    check_y_dim(y_dim)
    folder = None
    if study is not None:
        folder = find_study(study, storage)
        info = read_study(folder)
        if data is None:
            if info.data is None:
                raise RevstudyError(f"{folder}: study.json records no data file; give --data")
            data = info.data.path
    dataset = read_dataset(resolve_data(data))
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("predicting 13C shifts"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("predict", total=None)
        doc = run_reference(
            dataset,
            y_dim,
            cache=cache_dir() / "reference",
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if folder is not None:
        write_json_atomic(folder / REFERENCE_FILE, doc)
        console.print(f"wrote {folder / REFERENCE_FILE} (the report shows it)")
    if as_json:
        _print_json(doc)
        return
    agg = aggregate([doc["metrics"]])
    title = f"{doc['predictor']} on {dataset.path} (all rows; {doc['caveat']})"
    Console(width=110).print(paper_table(agg, title, y_dim, runs=1))
    if doc["failed"]:
        console.print(
            f"{len(doc['failed'])} structure(s) the predictor could not predict (not scored): "
            + ", ".join(doc["failed"]),
            highlight=False,
            soft_wrap=True,
        )


def register(app: typer.Typer) -> None:
    """Add export, evaluate, predict, elucidate, benchmark and reference to `app`, with
    one-line errors."""
    for fn in (export, evaluate, predict, elucidate, benchmark, reference):
        app.command(name=fn.__name__)(user_errors()(fn))


def _study_arg(study: str, storage: str | None) -> str:
    """`study` (and its --storage) as the user typed them, quoted for a pasted command."""
    where = f" --storage {shlex.quote(storage)}" if storage else ""
    return shlex.quote(study) + where
