"""Warm start (`revstudy launch --warm-start STUDY`, issue #33): the finished trials of
earlier studies go into a new study's sampler history before its first trial.

A source trial is an observation of the new study's objective only where the new study
would have trained exactly the same thing: its parameters must lie in the new space (the
space replayed define-by-run, so conditional parameters count only where they apply), and
every setting the new space fixes must equal what the source trained with. Trials that fail
either are left out and counted by reason. A source on another data file, ranked by other
objectives, or none of whose trials can be used (e.g. all in another atom order) is refused
with one line; `--warm-start-any` takes what can be mapped and warns instead.

Warm-start trials are COMPLETE trials in the Optuna record carrying `WARM_START_ATTR` ("<source
study>#<its trial number>"); they have no folder, never count toward `--num-samples`, and
the tables, ranking, export and report never show them as the study's own (the report says
how many went in and from where, as study.json's `warm_start` records).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from revstudy.errors import RevstudyError
from revstudy.files import read_json
from revstudy.study.optuna_store import (
    BASELINE_ATTR,
    RAY_ID_ATTR,
    new_running_trial,
    open_optuna,
    tell,
)
from revstudy.study.spaces import SearchSpace
from revstudy.studyfolder import FINAL_KEY, RESULT_FILE, find_study, trial_dir
from revstudy.studyinfo import WARM_START_ATTR, StudyInfo, WarmSource, read_study

__all__ = ["IGNORED_FIELDS", "WarmTrial", "add_warm_trials", "gather"]

# settings that do not change what a trial measures: the study seed only redraws splits and
# initial weights (a different sample of the same objective), val_every only skips
# intermediate validations, compile_step runs the same step compiled
IGNORED_FIELDS = frozenset({"seed", "val_every", "compile_step"})


@dataclass(frozen=True)
class WarmTrial:
    """One source trial mapped into the new space, ready for the new study's history."""

    source: str  # "<source study>#<its Optuna trial number>"
    params: dict[str, Any]
    distributions: dict[str, BaseDistribution]
    report: dict[str, Any]  # its final figures (result.json's report)


@dataclass
class _Tally:
    """What one source gave: trials used, trials left out by reason, settings that differ."""

    used: list[WarmTrial] = field(default_factory=list)
    left_out: Counter[str] = field(default_factory=Counter)
    differs: set[str] = field(default_factory=set)  # settings allowed by --warm-start-any


class _LeftOut(Exception):
    """A source trial that cannot inform the new study; the message is the counted reason."""


class _Replay:
    """Optuna's trial interface over a source trial's parameters: the new space asks for
    its parameters define-by-run, and each must be present and inside its distribution."""

    def __init__(self, params: dict[str, Any]):
        self.params = params
        self.distributions: dict[str, BaseDistribution] = {}

    def _take(self, name: str, dist: BaseDistribution) -> Any:
        if name not in self.params:
            raise _LeftOut(f"lacks parameter {name} of this space")
        value = self.params[name]
        try:
            inside = dist._contains(dist.to_internal_repr(value))
        except (TypeError, ValueError):
            inside = False
        if not inside:
            raise _LeftOut(f"{name} outside this space")
        self.distributions[name] = dist
        return value

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._take(name, CategoricalDistribution(list(choices)))

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> Any:
        return self._take(name, IntDistribution(low, high, log=log, step=step))

    def suggest_float(
        self, name: str, low: float, high: float, step: float | None = None, log: bool = False
    ) -> Any:
        return self._take(name, FloatDistribution(low, high, log=log, step=step))


def gather(
    names: Sequence[str],
    info: StudyInfo,
    space: SearchSpace,
    storage: str | None,
    *,
    allow_any: bool = False,
) -> tuple[list[WarmTrial], list[WarmSource], list[str]]:
    """(trials to add, what study.json records per source, warnings) for `--warm-start`
    `names` (study names under `storage`, or study folders), checked against the new
    study's `info` and `space`; a one-line `RevstudyError` for a source that cannot be used."""
    trials: list[WarmTrial] = []
    sources: list[WarmSource] = []
    notes: list[str] = []
    seen: set[Path] = set()
    for name in names:
        path = find_study(name, storage)
        if path.resolve() in seen:
            raise RevstudyError(f"--warm-start {name}: named twice")
        seen.add(path.resolve())
        src = read_study(path, for_run=True)
        refusals = _study_differences(src, info)
        flag = f"--warm-start {name}"
        if refusals and not allow_any:
            raise RevstudyError(
                f"{flag}: {'; '.join(refusals)}: its scores are not this study's "
                "(--warm-start-any uses them anyway)"
            )
        tally = _map_trials(path, src, info, space, allow_any)
        if not tally.used:
            why = ", ".join(f"{n} {r}" for r, n in tally.left_out.most_common()) or "none finished"
            raise RevstudyError(f"{flag}: none of its finished trials fits this study ({why})")
        differs = [*refusals, *(f"{d} differs" for d in sorted(tally.differs))]
        if differs:
            notes.append(f"{flag}: used despite {'; '.join(differs)} (--warm-start-any)")
        trials.extend(tally.used)
        sources.append(
            WarmSource(
                study=src.name,
                path=str(path),
                study_id=src.study_id,
                used=len(tally.used),
                left_out=dict(sorted(tally.left_out.items())),
                differs=tuple(differs),
            )
        )
    return trials, sources, notes


def _study_differences(src: StudyInfo, info: StudyInfo) -> list[str]:
    """Why a source study's scores are not this study's, whatever its trials: another data
    file, other objectives."""
    out = []
    if src.data_file.sha256 != info.data_file.sha256:
        out.append(
            f"trained on another data file (sha256 {src.data_file.sha256[:12]}…, this study "
            f"{info.data_file.sha256[:12]}…)"
        )
    theirs = [f"{o.metric}:{o.mode}" for o in src.objectives]
    ours = [f"{o.metric}:{o.mode}" for o in info.objectives]
    if theirs != ours:
        out.append(f"ranked by {','.join(theirs)}, this study by {','.join(ours)}")
    return out


def _map_trials(
    path: Path, src: StudyInfo, info: StudyInfo, space: SearchSpace, allow_any: bool
) -> _Tally:
    """Each COMPLETE trial of the source, mapped into `space` or counted as left out."""
    tally = _Tally()
    src_space = SearchSpace.from_info(src.space)
    ostudy = open_optuna(path, src)
    done = ostudy.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    for t in done:
        try:
            tally.used.append(_map_one(path, src, t, src_space, info, space, allow_any, tally))
        except _LeftOut as e:
            tally.left_out[str(e)] += 1
    return tally


def _map_one(
    path: Path,
    src: StudyInfo,
    t: optuna.trial.FrozenTrial,
    src_space: SearchSpace,
    info: StudyInfo,
    space: SearchSpace,
    allow_any: bool,
    tally: _Tally,
) -> WarmTrial:
    if t.user_attrs.get(BASELINE_ATTR):
        raise _LeftOut("paper baseline (this study runs its own)")
    if t.user_attrs.get(WARM_START_ATTR):
        raise _LeftOut("warm-start trials of that study (name their own study)")
    rid = t.user_attrs.get(RAY_ID_ATTR)
    try:
        result = read_json(trial_dir(path, str(rid)) / RESULT_FILE) if rid else None
    except RevstudyError:
        result = None
    report = result.get("report") if result else None
    if not isinstance(report, dict) or not report.get(FINAL_KEY, True):
        raise _LeftOut("no readable result.json")
    for o in info.objectives:
        v = report.get(o.metric)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise _LeftOut(f"no finite {o.metric}")
    replay = _Replay(dict(t.params))
    try:
        params = space.suggest(replay)
        theirs = src_space.to_config(dict(t.params)).replace(seed=src.seed).to_dict()
        ours = space.to_config(params).replace(seed=info.seed).to_dict()
    except RevstudyError:  # a value the new space's other settings refuse
        raise _LeftOut("not a valid configuration here") from None
    differs = sorted(k for k in ours if k not in IGNORED_FIELDS and ours[k] != theirs.get(k))
    if differs and not allow_any:
        raise _LeftOut(f"trained with other {', '.join(differs)}")
    tally.differs.update(differs)
    return WarmTrial(f"{src.name}#{t.number}", params, replay.distributions, report)


def add_warm_trials(ostudy: optuna.Study, info: StudyInfo, trials: Sequence[WarmTrial]) -> None:
    """Add `trials` to a new study's Optuna record as COMPLETE trials marked `WARM_START_ATTR`,
    their values and constraint violations told exactly as a trial of this study's would
    be (`optuna_store.tell`), so every sampler reads them as its own history."""
    for w in trials:
        attrs = {WARM_START_ATTR: w.source}
        number = new_running_trial(ostudy, w.params, w.distributions, attrs)
        tell(ostudy, number, info.objectives, {**w.report, FINAL_KEY: 1}, False, info.bounds)
