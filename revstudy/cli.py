"""The `revstudy` command line: thin wrappers that parse, call the library and print.

Every user error (`RevstudyError`) becomes one `error: …` line on stderr and a non-zero exit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from revstudy.cli_common import user_errors
from revstudy.cli_data import data_app
from revstudy.cli_model import register as register_model_commands
from revstudy.cli_study import register as register_study_commands

app = typer.Typer(
    name="revstudy",
    help="Hyperparameter studies of the invertible 13C NMR model (Kuhn et al.).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
app.add_typer(data_app, name="data")
register_study_commands(app)
register_model_commands(app)


def _version(value: bool) -> None:
    if value:
        from revstudy import __version__

        print(f"revstudy {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print version")
    ] = False,
) -> None:
    """Hyperparameter studies of the invertible 13C NMR model (Kuhn et al.)."""


# our metrics without a published value, shown under the paper's rows
EXTRA_ROWS = {
    "cond_variation_mean": "conditional variation at fixed Y_latent (ours)",
    "bond_count_corr_from_code": "bond-count corr., generated from the code",
    "f1_random_baseline": "random predictor, macro F1 (as our F1)",
    "f1_bin_prior_baseline": "bin-prior predictor F1 (per-bin rates)",
    "f1_macro_skill": "F1 skill over the bin prior",
    "f1_micro": "micro F1",
    "f1_macro_128": "macro F1 at the paper's 128 bits",
    "retrieval_top1": "retrieval: true structure ranked first",
    "retrieval_top10": "retrieval: true structure in the top 10",
    "retrieval_mrr": "retrieval: mean reciprocal rank",
    "retrieval_mrr_random": "retrieval MRR of a random ranking",
}


def paper_table(aggregate: dict[str, dict[str, float]], title: str, y_dim: int = 128) -> Table:
    """Our figures next to the paper's (whose F1 figures are for a 128-bit code)."""
    from revstudy.paper import PAPER_FIGURES

    if y_dim != 128:
        title += f" — {y_dim}-bit code: F1 rows not comparable with the paper's 128 bits"
    t = Table(title=title)
    for col in ("metric", "ours mean ± std", "ours min–max", "paper", "paper range"):
        t.add_column(col)
    rows: list[tuple[str, str, tuple[float, float | None, float | None, str] | None]]
    rows = [(k, v[3], v) for k, v in PAPER_FIGURES.items()]
    rows += [(k, label, None) for k, label in EXTRA_ROWS.items()]
    for key, label, paper in rows:
        a = aggregate.get(key)
        if a is None:
            continue
        value = low = high = None
        if paper is not None:
            value, low, high, _ = paper
        rng = f"{low:.4g}–{high:.4g}" if low is not None and high is not None else ""
        t.add_row(
            label.replace("128-bit", f"{y_dim}-bit"),
            f"{a['mean']:.4g} ± {a['std']:.2g}",
            f"{a['min']:.4g}–{a['max']:.4g}",
            f"{value:.4g}" if value is not None else "",
            rng,
        )
    return t


@app.command()
@user_errors()
def train(
    config: Annotated[Path | None, typer.Option(help="TrialConfig YAML (default: paper)")] = None,
    data: Annotated[str | None, typer.Option(help="CSV in the paper's format")] = None,
    out: Annotated[Path, typer.Option(help="run folder to write")] = Path("runs/latest"),
    seed: Annotated[int | None, typer.Option(help="override the config's seed")] = None,
    repeats: Annotated[int, typer.Option(min=1, help="seeded splits (paper: 10)")] = 1,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto")] = "auto",
    epochs: Annotated[int | None, typer.Option(min=1, help="override the config's epochs")] = None,
    final: Annotated[bool, typer.Option(help="train on train+validation")] = False,
    test: Annotated[bool, typer.Option(help="also evaluate on the held-out test split")] = False,
    threads: Annotated[int, typer.Option(min=0, help="CPU threads (0: torch default)")] = 0,
    fuse: Annotated[
        bool,
        typer.Option(help="train the repeats as one batched ensemble (--no-fuse: one by one)"),
    ] = True,
    test_fraction: Annotated[
        float | None,
        typer.Option(help="override the held-out test share (0: the paper's protocol)"),
    ] = None,
) -> None:
    """Train one configuration on K seeded splits and write metrics.json and model.pt."""
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from revstudy.config import TrialConfig
    from revstudy.data import read_dataset
    from revstudy.runs import train_repeats, write_run
    from revstudy.spaces import load_fixed_config
    from revstudy.train import resolve_device

    cfg = TrialConfig.load_yaml(config) if config else load_fixed_config("paper")
    if seed is not None:
        cfg = cfg.replace(seed=seed)
    if epochs is not None:
        cfg = cfg.replace(epochs=epochs)
    if test_fraction is not None:
        cfg = cfg.replace(test_fraction=test_fraction)
    if threads:
        torch.set_num_threads(threads)
    dev = str(resolve_device(device))
    dataset = read_dataset(_data_path(data))
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("training", total=repeats * cfg.epochs, info="")

        def on_epoch(r: int, rec: Any) -> None:
            bar.update(
                task,
                advance=1,
                description=f"epoch {rec.epoch}/{cfg.epochs}",
                info=f"repeat {r + 1}/{repeats} val F1 {rec.val_f1_macro:.3f}",
            )

        result = train_repeats(
            cfg,
            dataset,
            repeats,
            dev,
            final=final,
            evaluate_test=test,
            on_epoch=on_epoch,
            fuse=fuse,
        )
    write_run(out, result, dataset, dev)
    wide = Console(width=110)
    wide.print(paper_table(result.aggregate, f"validation, {repeats} repeat(s)", cfg.y_dim))
    if result.test:
        from revstudy.runs import aggregate

        wide.print(paper_table(aggregate(result.test), "held-out test split", cfg.y_dim))
    console.print(f"wrote {out}/metrics.json, model.pt, config.yaml")


def _data_path(data: str | None) -> Path:
    """--data, or the cached public data file (fetched first when absent)."""
    from revstudy.fetch import resolve_data

    return resolve_data(data)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
