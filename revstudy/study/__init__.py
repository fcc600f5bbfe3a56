"""Driving a study: search spaces and launch options (`spaces`, `options`), Optuna
through Ray Tune (`search`, `scheduling`), the driver (`driver`), the time budget across
driver runs (`budget`), one trial (`trial`), live progress (`progress`), the folder's
records and tables (`records`), exporting the best configurations (`export`) and the
embedded Ray's watchdog (`reaper`).

Public names are re-exported here and load their module on first use, so importing
the package stays light (no torch or ray until a name needs them)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from revstudy.study.budget import (
        DRIVER_FILE,
        INTERVAL_S,
        DriverClock,
        remaining_budget,
        spent_seconds,
    )
    from revstudy.study.driver import (
        StudyFailed,
        launch,
        resume,
        study_lock,
    )
    from revstudy.study.export import (
        ExportResult,
        Ranked,
        config_from_row,
        export_study,
        objectives_of,
        pareto_fronts,
        rank_trials,
        read_study,
        resolve_study,
    )
    from revstudy.study.live_panel import (
        ENDED,
        LivePanel,
        fmt_seconds,
        short,
    )
    from revstudy.study.options import (
        DEFAULTS,
        KNOWN_METRICS,
        SAMPLERS,
        SCHEDULERS,
        LaunchOptions,
        check_address,
        parse_duration,
        parse_objectives,
        relaunch_changes,
    )
    from revstudy.study.optuna_store import (
        make_sampler,
        open_optuna,
        reconcile_optuna,
        recorded_states,
    )
    from revstudy.study.progress import (
        StudyCallback,
        StudyStopper,
        record_id,
    )
    from revstudy.study.ray_runtime import (
        check_resources,
        ray_init,
        trainable,
    )
    from revstudy.study.reaper import (
        start_reaper,
    )
    from revstudy.study.records import (
        RUN_KEYS,
        append_epochs,
        build_trials_table,
        drop_finished_checkpoints,
        load_trials,
        read_epochs,
        read_jsonl,
        refresh_tables,
        write_parquet_atomic,
    )
    from revstudy.study.scheduling import (
        SeededASHA,
        make_scheduler,
    )
    from revstudy.study.search import (
        COUNTED,
        Continuation,
        StudySearcher,
        counted_trials,
        retries,
        tell,
        unfinished,
    )
    from revstudy.study.spaces import (
        BLOCK_PARAMS,
        STUDY_FIELDS,
        TYPES,
        Param,
        SearchSpace,
        baseline_params,
        builtin_dir,
        list_spaces,
        load_fixed_config,
        load_space,
        resolve_space_path,
    )
    from revstudy.study.summary import (
        folder_size,
        summarise,
    )
    from revstudy.study.trial import (
        TrialAbandoned,
        run_trial,
        train_trial,
    )

_EXPORTS = {
    "DRIVER_FILE": "budget",
    "DriverClock": "budget",
    "INTERVAL_S": "budget",
    "remaining_budget": "budget",
    "spent_seconds": "budget",
    "BLOCK_PARAMS": "spaces",
    "COUNTED": "search",
    "Continuation": "search",
    "DEFAULTS": "options",
    "ENDED": "live_panel",
    "ExportResult": "export",
    "KNOWN_METRICS": "options",
    "LaunchOptions": "options",
    "LivePanel": "live_panel",
    "Param": "spaces",
    "RUN_KEYS": "records",
    "Ranked": "export",
    "SAMPLERS": "options",
    "SCHEDULERS": "options",
    "STUDY_FIELDS": "spaces",
    "SearchSpace": "spaces",
    "SeededASHA": "scheduling",
    "StudyCallback": "progress",
    "StudyFailed": "driver",
    "StudySearcher": "search",
    "StudyStopper": "progress",
    "TYPES": "spaces",
    "TrialAbandoned": "trial",
    "append_epochs": "records",
    "baseline_params": "spaces",
    "build_trials_table": "records",
    "drop_finished_checkpoints": "records",
    "builtin_dir": "spaces",
    "check_address": "options",
    "check_resources": "ray_runtime",
    "config_from_row": "export",
    "counted_trials": "search",
    "export_study": "export",
    "fmt_seconds": "live_panel",
    "folder_size": "summary",
    "launch": "driver",
    "list_spaces": "spaces",
    "load_fixed_config": "spaces",
    "load_space": "spaces",
    "load_trials": "records",
    "make_sampler": "optuna_store",
    "make_scheduler": "scheduling",
    "objectives_of": "export",
    "open_optuna": "optuna_store",
    "pareto_fronts": "export",
    "parse_duration": "options",
    "parse_objectives": "options",
    "rank_trials": "export",
    "ray_init": "ray_runtime",
    "read_epochs": "records",
    "read_jsonl": "records",
    "read_study": "export",
    "reconcile_optuna": "optuna_store",
    "record_id": "progress",
    "recorded_states": "optuna_store",
    "refresh_tables": "records",
    "relaunch_changes": "options",
    "resolve_space_path": "spaces",
    "resolve_study": "export",
    "resume": "driver",
    "retries": "search",
    "run_trial": "trial",
    "short": "live_panel",
    "start_reaper": "reaper",
    "study_lock": "driver",
    "summarise": "summary",
    "tell": "search",
    "train_trial": "trial",
    "trainable": "ray_runtime",
    "unfinished": "search",
    "write_parquet_atomic": "records",
}
__all__ = [
    "BLOCK_PARAMS",
    "COUNTED",
    "DEFAULTS",
    "DRIVER_FILE",
    "ENDED",
    "INTERVAL_S",
    "KNOWN_METRICS",
    "RUN_KEYS",
    "SAMPLERS",
    "SCHEDULERS",
    "STUDY_FIELDS",
    "TYPES",
    "Continuation",
    "DriverClock",
    "ExportResult",
    "LaunchOptions",
    "LivePanel",
    "Param",
    "Ranked",
    "SearchSpace",
    "SeededASHA",
    "StudyCallback",
    "StudyFailed",
    "StudySearcher",
    "StudyStopper",
    "TrialAbandoned",
    "append_epochs",
    "baseline_params",
    "build_trials_table",
    "builtin_dir",
    "check_address",
    "check_resources",
    "config_from_row",
    "counted_trials",
    "drop_finished_checkpoints",
    "export_study",
    "fmt_seconds",
    "folder_size",
    "launch",
    "list_spaces",
    "load_fixed_config",
    "load_space",
    "load_trials",
    "make_sampler",
    "make_scheduler",
    "objectives_of",
    "open_optuna",
    "pareto_fronts",
    "parse_duration",
    "parse_objectives",
    "rank_trials",
    "ray_init",
    "read_epochs",
    "read_jsonl",
    "read_study",
    "reconcile_optuna",
    "record_id",
    "recorded_states",
    "refresh_tables",
    "relaunch_changes",
    "remaining_budget",
    "resolve_space_path",
    "resolve_study",
    "resume",
    "retries",
    "run_trial",
    "short",
    "spent_seconds",
    "start_reaper",
    "study_lock",
    "summarise",
    "tell",
    "train_trial",
    "trainable",
    "unfinished",
    "write_parquet_atomic",
]


def __getattr__(name: str) -> Any:
    """A public name, imported from its module when first asked for."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
