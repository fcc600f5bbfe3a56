"""The Python API: what the CLI does, as functions (`import revstudy; revstudy.launch(...)`).

Each returns plain data (dicts, dataclasses) rather than printing, and raises
`revstudy.errors.RevstudyError` (one line, naming the file or option) on bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    from revstudy.study.driver import launch as run_launch
    from revstudy.study.options import LaunchOptions

    objectives = options.pop("objectives", [])
    if isinstance(objectives, str):
        objectives = objectives.split(",")
    opts = LaunchOptions(space=space, data=data, name=name, objectives=list(objectives), **options)
    return run_launch(opts, progress=progress)


def resume(
    study: str, *, storage: str | None = None, retry_failed: bool = False, progress: bool = False
) -> dict[str, Any]:
    """Continue an interrupted study (finished trials kept, unfinished ones from checkpoints)."""
    from revstudy.study.driver import resume as run_resume

    return run_resume(study, storage=storage, retry_failed=retry_failed, progress=progress)


def status(study: str, *, storage: str | None = None) -> dict[str, Any]:
    """Counts by state, the best trial and the folder size, without starting Ray."""
    from revstudy.study.driver import summarise
    from revstudy.study.records import load_trials
    from revstudy.studyfolder import study_dir

    path = study_dir(study, storage)
    return summarise(path, load_trials(path))


def report(study: str, *, storage: str | None = None, out: str | Path | None = None) -> Path:
    """Write the study's HTML report (default STUDY/report.html); returns its path."""
    import analysis
    from revstudy.studyfolder import study_dir

    return analysis.write_report(study_dir(study, storage), out)


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

    cfg = TrialConfig.load_yaml(config) if config else load_fixed_config("paper")
    dev = str(resolve_device(device))
    dataset = read_dataset(resolve_data(data_for_config(config, data)))
    result = train_repeats(cfg, dataset, repeats, dev, evaluate_test=test)
    if out is not None:
        write_run(Path(out), result, dataset, dev)
    return result


train_config = train  # the name before revstudy.train (a module then) was free
