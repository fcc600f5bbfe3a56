"""`revstudy train`: one configuration on K seeded splits, written to a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from revstudy.cli.common import ThreadsOption, message_console, paper_table, user_errors

console = message_console()


def train(
    config: Annotated[Path | None, typer.Option(help="TrialConfig YAML (default: paper)")] = None,
    data: Annotated[
        str | None,
        typer.Option(
            help="CSV in the paper's format (default: the file an exported --config records, "
            "else the cached public file)"
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="run folder to write")] = Path("runs/latest"),
    seed: Annotated[int | None, typer.Option(help="override the config's seed")] = None,
    repeats: Annotated[int, typer.Option(min=1, help="seeded splits (paper: 10)")] = 1,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto")] = "auto",
    epochs: Annotated[int | None, typer.Option(min=1, help="override the config's epochs")] = None,
    final: Annotated[bool, typer.Option(help="train on train+validation")] = False,
    test: Annotated[bool, typer.Option(help="also evaluate on the held-out test split")] = False,
    threads: ThreadsOption = None,
    fuse: Annotated[
        bool,
        typer.Option(
            help="train the repeats together: one batched ensemble on a GPU, side by side on "
            "the CPU threads (--no-fuse: one by one, least memory)"
        ),
    ] = True,
    test_fraction: Annotated[
        float | None,
        typer.Option(help="override the held-out test share (0: the paper's protocol)"),
    ] = None,
) -> None:
    """Train one configuration on K seeded splits and write metrics.json and model.pt."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from revstudy.data.dataset import read_dataset
    from revstudy.data.fetch import resolve_data
    from revstudy.outputs import output_dir
    from revstudy.study.spaces import load_fixed_config
    from revstudy.training.config import TrialConfig
    from revstudy.training.runs import data_for_config, train_repeats, write_run
    from revstudy.training.threads import set_threads
    from revstudy.training.trainer import resolve_device

    out = output_dir(out, "--out", run=True)  # before any work: refused now, not after training
    cfg = TrialConfig.load_yaml(config) if config else load_fixed_config("paper")
    if seed is not None:
        cfg = cfg.replace(seed=seed)
    if epochs is not None:
        cfg = cfg.replace(epochs=epochs)
    if test_fraction is not None:
        cfg = cfg.replace(test_fraction=test_fraction)
    dev = str(resolve_device(device))
    chosen = data_for_config(config, data)
    if data is None and chosen is not None:
        console.print(f"data: {chosen} (the file {config} records)", highlight=False)
    dataset = read_dataset(resolve_data(chosen))
    line = set_threads(threads)  # once the inputs are known good: the work starts here
    if line:
        console.print(line, highlight=False)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
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
    if result.fallback:
        console.print(f"note: {result.fallback}", highlight=False)
    wide = Console(width=110)
    wide.print(
        paper_table(result.aggregate, f"validation, {repeats} repeat(s)", cfg.y_dim, repeats)
    )
    if result.test:
        from revstudy.training.runs import aggregate

        wide.print(paper_table(aggregate(result.test), "held-out test split", cfg.y_dim, repeats))
    written = sorted(p.name for p in out.iterdir() if p.is_file())
    console.print(f"wrote {out}/: {', '.join(written)}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `train` to `app`, with one-line errors."""
    app.command(name="train")(user_errors()(train))
