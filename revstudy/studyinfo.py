"""study.json as one typed document: built once at launch, read once, passed to the engine.

Every setting a study records is a field of `StudyInfo` with its type, its range and a
comment, so the driver, the Optuna store, the scheduler, the trials and the readers use
attributes mypy follows instead of indexing a dict. `read_study` is the one reader: a
missing, truncated, hand-edited or foreign file is a one-line error naming the file and the
field, before anything starts; a run (`for_run=True`) needs every setting, a reader (status,
report, export) only the name and objectives, so an older study still reads.

Standard library only, beside `studyfolder`: `analysis` imports it without torch or ray.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from revstudy.errors import RevstudyError
from revstudy.files import UnsafeFileError, read_regular
from revstudy.jsontypes import is_int
from revstudy.studyfolder import STUDY_FILE, Constraint, Objective, parse_constraint

__all__ = [
    "RUN_FIELDS",
    "STUDY_ID_ATTR",
    "WARM_START_ATTR",
    "DataRecord",
    "StudyInfo",
    "WarmSource",
    "foreign_database",
    "read_study",
]

# the user attribute of a study's Optuna study that holds study.json's `study_id`
STUDY_ID_ATTR = "revstudy_study_id"
# the user attribute of a warm-start trial in the Optuna record: "<source study>#<its trial number>"
# (issue #33); such a trial is sampler history, never one of the study's own results
WARM_START_ATTR = "revstudy_warm_start"


@dataclass(frozen=True)
class DataRecord:
    """The data file a study trains on, pinned by its hash: resume refuses another file."""

    path: str  # absolute path at launch
    sha256: str  # of the file's bytes
    rows: int | None = None  # rows read at launch (shown, never trusted)


@dataclass(frozen=True)
class WarmSource:
    """One study whose finished trials went into this study's sampler history at launch
    (`--warm-start`): how many were used, how many were left out and why."""

    study: str  # the source study's name
    path: str  # its folder at launch
    study_id: str  # its study.json id
    used: int  # trials added to this study's Optuna record
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> trials
    differs: tuple[str, ...] = ()  # differences allowed by --warm-start-any

    @property
    def n_left_out(self) -> int:
        """Finished trials of the source that were not used."""
        return sum(self.left_out.values())

    def left_out_text(self) -> str:
        """Why, e.g. "2 lr outside this space; 1 paper baseline (…)" (reasons may hold
        commas, so they are joined with semicolons)."""
        return "; ".join(f"{n} {reason}" for reason, n in self.left_out.items())


@dataclass(frozen=True)
class StudyInfo:
    """study.json. A field left at its default was not recorded (an older study, or a
    reader that needs only the name and objectives); `read_study(for_run=True)` refuses
    a study that lacks one a run needs (`RUN_FIELDS`)."""

    name: str  # the study's name, its folder's name at launch
    objectives: tuple[Objective, ...]  # what trials are ranked by; the first drives ASHA
    space: dict[str, Any] = field(default_factory=dict)  # SearchSpace.to_dict() at launch
    sampler: str = ""  # Optuna sampler: tpe, random, gp, nsga2, qmc
    scheduler: str = ""  # asha or none
    seed: int = 0  # sampler and training seed
    num_samples: int = 0  # trials asked for; only grows (resume, launch --name)
    repeats: int = 1  # seeded train/val splits per trial
    max_concurrent: int = 0  # trials at a time; 0: as many as the resources allow
    pack: int = 1  # trials trained as one vmapped ensemble in one Ray trial (issue #31)
    # bounds a recommended trial must meet, e.g. "inv_error_max<=1e-05" (issue #33)
    constraints: tuple[str, ...] = ()
    # studies whose finished trials seeded the sampler before the first trial (issue #33)
    warm_start: tuple[WarmSource, ...] = ()
    log: tuple[str, ...] = ()  # experiment trackers every trial is logged to (issue #34)
    cpus_per_trial: float = 1.0  # CPUs a trial reserves (= its torch threads)
    gpus_per_trial: float = 0.0  # GPU share a trial reserves; 0: runs on CPU
    time_budget_s: float | None = None  # wall time over all driver runs; None: unbounded
    test_fraction: float | None = None  # held-out test share the trials keep aside
    baseline: bool = False  # the paper's configuration runs as the first trial
    max_failures: int = 0  # Ray retries of a trial after an error (0 in older studies)
    data: DataRecord | None = None  # the data file, pinned by its hash
    optuna_study_name: str = ""  # the study's name in its Optuna record ("": `name`)
    optuna_storage: str = ""  # the Optuna record's path at launch (informational)
    study_id: str = ""  # written in the Optuna record too: a foreign record is refused
    created: str = ""  # ISO time of launch
    versions: dict[str, str] = field(default_factory=dict)  # revstudy, ray, optuna, torch
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know

    @property
    def metrics(self) -> list[str]:
        """The objectives' metric names, first first."""
        return [o.metric for o in self.objectives]

    @property
    def bounds(self) -> tuple[Constraint, ...]:
        """The study's constraints, parsed (checked when study.json was read)."""
        return tuple(parse_constraint(c, "constraints") for c in self.constraints)

    @property
    def optuna_name(self) -> str:
        """The study's name in its Optuna record."""
        return self.optuna_study_name or self.name

    @property
    def data_file(self) -> DataRecord:
        """The data file, or a one-line error for a study that never recorded one."""
        if self.data is None:
            raise RevstudyError(f"study {self.name}: study.json records no data file")
        return self.data

    def replace(self, **changes: Any) -> StudyInfo:
        """A copy with `changes` (the document is frozen: one writer, no stray edits)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document written as study.json (unknown keys kept as read)."""
        doc: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "extra":
                continue
            if f.name == "objectives":
                value = [{"metric": o.metric, "mode": o.mode} for o in value]
            elif f.name == "data":
                value = None if value is None else dataclasses.asdict(value)
            elif f.name == "warm_start":
                value = [{**dataclasses.asdict(w), "differs": list(w.differs)} for w in value]
            doc[f.name] = value
        return {**self.extra, **doc}

    @classmethod
    def from_dict(
        cls, doc: Any, source: str | Path = STUDY_FILE, *, for_run: bool = False
    ) -> StudyInfo:
        """Checked: every field present is of its type and range, and the name and
        objectives (for a run, every `RUN_FIELDS`) are present; otherwise a one-line
        `RevstudyError` naming `source` and the field."""
        if not isinstance(doc, dict):
            raise RevstudyError(f"{source}: damaged or foreign, not a JSON object")
        need = RUN_FIELDS if for_run else ("name", "objectives")
        missing = [k for k in need if doc.get(k) is None]
        if missing:
            raise RevstudyError(f"{source}: damaged or foreign, lacks {', '.join(missing)}")
        values: dict[str, Any] = {}
        for name, check in _CHECKS.items():
            if doc.get(name) is not None:
                values[name] = check(doc[name], _Field(source, name, doc[name], for_run))
        known = {f.name for f in dataclasses.fields(cls)}
        values["extra"] = {k: v for k, v in doc.items() if k not in known}
        return cls(**values)


def read_study(study: Path, *, for_run: bool = False) -> StudyInfo:
    """The study folder's study.json (`StudyInfo.from_dict`'s checks): one-line errors for
    a missing, linked, truncated or foreign file."""
    path = study / STUDY_FILE
    try:
        doc = json.loads(read_regular(path))  # no link, FIFO or device; bounded size
    except FileNotFoundError:
        raise RevstudyError(f"no study at {study} (no study.json; see `revstudy list`)") from None
    except UnsafeFileError as e:
        raise RevstudyError(f"{e} (a study.json must be a plain file)") from None
    except (OSError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RevstudyError(f"{path}: damaged, not valid JSON ({first})") from None
    return StudyInfo.from_dict(doc, path, for_run=for_run)


def foreign_database(ostudy: Any, info: StudyInfo) -> str | None:
    """Why the Optuna study loaded from a study's Optuna record (optuna.journal, or optuna.db)
    is another study's ("belongs to another study …"; launch writes one id into study.json
    and the record), or None when
    it is this one's or the study predates the id."""
    if not info.study_id:
        return None
    got = ostudy.user_attrs.get(STUDY_ID_ATTR)
    if got == info.study_id:
        return None
    return (
        f"belongs to another study (its id {str(got)[:40]!r}, study.json says "
        f"{info.study_id[:40]!r}); restore this study's own Optuna record"
    )


# -- field checks ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Field:
    """One field being read, for the error that names it."""

    source: str | Path
    name: str
    value: Any
    for_run: bool  # a driver run reads it: no lenience for older readers

    def bad(self, want: str) -> RevstudyError:
        v = self.value
        shown = repr(v) if isinstance(v, float) else json.dumps(v, default=str)[:60]
        return RevstudyError(f"{self.source}: {self.name} is {shown}, expected {want}")


def _text(v: Any, f: _Field) -> str:
    if not isinstance(v, str):
        raise f.bad("a string")
    return v


def _integer(low: int) -> Any:
    def check(v: Any, f: _Field) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise f.bad(f"an integer >= {low}")
        return v

    return check


def _number(low: float, high: float) -> Any:
    def check(v: Any, f: _Field) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not low <= v <= high:
            raise f.bad(f"a number in [{low:g}, {high:g}]")
        return float(v)

    return check


def _flag(v: Any, f: _Field) -> bool:
    if not isinstance(v, bool):
        raise f.bad("true or false")
    return v


def _mapping(v: Any, f: _Field) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise f.bad("a mapping")
    return v


def _objectives(v: Any, f: _Field) -> tuple[Objective, ...]:
    if not isinstance(v, list) or not v:
        raise f.bad("a non-empty list of {metric, mode}")
    out = []
    for o in v:
        ok = isinstance(o, dict) and isinstance(o.get("metric"), str) and o["metric"]
        # launch writes both; a reader takes a missing mode as max, a run refuses it
        modes = ("max", "min") if f.for_run else ("max", "min", None)
        if not ok or o.get("mode") not in modes:
            raise f.bad("entries like {metric: f1_macro_skill, mode: max}")
        out.append(Objective(o["metric"], "min" if o.get("mode") == "min" else "max"))
    return tuple(out)


def _constraints(v: Any, f: _Field) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(c, str) for c in v):
        raise f.bad("a list of METRIC<=VALUE / METRIC>=VALUE strings")
    try:
        return tuple(str(parse_constraint(c, "constraints")) for c in v)
    except RevstudyError as e:
        raise f.bad(f"constraints like inv_error_max<=1e-5 ({e})") from None


def _data(v: Any, f: _Field) -> DataRecord:
    ok = isinstance(v, dict) and isinstance(v.get("path"), str) and isinstance(v.get("sha256"), str)
    rows = v.get("rows") if isinstance(v, dict) else None
    if not ok or not (rows is None or is_int(rows)):
        raise f.bad("a mapping with path and sha256 strings")
    return DataRecord(v["path"], v["sha256"], rows)


def _names(v: Any, f: _Field) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise f.bad("a list of names")
    return tuple(v)


def _warm_start(v: Any, f: _Field) -> tuple[WarmSource, ...]:
    want = "a list of {study, path, study_id, used, left_out, differs}"
    if not isinstance(v, list):
        raise f.bad(want)
    out = []
    for w in v:
        if not isinstance(w, dict):
            raise f.bad(want)
        texts = [w.get(k) for k in ("study", "path", "study_id")]
        used, left, differs = w.get("used"), w.get("left_out", {}), w.get("differs", [])
        ok = (
            all(isinstance(t, str) for t in texts)
            and is_int(used)
            and used >= 0
            and isinstance(left, dict)
            and all(is_int(n) for n in left.values())
            and isinstance(differs, list)
            and all(isinstance(d, str) for d in differs)
        )
        if not ok or not isinstance(used, int):  # (the second test: for mypy)
            raise f.bad(want)
        counts = {str(k): n for k, n in left.items()}
        out.append(WarmSource(w["study"], w["path"], w["study_id"], used, counts, tuple(differs)))
    return tuple(out)


def _versions(v: Any, f: _Field) -> dict[str, str]:
    if not isinstance(v, dict):
        raise f.bad("a mapping of package versions")
    return {str(k): str(x) for k, x in v.items()}


_CHECKS: dict[str, Any] = {
    "name": _text,
    "objectives": _objectives,
    "space": _mapping,
    "sampler": _text,
    "scheduler": _text,
    "seed": _integer(0),
    "num_samples": _integer(1),
    "repeats": _integer(1),
    "max_concurrent": _integer(0),
    "pack": _integer(1),
    "constraints": _constraints,
    "warm_start": _warm_start,
    "log": _names,
    "cpus_per_trial": _number(1e-3, 1024),
    "gpus_per_trial": _number(0, 1),
    "time_budget_s": _number(1e-3, 1e9),
    "test_fraction": _number(0, 0.9),
    "baseline": _flag,
    "max_failures": _integer(0),
    "data": _data,
    "optuna_study_name": _text,
    "optuna_storage": _text,
    "study_id": _text,
    "created": _text,
    "versions": _versions,
}
# what a driver run reads: a study lacking one cannot continue (the others are optional:
# older studies did not record them, and their defaults are what those studies ran with)
RUN_FIELDS = (
    "name",
    "space",
    "objectives",
    "num_samples",
    "data",
    "sampler",
    "scheduler",
    "seed",
    "repeats",
    "cpus_per_trial",
    "gpus_per_trial",
    "baseline",
)
