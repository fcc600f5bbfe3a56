"""The study folder's contract: its layout, names and rules, in one light module.

`revstudy launch` writes a study folder (docs/study-dir.md); the study engine, `status`,
`export` and the `analysis` package read it. Everything they must agree on lives here:
file names, trial states, the per-epoch report keys, objectives and their parsing, the
ranking that picks "the best trial" (Pareto fronts, completed trials first), where a study
is found (`--storage`, `$REVSTUDY_STORAGE`, `file://`); study.json itself is
`revstudy.studyinfo`.

Only the standard library, numpy and pandas (and Optuna's non-dominated sort, imported
when several objectives are ranked): `analysis` imports it on machines without torch or
ray.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from revstudy.errors import RevstudyError
from revstudy.files import TABLE_LIMIT, UnsafeFileError, regular_file
from revstudy.optunafile import OPTUNA_DB, OPTUNA_JOURNAL

__all__ = [
    "ARRAYS_FILE",
    "DEFAULT_STORAGE",
    "DRIVER_FILE",
    "EPOCHS_FILE",
    "EPOCHS_TABLE",
    "FAILED_KEY",
    "FAILURE_FILE",
    "FINAL_KEY",
    "FINISHED_STATES",
    "MLFLOW_DB",
    "NAME_RE",
    "NUMERIC_LIMITS",
    "OPTUNA_DB",
    "OPTUNA_JOURNAL",
    "PACK_KEY",
    "PENDING_STATES",
    "PER_EPOCH",
    "PER_EPOCH_METRICS",
    "REFERENCE_FILE",
    "REPEAT_ARRAYS",
    "RESULT_FILE",
    "STATES",
    "STATE_FILE",
    "STOPPED_FILE",
    "STUDY_FILE",
    "TENSORBOARD_DIR",
    "TRACKING_FILE",
    "TRIALS_DIR",
    "TRIALS_TABLE",
    "TRIAL_FILE",
    "TRIAL_KEY",
    "Constraint",
    "Objective",
    "check_name",
    "find_study",
    "not_infeasible",
    "numerical_problem",
    "pareto_fronts",
    "parse_constraint",
    "parse_objective",
    "public_params",
    "rank_finished",
    "rank_key",
    "read_table",
    "storage_root",
    "trial_dir",
    "trial_entries",
    "worst_violation",
]

# -- layout --------------------------------------------------------------------------------
STUDY_FILE = "study.json"
TRIALS_TABLE = "trials.parquet"
EPOCHS_TABLE = "epochs.parquet"
DRIVER_FILE = "driver.json"  # wall time of all driver runs (the time budget spans them)
REFERENCE_FILE = "reference.json"  # a dedicated predictor's figures (`reference --study`)
TRACKING_FILE = "tracking.json"  # experiment-tracker run ids (`launch --log`, issue #34)
MLFLOW_DB = "mlflow.db"  # the study's own MLflow store when MLFLOW_TRACKING_URI is unset
TENSORBOARD_DIR = "tensorboard"  # one event folder per trial (`launch --log tensorboard`)
TRIALS_DIR = "trials"  # one folder per trial, named by its first Ray trial id
# A trial's folder `trials/<id>/` holds these (see docs/study-dir.md)
STATE_FILE = "state.pt"  # checkpoint, every epoch; removed once the trial has ended
ARRAYS_FILE = "arrays.npz"  # the last evaluation's arrays (never pickled)
STOPPED_FILE = "stopped.json"  # written when the scheduler (ASHA) stopped the trial early
TRIAL_FILE = "trial.json"  # params, number, baseline flag: written as the trial starts
EPOCHS_FILE = "epochs.jsonl"  # one line per repeat and epoch, appended
RESULT_FILE = "result.json"  # the trial's final figures: it finished
FAILURE_FILE = "failure.json"  # why it failed
# metrics kept per repeat in arrays.npz as `repeat_<metric>` (spread across repeats)
REPEAT_ARRAYS = (
    "f1_macro",
    "f1_macro_skill",  # comparable across code sizes, unlike raw F1
    "f1_macro_skill_relabelled",  # the same on molecules renumbered at random
    "f1_macro_128",
    "bond_count_corr",
    "aromatic_corr",
    "inv_error_max",
)

# -- trial states -----------------------------------------------------------------------------
STATES = (
    "COMPLETED",
    "STOPPED_EARLY",
    "INTERRUPTED",
    "DIVERGED",
    "FAILED",
    "RUNNING",
    "PENDING",
    "DAMAGED",
)
# DIVERGED: ran, but its figures are numerically broken (`numerical_problem`); never ranked
# INTERRUPTED: cut off before its last epoch by Ctrl-C, a time budget, a lost driver: not
# stopped by the scheduler (no STOPPED_FILE), so `revstudy resume` finishes it; never ranked
FINISHED_STATES = ("COMPLETED", "STOPPED_EARLY")  # final metrics are meaningful
PENDING_STATES = ("RUNNING", "PENDING")  # the study is still producing results

# -- what a trial reports -------------------------------------------------------------------
# objectives known every epoch (ASHA can use them) → the per-epoch report key holding them
PER_EPOCH = {
    "f1_macro": "val_f1_macro",
    "val_f1_macro": "val_f1_macro",
    "f1_macro_skill": "val_f1_skill",
    "val_f1_skill": "val_f1_skill",
    "val_loss": "val_loss",
    "retrieval_mrr": "val_retrieval_mrr",
    "val_retrieval_mrr": "val_retrieval_mrr",
    # the same on the validation molecules renumbered at random (issue #21)
    "f1_macro_relabelled": "val_f1_macro_relabelled",
    "f1_macro_skill_relabelled": "val_f1_skill_relabelled",
    "val_f1_skill_relabelled": "val_f1_skill_relabelled",
    "retrieval_mrr_relabelled": "val_retrieval_mrr_relabelled",
}
PER_EPOCH_METRICS = tuple(PER_EPOCH)
# A trial continued by `revstudy resume` runs under a new Ray trial id; this config key
# carries the id of its folder (`trials/<id>/`), which holds its checkpoint and records.
TRIAL_KEY = "revstudy_trial"
# Set to 1 in a trial's last report, after its full evaluation: the trial ran to the end
# (a trial that reports without it was stopped early by the scheduler).
FINAL_KEY = "revstudy_final"
# A pack's Ray trial (issue #31) holds its members' configs under this key, each with its
# TRIAL_KEY, and reports one row per member under it every epoch (revstudy.study.packs).
PACK_KEY = "revstudy_pack"
# In a pack's row: the member failed on its own (the one-line reason); the others train on.
FAILED_KEY = "revstudy_failed"


# Limits beyond which a trial's figures are numerically broken, not a poor configuration.
# An invertible network reconstructs its input to ~1e-6 in fp32 (2e-4 with TF32, ~1e-4 in the
# paper); 1e-2 is a hundred times anything a working one showed, and a diverged one was
# seen at 2382. Z_free of a working model has per-sample std ~0.6-1 and mean ~0.1-0.3 (the
# paper: 0.586 / 0.086); |values| of 10 are a model whose outputs ran away (84.8 was seen).
NUMERIC_LIMITS = {"inv_error_max": 1e-2, "z_free_std_mean": 10.0, "z_free_mean_mean": 10.0}


def numerical_problem(metrics: dict[str, Any], objectives: tuple[str, ...] = ()) -> str | None:
    """Why a trial's recorded figures are numerically broken (None when they are not):
    a non-finite objective, inversion error or Z_free statistic, or one beyond
    `NUMERIC_LIMITS`. Only keys present are checked (per-epoch records have fewer)."""
    for key in (*objectives, *NUMERIC_LIMITS):
        value = metrics.get(key)
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not np.isfinite(value):
            return f"{key} is {value}: numerically broken"
        limit = NUMERIC_LIMITS.get(key)
        if limit is not None and abs(value) > limit:
            return f"{key} = {value:.3g} beyond {limit:g}: numerically broken (diverged)"
    return None


def public_params(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's searched parameters, without revstudy's bookkeeping keys."""
    return {k: v for k, v in config.items() if k != TRIAL_KEY}


# -- objectives -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Objective:
    """One optimisation target: a metric and whether larger (`max`) or smaller is better."""

    metric: str
    mode: Literal["max", "min"] = "max"

    @property
    def ascending(self) -> bool:
        """Sort order that puts the best value first."""
        return self.mode == "min"

    @property
    def sign(self) -> float:
        """+1 for max, -1 for min: `sign * value` is always to be maximised."""
        return 1.0 if self.mode == "max" else -1.0

    def to_dict(self) -> dict[str, str]:
        return {"metric": self.metric, "mode": self.mode}


def parse_objective(spec: str, flag: str = "--objectives", default: str = "max") -> Objective:
    """'metric[:max|min]' → Objective; one-line error naming `flag`."""
    metric, _, mode = spec.strip().partition(":")
    mode = mode or default
    if not metric:
        raise RevstudyError(f"{flag} {spec!r}: expected METRIC[:max|min]")
    if mode not in ("max", "min"):
        raise RevstudyError(f"{flag}: mode of {metric} must be max or min, got {mode!r}")
    return Objective(metric, "min" if mode == "min" else "max")


# -- constraints ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Constraint:
    """A bound a trial must meet to be recommended (issue #33): `metric <= bound` or
    `metric >= bound` on its final figures, e.g. `inv_error_max<=1e-5`."""

    metric: str
    op: Literal["<=", ">="]
    bound: float

    def violation(self, metrics: dict[str, Any]) -> float:
        """How far `metrics` lie outside the bound: <= 0 when met, inf when the metric is
        missing or not a finite number (unmeasured is not feasible)."""
        v = metrics.get(self.metric)
        if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
            return float("inf")
        return float(v) - self.bound if self.op == "<=" else self.bound - float(v)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.bound:g}"


def parse_constraint(spec: str, flag: str = "--constraint") -> Constraint:
    """'METRIC<=VALUE' or 'METRIC>=VALUE' → Constraint; one-line error naming `flag`."""
    m = re.fullmatch(r"\s*([A-Za-z0-9_.]+)\s*(<=|>=)\s*(\S+)\s*", str(spec))
    try:
        bound = float(m.group(3)) if m else float("nan")
    except ValueError:
        bound = float("nan")
    if m is None or not np.isfinite(bound):
        raise RevstudyError(
            f"{flag} {spec!r}: expected METRIC<=VALUE or METRIC>=VALUE with a finite number "
            "(e.g. inv_error_max<=1e-5)"
        )
    return Constraint(m.group(1), "<=" if m.group(2) == "<=" else ">=", bound)


def not_infeasible(trials: pd.DataFrame) -> pd.Series:
    """Rows of a trials table that may be recommended: every row of a study without
    constraints, else those not judged infeasible (`feasible` False; unjudged rows, e.g.
    stopped early, stay)."""
    if "feasible" not in trials:
        return pd.Series(True, index=trials.index)
    known = trials["feasible"].astype(object)
    return known.map(lambda v: v is None or v != v or bool(v)).astype(bool)


def worst_violation(metrics: dict[str, Any], constraints: tuple[Constraint, ...]) -> float:
    """The largest violation of `constraints` by `metrics` (<= 0: every bound met)."""
    return max((c.violation(metrics) for c in constraints), default=float("-inf"))


# -- ranking --------------------------------------------------------------------------------
def pareto_fronts(values: np.ndarray, top: int | None = None) -> np.ndarray:
    """Non-dominated sorting of [n, k] values to maximise: front 0 is the Pareto set.
    `top`: only the fronts up to the one that holds the `top`-th best point are sorted;
    every later point gets the rank after them (what a rung's decision needs).

    Optuna's fast non-dominated sort (the one its NSGA-II sampler ranks with): sorted
    points peeled front by front, a running minimum for two objectives. Comparing every
    point with every other, front by front, took 17 s at 3,000 two-objective trials, and
    MO-ASHA sorts a rung at each decision (issue #31: 10⁴ trials); this takes 0.03 s at
    10⁴. Equal points share a front; NaN (unmeasured) counts as -inf, the worst value."""
    from optuna.study._multi_objective import _fast_non_domination_rank

    points = np.asarray(values, dtype=float)
    points = np.where(np.isnan(points), -np.inf, points)
    if not len(points):
        return np.zeros(0, dtype=int)
    loss = -points.reshape(len(points), -1)
    return np.asarray(_fast_non_domination_rank(loss, n_below=top), dtype=int)


def rank_finished(trials: pd.DataFrame, objectives: list[Objective]) -> pd.DataFrame:
    """Finished trials with a value for every objective, best first, with `front` and `rank`.

    The one ranking every reader uses: trials that ran to the end first (a trial stopped
    early by ASHA has values from fewer epochs), then the Pareto front (several
    objectives), then the first objective."""
    cols = [o.metric for o in objectives]
    if trials.empty or "state" not in trials or any(c not in trials for c in cols):
        return trials.iloc[0:0].assign(front=pd.Series(dtype=int), rank=pd.Series(dtype=int))
    done = trials[trials["state"].isin(FINISHED_STATES)]
    done = done[not_infeasible(done)]  # a study with constraints: never best if broken
    values = done[cols].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    done = done[np.isfinite(values).all(axis=1)]  # NaN or ±inf: never ranked
    signed = np.column_stack([done[o.metric].to_numpy(float) * o.sign for o in objectives]).reshape(
        len(done), len(objectives)
    )
    fronts = pareto_fronts(signed) if len(objectives) > 1 else np.zeros(len(done), dtype=int)
    stopped = (done["state"] != "COMPLETED").to_numpy(int)
    first = signed[:, 0] if len(done) else np.zeros(0)
    order = np.lexsort((-first, fronts, stopped))
    ranked = done.iloc[order].assign(front=fronts[order])
    return ranked.assign(rank=np.arange(1, len(ranked) + 1))


def rank_key(state: str, value: float, objective: Objective) -> tuple[int, float]:
    """Sort key of one trial under `rank_finished`'s rule (smaller is better), for a live
    display that keeps the best so far without a table."""
    return (0 if state == "COMPLETED" else 1, -objective.sign * value)


# -- where a study is -----------------------------------------------------------------------
DEFAULT_STORAGE = "revstudy-results"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def storage_root(storage: str | None) -> Path:
    """`--storage`, else `$REVSTUDY_STORAGE`, else ./revstudy-results: a directory (local or
    a shared filesystem on a cluster) or a file:// URI."""
    value = storage or os.environ.get("REVSTUDY_STORAGE") or DEFAULT_STORAGE
    if "\x00" in value:
        raise RevstudyError(f"--storage {value!r}: a path cannot hold a NUL character")
    if value.startswith("file://"):
        value = value[len("file://") :]
    elif "://" in value:
        raise RevstudyError(
            f"--storage {value}: only directories (local or a shared filesystem) and file:// "
            "URIs are supported; mount the bucket or use a shared path"
        )
    return Path(value).expanduser().resolve()


def check_name(name: str, flag: str = "--name") -> str:
    """A study name is one plain folder name, so no name escapes the storage root."""
    if not NAME_RE.fullmatch(name):
        raise RevstudyError(
            f"{flag} {name!r}: a study name is 1-128 letters, digits, '.', '_' or '-', "
            "not starting with '.' or '-' (e.g. first-study)"
        )
    return name


def find_study(name_or_path: str, storage: str | None = None) -> Path:
    """The one way to find a study: a path to a study folder (one holding study.json), or a
    plain name under the storage root; a one-line error when there is no study there."""
    p = Path(name_or_path)
    try:
        if (p / STUDY_FILE).is_file():
            return p.resolve()
        if not NAME_RE.fullmatch(name_or_path) and len(p.parts) > 1:  # a path, not a name
            what = f"it has no {STUDY_FILE}" if p.is_dir() else "no such folder"
            raise RevstudyError(
                f"study {name_or_path!r}: not a study folder ({what}; see `revstudy list`)"
            )
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        pass
    check_name(name_or_path, "study")
    root = storage_root(storage)
    if not (root / name_or_path / STUDY_FILE).is_file():
        raise RevstudyError(f"no study {name_or_path!r} under {root} (see `revstudy list`)")
    return root / name_or_path


def trial_dir(study: Path, trial_id: str) -> Path:
    """`trials/<id>/` of a study; the id is checked, so it cannot leave the folder, and a
    symbolic link in its place (or in place of `trials/`) is refused: whatever is read,
    written or removed in a trial folder must be in the study folder."""
    if not NAME_RE.fullmatch(trial_id):
        raise RevstudyError(f"{study}: trial id {trial_id!r} is not a plain name")
    for path in (study / TRIALS_DIR, study / TRIALS_DIR / trial_id):
        if path.is_symlink():
            raise RevstudyError(f"{path}: a symbolic link, not a folder of this study: refused")
    return study / TRIALS_DIR / trial_id


def trial_entries(study: Path) -> tuple[list[str], dict[str, str]]:
    """The study's trial folders: (ids of real folders with plain names, sorted;
    {name: why it is not one} for links and odd names found in `trials/`), so that callers
    read the first and report the second instead of following them."""
    root = study / TRIALS_DIR
    if root.is_symlink():
        return [], {TRIALS_DIR: f"{root}: a symbolic link, not a folder of this study: refused"}
    ids: list[str] = []
    bad: dict[str, str] = {}
    try:
        entries = sorted(root.iterdir()) if root.is_dir() else []
    except OSError:
        entries = []
    for p in entries:
        if p.is_symlink():
            bad[p.name] = f"{p}: a symbolic link, not a folder of this study: refused"
        elif p.is_dir():
            if NAME_RE.fullmatch(p.name):
                ids.append(p.name)
            else:
                bad[p.name] = f"{p}: not a trial folder name: ignored"
    return ids, bad


def read_table(path: Path) -> pd.DataFrame | None:
    """A study table (trials.parquet, epochs.parquet), or None when it is absent. A table
    is a cache the engine rebuilds from the trial folders: one that is a link, a FIFO, too
    large or damaged raises RevstudyError naming it and the fix."""
    try:
        regular_file(path, TABLE_LIMIT)
    except FileNotFoundError:
        return None
    except UnsafeFileError as e:
        raise RevstudyError(f"{e}; `revstudy resume` rewrites it") from None
    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise RevstudyError(
            f"{path}: damaged ({type(e).__name__}); `revstudy resume` rewrites it"
        ) from None
