"""The Python API: what the CLI does, as functions (`import revstudy; revstudy.launch(...)`).

Each returns plain data (dicts, dataclasses) rather than printing, and raises
`revstudy.errors.RevstudyError` (one line, naming the file or option) on bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from revstudy.errors import RevstudyError

__all__ = ["launch", "report", "resume", "status", "train_config"]


def launch(
    space: str = "default",
    *,
    data: str | None = None,
    name: str = "",
    progress: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Run (or continue) a study; `options` are `revstudy.options.LaunchOptions` fields
    (num_samples, sampler, objectives, repeats, gpus_per_trial, storage, address, …).

    Returns the study summary (`status` gives the same later)."""
    from dataclasses import fields

    from revstudy.study.driver import launch as run_launch
    from revstudy.study.options import LaunchOptions

    known = {f.name for f in fields(LaunchOptions)} - {"space", "data", "name"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise RevstudyError(
            f"launch: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    objectives = options.pop("objectives", [])
    if isinstance(objectives, str):
        objectives = objectives.split(",")
    if not isinstance(objectives, list | tuple):
        raise RevstudyError(f"objectives {objectives!r}: expected METRIC:max|min strings")
    for key in ("storage",):
        if isinstance(options.get(key), Path):
            options[key] = str(options[key])
    opts = LaunchOptions(
        space=_text(space, "space"),
        data=_path_or_none(data, "data"),
        name=_text(name, "name", empty=True),
        objectives=list(objectives),
        **options,
    )
    opts.validate()
    return run_launch(opts, progress=progress)


def _text(value: Any, what: str, empty: bool = False) -> str:
    """A name or path given as text (or a Path); RevstudyError naming `what` otherwise."""
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str) or (not value and not empty):
        raise RevstudyError(f"{what} {value!r}: expected a name or path (a string)")
    return value


def _path_or_none(value: Any, what: str) -> str | None:
    return None if value is None else _text(value, what)


def resume(
    study: str, *, storage: str | None = None, retry_failed: bool = False, progress: bool = False
) -> dict[str, Any]:
    """Continue an interrupted study (finished trials kept, unfinished ones from checkpoints)."""
    from revstudy.study.driver import resume as run_resume

    return run_resume(
        _text(study, "study"),
        storage=_path_or_none(storage, "storage"),
        retry_failed=bool(retry_failed),
        progress=bool(progress),
    )


def status(study: str, *, storage: str | None = None) -> dict[str, Any]:
    """Counts by state, the best trial and the folder size, without starting Ray."""
    from revstudy.study.driver import summarise
    from revstudy.study.records import load_trials
    from revstudy.studyfolder import study_dir

    path = study_dir(_text(study, "study"), _path_or_none(storage, "storage"))
    return summarise(path, load_trials(path))


def report(study: str, *, storage: str | None = None, out: str | Path | None = None) -> Path:
    """Write the study's HTML report (default STUDY/report.html); returns its path."""
    import analysis
    from revstudy.studyfolder import study_dir

    folder = study_dir(_text(study, "study"), _path_or_none(storage, "storage"))
    return analysis.write_report(folder, _path_or_none(out, "out"))


def train(
    config: str | Path | None = None,
    *,
    data: str | None = None,
    repeats: int = 1,
    device: str = "auto",
    out: str | Path | None = None,
    test: bool = False,
) -> Any:
    """Train one configuration (a YAML path, default the paper's) on `repeats` seeded splits;
    returns `revstudy.runs.RunResult` and writes a run folder when `out` is given."""
    from revstudy.data.dataset import read_dataset
    from revstudy.data.fetch import resolve_data
    from revstudy.study.spaces import load_fixed_config
    from revstudy.training.config import TrialConfig
    from revstudy.training.runs import data_for_config, train_repeats, write_run
    from revstudy.training.trainer import resolve_device

    config = _path_or_none(config, "config")
    data = _path_or_none(data, "data")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise RevstudyError(f"repeats {repeats!r}: expected an integer >= 1 (as --repeats)")
    cfg = TrialConfig.load_yaml(config) if config else load_fixed_config("paper")
    dev = str(resolve_device(_text(device, "device")))
    dataset = read_dataset(resolve_data(data_for_config(config, data)))
    result = train_repeats(cfg, dataset, repeats, dev, evaluate_test=test)
    if out is not None:
        write_run(Path(_text(out, "out")), result, dataset, dev)
    return result


train_config = train  # the name before revstudy.train (a module then) was free
