"""Study commands: launch, resume, status, list, report, spaces. Thin: parse, call, print.

status/list/report read the study directory only (no Ray start).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from revstudy.cli.common import message_console, user_errors
from revstudy.errors import RevstudyError
from revstudy.study.devices import GPU_SHARE
from revstudy.study.options import DEFAULTS

StorageOption = Annotated[
    str | None,
    typer.Option(
        help="studies root: a directory or file:// URI (default ./revstudy-results, "
        "or $REVSTUDY_STORAGE)"
    ),
]
messages = message_console()


def _default(option: str) -> str:
    """A launch option's default as its help shows it, from the one table that defines it
    (the options default to None, so that a relaunch can tell given from not given)."""
    value = DEFAULTS[option]
    return f" (default: {value:g})" if isinstance(value, float) else f" (default: {value})"


def register(app: typer.Typer) -> None:
    app.command()(launch)
    app.command()(resume)
    app.command()(status)
    app.command("list")(list_studies)
    app.command()(report)
    app.command()(spaces)
    app.command()(dashboard)


@user_errors()
def launch(
    space: Annotated[
        str | None,
        typer.Option(help="search space: default, quick, paper or a YAML path" + _default("space")),
    ] = None,
    data: Annotated[str | None, typer.Option(help="CSV (default: the cached public file)")] = None,
    name: Annotated[
        str | None,
        typer.Option(help="study name: letters, digits, ._- (existing: continue it)"),
    ] = None,
    num_samples: Annotated[
        int | None, typer.Option(help="trials to run" + _default("num_samples"))
    ] = None,
    max_concurrent: Annotated[
        int | None,
        typer.Option(help="trials at a time, 0: as resources allow" + _default("max_concurrent")),
    ] = None,
    cpus_per_trial: Annotated[
        float | None,
        typer.Option(help="CPUs (= torch threads) per trial" + _default("cpus_per_trial")),
    ] = None,
    gpus_per_trial: Annotated[
        float | None,
        typer.Option(
            help="share of one GPU per trial, in (0, 1] (several trials share a GPU, each "
            "capped at its share of its memory), or 0 for CPU-only trials "
            f"(default: {GPU_SHARE:g} where the cluster has GPUs, else 0)",
        ),
    ] = None,
    sampler: Annotated[
        str | None,
        typer.Option(help="tpe, random, gp, nsga2 or qmc" + _default("sampler")),
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="asha or none" + _default("scheduler"))
    ] = None,
    objectives: Annotated[
        str | None,
        typer.Option(
            help="METRIC:max|min,… (default: the space's objectives; `revstudy spaces` lists them)"
        ),
    ] = None,
    repeats: Annotated[
        int | None,
        typer.Option(help="seeded splits per configuration (default: the space's, or 1)"),
    ] = None,
    time_budget: Annotated[str | None, typer.Option(help="e.g. 30m, 2h")] = None,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster: auto, or HOST:PORT of its head")
    ] = None,
    storage: StorageOption = None,
    seed: Annotated[
        int | None, typer.Option(help="sampler and training seed" + _default("seed"))
    ] = None,
    no_baseline: Annotated[
        bool, typer.Option("--no-baseline", help="skip the paper configuration as first trial")
    ] = False,
    max_failures: Annotated[
        int | None,
        typer.Option(help="Ray retries after a trial error" + _default("max_failures")),
    ] = None,
    constraint: Annotated[
        list[str] | None,
        typer.Option(
            "--constraint",
            metavar="BOUND",
            help="METRIC<=VALUE or METRIC>=VALUE a recommended trial must meet, e.g. "
            "inv_error_max<=1e-5 (repeatable; default: the space's constraints)",
        ),
    ] = None,
    pack: Annotated[
        int | None,
        typer.Option(
            help="trials trained as one batched ensemble on one GPU share, each still its own "
            "trial (docs/studies.md, Packs)" + _default("pack")
        ),
    ] = None,
    warm_start: Annotated[
        list[str] | None,
        typer.Option(
            "--warm-start",
            metavar="STUDY",
            help="an earlier study (name or folder) whose finished trials seed the sampler; "
            "never counted or ranked as this study's (repeatable)",
        ),
    ] = None,
    log: Annotated[
        list[str] | None,
        typer.Option(
            "--log",
            metavar="TRACKER",
            help="log every trial to an experiment tracker: mlflow (a run per trial, nested "
            "under the study's; MLFLOW_TRACKING_URI or STUDY/mlflow.db) or tensorboard "
            "(STUDY/tensorboard/); repeatable",
        ),
    ] = None,
    warm_start_any: Annotated[
        bool,
        typer.Option(
            "--warm-start-any",
            help="use --warm-start studies on another data file, objectives or fixed settings "
            "(with a warning)",
        ),
    ] = False,
) -> None:
    """Run a hyperparameter study on Ray Tune, guided by Optuna."""
    from revstudy.study.driver import launch as run_launch
    from revstudy.study.options import LaunchOptions, parse_duration

    opts = LaunchOptions(
        space=space,
        data=data,
        name=name or "",
        num_samples=num_samples,
        max_concurrent=max_concurrent,
        cpus_per_trial=cpus_per_trial,
        gpus_per_trial=gpus_per_trial,
        sampler=sampler,
        scheduler=scheduler,
        objectives=objectives.split(",") if objectives else [],
        repeats=repeats,
        time_budget_s=parse_duration(time_budget) if time_budget else None,
        address=address,
        storage=storage,
        seed=seed,
        baseline=False if no_baseline else None,
        max_failures=max_failures,
        pack=pack,
        constraints=list(constraint or []),
        warm_start=list(warm_start or []),
        warm_start_any=True if warm_start_any else None,
        log=list(log or []),
    )
    summary = run_launch(opts)
    _print_summary(summary)
    _print_next(summary)


@user_errors()
def resume(
    study: Annotated[str, typer.Argument(help="study name or folder")],
    storage: StorageOption = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address")] = None,
    retry_failed: Annotated[bool, typer.Option(help="run failed trials again")] = False,
) -> None:
    """Continue an interrupted study (Ctrl-C, killed driver, reboot, lost worker)."""
    from revstudy.study.driver import resume as run_resume

    summary = run_resume(study, storage=storage, address=address, retry_failed=retry_failed)
    _print_summary(summary)
    _print_next(summary)


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _print_next(s: dict) -> None:
    """What to run next: the report, the live dashboard, and a continuation if unfinished
    (the comments in one column, whatever the path)."""
    path = shlex.quote(str(s["path"]))  # pasted into a shell: spaces, # and quotes kept
    steps = [
        (f"revstudy report {path} --open", "the answer and every figure"),
        (f"revstudy dashboard {path}", "live, in a browser (revstudy[dashboard])"),
    ]
    left = s["requested"] - sum(v for k, v in s["by_state"].items() if k != "PENDING")
    if left > 0 or any(s["by_state"].get(k) for k in ("PENDING", "RUNNING", "INTERRUPTED")):
        steps.append((f"revstudy resume {path}", "continue the unfinished trials"))
    width = max(len(command) for command, _ in steps)
    lines = [f"{command:<{width}}  # {why}" for command, why in steps]  # comments aligned
    messages.print("next:\n  " + "\n  ".join(lines), highlight=False, markup=False)


def _print_summary(s: dict) -> None:
    size = f" ({s['size_bytes'] / 1e6:.1f} MB)" if "size_bytes" in s else ""
    print(f"study {s['name']}: {s['path']}{size}")  # a path is never broken across lines
    t = Table()
    t.add_column("trials")
    t.add_column("by state")
    t.add_column("best")
    best = s["best"]
    best_txt = "—"
    if best:
        obj = ", ".join(
            f"{o['metric']}={_fmt(best['metrics'].get(o['metric']))}" for o in s["objectives"]
        )
        best_txt = f"{best['trial_id']}: {obj}"
    states = ", ".join(f"{k.lower()} {v}" for k, v in sorted(s["by_state"].items()))
    t.add_row(f"{s['trials']}/{s['requested']}", states, best_txt)
    Console().print(t)  # built now: the terminal's width (or $COLUMNS) at this call
    if s.get("constraints"):
        broke = s.get("infeasible") or []
        tail = f"; {len(broke)} trial(s) broke them and are never recommended" if broke else ""
        messages.print(f"constraints: {', '.join(s['constraints'])}{tail}", highlight=False)
    if s.get("warm_start"):
        used = ", ".join(f"{w['used']} of {w['study']}" for w in s["warm_start"])
        messages.print(
            f"warm start: {used} finished trial(s) in the sampler's history "
            "(not this study's trials: never counted, ranked or exported)",
            highlight=False,
            markup=False,
        )
    for line in s.get("problems", []):
        messages.print(f"[yellow]warning[/]: {line}")


@user_errors()
def dashboard(
    study: Annotated[str, typer.Argument(help="study name or folder")],
    storage: StorageOption = None,
    host: Annotated[
        str, typer.Option(help="address to listen on; another than localhost shows it to others")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on", min=1, max=65535)] = 8080,
) -> None:
    """Serve a study live in optuna-dashboard (read-only), with revstudy's trial states."""
    from revstudy.study.dashboard import serve

    serve(study, storage, host, port)


@user_errors()
def status(
    study: Annotated[str, typer.Argument(help="study name or folder")],
    storage: StorageOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for scripts")] = False,
) -> None:
    """State of a study (counts, best trial, location) without starting Ray."""
    from revstudy.study.summary import study_summary

    s = study_summary(study, storage)
    if as_json:
        print(json.dumps(s, indent=1, default=str))
    else:
        _print_summary(s)


@user_errors()
def list_studies(
    storage: StorageOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for scripts")] = False,
) -> None:
    """Studies under the storage root."""
    from revstudy.study.summary import list_studies as studies
    from revstudy.studyfolder import storage_root

    root = storage_root(storage)
    rows = studies(storage)
    if as_json:
        print(json.dumps(rows, indent=1, default=str))
        return
    print(f"studies in {root}")  # a path is never broken across lines
    t = Table()
    for col in ("name", "trials", "by state", "best"):
        t.add_column(col)
    for s in rows:
        label = s["folder"] + (f" (recorded as {s['name']})" if s["name"] != s["folder"] else "")
        if "damaged" in s:
            t.add_row(label, "—", f"[red]damaged[/]: {s['damaged']}", "—")
            continue
        m = s["objectives"][0]["metric"]
        best = f"{s['best']['metrics'].get(m):.4g}" if s["best"] else "—"
        states = ", ".join(f"{k.lower()} {v}" for k, v in sorted(s["by_state"].items()))
        if s["problems"]:  # damaged trials, an Optuna record resume would refuse
            states += f"; [yellow]{len(s['problems'])} problem(s)[/]: see `revstudy status`"
        t.add_row(label, f"{s['trials']}/{s['requested']}", states, best)
    Console().print(t)  # built now: the terminal's width (or $COLUMNS) at this call


@user_errors()
def report(
    study: Annotated[str, typer.Argument(help="study name or folder")],
    storage: StorageOption = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="HTML file")] = None,
    open_browser: Annotated[bool, typer.Option("--open", help="open it in a browser")] = False,
    csv: Annotated[Path | None, typer.Option(help="write the table as CSV instead")] = None,
    parquet: Annotated[Path | None, typer.Option(help="write the table as Parquet")] = None,
    epochs: Annotated[bool, typer.Option(help="with --csv/--parquet: per-epoch table")] = False,
    compare: Annotated[
        list[str] | None, typer.Option(help="another study to set beside it (repeatable)")
    ] = None,
) -> None:
    """Interactive HTML report (works offline) or a tidy table of a study."""
    import analysis
    from revstudy.outputs import output_file
    from revstudy.studyfolder import find_study

    for flag, target, example in (
        ("--out", out_file, "report.html"),
        ("--csv", csv, "trials.csv"),
        ("--parquet", parquet, "trials.parquet"),
    ):
        if target is not None:
            output_file(target, flag, example)  # before any work; never a study's or run's
    path = find_study(study, storage)
    others = [find_study(o, storage) for o in compare or []]
    try:
        written = analysis.cli_report(
            path,
            out=out_file,
            csv=csv,
            parquet=parquet,
            epochs=epochs,
            open_browser=open_browser,
            compare=others,
        )
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
        raise RevstudyError(str(e)) from None
    messages.print(f"wrote {written or csv or parquet}", highlight=False)


def spaces(
    fields: Annotated[bool, typer.Option("--fields", help="list TrialConfig fields")] = False,
) -> None:
    """Built-in search spaces (and the fields a space may search)."""
    from revstudy.study.spaces import STUDY_FIELDS, list_spaces, load_space
    from revstudy.training.config import field_names, field_range

    if fields:
        for name in [*field_names(), "blocks_0 … blocks_4"]:
            allowed = field_range("blocks" if name.startswith("blocks_") else name)
            note = "  (a study setting: fixed, never searched)" if name in STUDY_FIELDS else ""
            print(name + (f"  {allowed}" if allowed else "") + note)
        return
    import textwrap

    for n in list_spaces():
        s = load_space(n)
        print(
            f"{n}  ({len(s.params)} searched parameters, {s.repeats} split(s) per trial, "
            f"objectives {','.join(s.objectives)})"
        )
        text = " ".join(s.description.split()) or "(no description)"
        print(textwrap.fill(text, width=88, initial_indent="    ", subsequent_indent="    "))
