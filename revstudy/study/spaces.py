"""Search spaces: YAML files → validated parameter definitions → Optuna suggestions.

A space file has `fixed:` (TrialConfig fields for every trial), `params:` (what to search)
and optionally `objectives:`, `description:`, `repeats:` and `baseline:` (fields the paper
baseline trains with instead of `fixed:` ones). Each parameter has `type` (float, int,
categorical), `low`/`high` (+ `log`, `step`) or `choices`, and an optional `condition`
(`{param: NAME, in: [values]}`) under which it is searched at all. Stage block counts are
searched as `blocks_0` … `blocks_4`. Everything is checked on load, before any trial starts.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from revstudy.errors import ConfigError
from revstudy.studyfolder import parse_constraint
from revstudy.training.config import STEP_FIELDS, TrialConfig, field_names, yaml_error
from revstudy.yamlfile import read_yaml

BLOCK_PARAMS = tuple(f"blocks_{i}" for i in range(5))
TYPES = ("float", "int", "categorical")


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    condition: tuple[str, tuple[Any, ...]] | None = None  # (param, allowed values)


@dataclass(frozen=True)
class SearchSpace:
    name: str
    path: str
    fixed: dict[str, Any] = field(default_factory=dict)
    params: tuple[Param, ...] = ()
    objectives: tuple[str, ...] = ("f1_macro:max",)
    description: str = ""
    repeats: int = 1  # seeded splits per configuration unless --repeats says otherwise
    # fields the paper baseline trains with instead of `fixed` ones (quick: the file's atom
    # order, the paper's protocol, while every searched trial is canonical)
    baseline: dict[str, Any] = field(default_factory=dict)
    constraints: tuple[str, ...] = ()  # METRIC<=VALUE bounds a recommended trial must meet

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Define-by-run space for Optuna: suggest every parameter whose condition holds."""
        chosen: dict[str, Any] = {}
        for p in self.params:
            if p.condition and chosen.get(p.condition[0], _MISSING) not in p.condition[1]:
                continue
            if p.type == "categorical":
                chosen[p.name] = trial.suggest_categorical(p.name, list(p.choices))
            elif p.type == "int":
                assert p.low is not None and p.high is not None
                chosen[p.name] = trial.suggest_int(
                    p.name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log
                )
            else:
                assert p.low is not None and p.high is not None
                chosen[p.name] = trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)
        return chosen

    def shape_params(self) -> list[str]:
        """Searched parameters that set a field of `STEP_FIELDS` (the network's shape): a
        pack's members share them (stage depths are searched as `blocks_<i>`)."""
        return [p.name for p in self.params if p.name in BLOCK_PARAMS or p.name in STEP_FIELDS]

    def to_config(self, params: dict[str, Any], base: TrialConfig | None = None) -> TrialConfig:
        """TrialConfig for one trial: defaults ← fixed ← searched params."""
        values = {**(base.to_dict() if base else _default_values()), **self.fixed}
        blocks = list(values["blocks"])
        for key, value in params.items():
            if key in BLOCK_PARAMS:
                blocks[int(key[-1])] = value
            else:
                values[key] = value
        values["blocks"] = blocks
        if self.baseline and params == baseline_params(self):
            values.update(self.baseline)  # the paper baseline keeps the paper's protocol
        return TrialConfig.from_dict(values, source=self.path)

    @classmethod
    def from_info(cls, d: dict[str, Any]) -> SearchSpace:
        """The space as `to_dict` wrote it into study.json (no YAML file needed)."""
        params = []
        for p in d["params"]:
            cond = p.get("condition")
            params.append(
                Param(
                    name=p["name"],
                    type=p["type"],
                    low=p.get("low"),
                    high=p.get("high"),
                    log=p.get("log", False),
                    step=p.get("step"),
                    choices=tuple(p.get("choices", ())),
                    condition=(cond[0], tuple(cond[1])) if cond else None,
                )
            )
        return cls(
            name=d["name"],
            path=d["path"],
            fixed=d["fixed"],
            params=tuple(params),
            objectives=tuple(d["objectives"]),
            description=d.get("description", ""),
            repeats=int(d.get("repeats", 1)),
            baseline=dict(d.get("baseline") or {}),
            constraints=tuple(d.get("constraints") or ()),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "description": self.description,
            "fixed": self.fixed,
            "objectives": list(self.objectives),
            "repeats": self.repeats,
            "baseline": self.baseline,
            "constraints": list(self.constraints),
            "params": [
                {k: v for k, v in dataclasses.asdict(p).items() if v not in (None, (), False)}
                for p in self.params
            ],
        }


_MISSING = object()


def builtin_dir() -> Path:
    return Path(str(importlib.resources.files("revstudy.search_spaces")))


def list_spaces() -> list[str]:
    return sorted(p.stem for p in builtin_dir().glob("*.yaml"))


def resolve_space_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ConfigError(f"{p}: search space file not found")
        return p
    builtin = builtin_dir() / f"{name_or_path}.yaml"
    if not builtin.is_file():
        raise ConfigError(
            f"unknown search space {name_or_path!r}: use one of {', '.join(list_spaces())} "
            "or a path to a YAML file"
        )
    return builtin


# choices one categorical parameter may list: a study cannot try more anyway, and TPE's
# work grows with them (10^4 took 6.6 s a suggestion, 10^6 did not answer in 300 s)
MAX_CHOICES = 1000


def load_space(name_or_path: str) -> SearchSpace:
    """Load and validate a space by built-in name (`default`, `quick`, `paper`) or path."""
    path = resolve_space_path(name_or_path)
    src = str(path)
    try:
        doc = read_yaml(path, follow_links=True)  # a file the user named
    except yaml.YAMLError as e:
        raise ConfigError(f"{src}: not valid YAML: {yaml_error(e)}") from None
    if doc is None:  # read as {}, it ran a study of the defaults: an empty file is a mistake
        raise ConfigError(
            f"{src}: empty, holds no search space (a space that searches nothing names its "
            "settings under fixed:, as the built-in `paper` space does)"
        )
    if not isinstance(doc, dict):
        raise ConfigError(f"{src}: expected a mapping with fixed/params/objectives")
    unknown = set(doc) - {
        "fixed",
        "params",
        "objectives",
        "description",
        "repeats",
        "baseline",
        "constraints",
    }
    if unknown:
        raise ConfigError(f"{src}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    fixed = doc.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise ConfigError(f"{src}: fixed: expected a mapping of TrialConfig fields")
    raw_params = doc.get("params") or {}
    if not isinstance(raw_params, dict):
        raise ConfigError(f"{src}: params: expected a mapping of parameter definitions")
    params = tuple(_param(src, name, spec) for name, spec in raw_params.items())
    names = {p.name for p in params}
    for p in params:
        if p.condition and p.condition[0] not in names:
            raise ConfigError(f"{src}: parameter {p.name}: condition on unknown {p.condition[0]}")
    both = names & set(fixed)
    if both:
        raise ConfigError(f"{src}: {', '.join(sorted(both))} both fixed and searched")
    objectives = tuple(doc.get("objectives") or ("f1_macro:max",))
    repeats = doc.get("repeats", 1)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"{src}: repeats: expected a whole number >= 1, got {repeats!r}")
    description = str(doc.get("description", ""))
    baseline = doc.get("baseline") or {}
    if not isinstance(baseline, dict) or set(baseline) & set(STUDY_FIELDS):
        raise ConfigError(
            f"{src}: baseline: a mapping of TrialConfig fields the paper baseline trains with "
            f"(not {', '.join(STUDY_FIELDS)}: they belong to the study)"
        )
    constraints = doc.get("constraints") or []
    if not isinstance(constraints, list) or not all(isinstance(c, str) for c in constraints):
        raise ConfigError(f"{src}: constraints: a list like [inv_error_max<=1e-5]")
    for c in constraints:
        parse_constraint(c, f"{src}: constraints:")
    space = SearchSpace(
        path.stem, src, fixed, params, objectives, description, repeats, dict(baseline),
        tuple(constraints),
    )  # fmt: skip
    space.to_config({})  # fixed values must form a valid config
    if baseline:  # and the baseline's (paper.yaml itself has none: no recursion)
        space.to_config(baseline_params(space) or {})
    _check_extremes(space)
    return space


def _check_extremes(space: SearchSpace) -> None:
    """Every parameter at its low, high and each choice must give a valid config."""
    for p in space.params:
        values = list(p.choices) if p.type == "categorical" else [p.low, p.high]
        for v in values:
            if p.type == "int" and v is not None:
                v = int(v)
            given = {p.name: v}
            if p.condition:  # check it where it applies: with its condition met
                given[p.condition[0]] = p.condition[1][0]
            try:
                space.to_config(given)
            except ConfigError as e:
                msg = str(e).split(": ", 1)[-1]
                raise ConfigError(f"{space.path}: parameter {p.name}: value {v!r}: {msg}") from None


# Settings of the held-out test split: fixed per study, never searched (a trial that could
# choose its own test split could be selected for it).
STUDY_FIELDS = ("test_fraction", "test_seed")


def _param(src: str, name: str, spec: Any) -> Param:
    """One searched parameter of a space file, checked with errors naming file and field."""

    def bad(reason: str) -> ConfigError:
        return ConfigError(f"{src}: parameter {name}: {reason}")

    if name not in field_names() and name not in BLOCK_PARAMS:
        raise bad("not a TrialConfig field (see `revstudy spaces --fields`)")
    if name == "blocks":
        raise bad("search stage depths as blocks_0 … blocks_4")
    if name in STUDY_FIELDS:
        raise bad(
            "belongs to the study, not to a trial: every trial must share one held-out test "
            "split, so set it under fixed: (or leave the default)"
        )
    if not isinstance(spec, dict):
        raise bad("expected a mapping with type and range or choices")
    unknown = set(spec) - {"type", "low", "high", "log", "step", "choices", "condition"}
    if unknown:
        raise bad(f"unknown key(s) {', '.join(sorted(unknown))}")
    kind = spec.get("type")
    if kind not in TYPES:
        raise bad(f"type must be one of {', '.join(TYPES)}, got {kind!r}")
    condition = _condition(spec, bad)
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise bad("categorical needs a non-empty list of choices")
        if len(choices) > MAX_CHOICES:  # 10^6 choices left the sampler without an answer
            raise bad(f"{len(choices)} choices; at most {MAX_CHOICES} (use a range instead)")
        return Param(name, kind, choices=tuple(choices), condition=condition)
    low, high, log, step = _numeric_range(kind, spec, bad)
    return Param(name, kind, low, high, log, step, condition=condition)


def _condition(
    spec: dict[str, Any], bad: Callable[[str], ConfigError]
) -> tuple[str, tuple[Any, ...]] | None:
    """`condition: {param: NAME, in: [values]}`: searched only when NAME takes one of them."""
    if "condition" not in spec:
        return None
    cond = spec["condition"]
    if not (
        isinstance(cond, dict) and set(cond) == {"param", "in"} and isinstance(cond["in"], list)
    ):
        raise bad("condition must be {param: NAME, in: [values]}")
    if not cond["in"]:
        raise bad("condition: `in` needs at least one value (an empty list never applies)")
    return str(cond["param"]), tuple(cond["in"])


def _numeric_range(
    kind: str, spec: dict[str, Any], bad: Callable[[str], ConfigError]
) -> tuple[float, float, bool, float | None]:
    """(low, high, log, step) of an int or float parameter, as Optuna can sample them."""
    try:
        low, high = float(spec["low"]), float(spec["high"])
    except (KeyError, TypeError, ValueError):
        raise bad(f"{kind} needs numeric low and high") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise bad(f"low and high must be finite numbers, got {low:g} and {high:g}")
    if low > high:
        raise bad(f"low ({low:g}) > high ({high:g})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise bad(f"log must be true or false, got {log!r}")
    if log and low <= 0:
        raise bad("log scale needs low > 0")
    step = spec.get("step")
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, int | float) or not step > 0:
            raise bad(f"step must be a number > 0, got {step!r}")
        if not math.isfinite(step):
            raise bad(f"step must be finite, got {step!r}")
        if log:
            raise bad("step and log cannot be combined (Optuna samples a log scale continuously)")
        if kind == "int" and step != int(step):
            raise bad(f"int needs a whole step, got {step!r}")
    if kind == "int" and (low != int(low) or high != int(high)):
        raise bad("int needs integer low and high")
    return low, high, log, None if step is None else float(step)


@functools.cache
def _paper_values() -> dict[str, Any]:
    """The packaged paper configuration's fields, read once and never changed: `to_config`
    asks for the baseline point on every call where a space has `baseline:` settings
    (reading the file took ~7 ms, `to_dict` ~0.2 ms)."""
    return load_fixed_config("paper").to_dict()


@functools.cache
def _default_values() -> dict[str, Any]:
    """`TrialConfig()`'s fields, made once and never changed (callers copy): `to_config`
    runs for every trial start (`to_dict` deep-copies, ~0.3 ms)."""
    return TrialConfig().to_dict()


def baseline_params(space: SearchSpace) -> dict[str, Any] | None:
    """The paper configuration (search_spaces/paper.yaml) in the space's parameters; None
    when a categorical parameter cannot take its value."""
    values = _paper_values()
    point: dict[str, Any] = {}
    for p in space.params:
        if p.condition and point.get(p.condition[0]) not in p.condition[1]:
            continue
        v = values["blocks"][int(p.name[-1])] if p.name in BLOCK_PARAMS else values[p.name]
        if p.type == "categorical" and v not in p.choices:
            return None
        point[p.name] = v  # numeric values outside the range are still enqueued as given
    return point


def load_fixed_config(name_or_path: str) -> TrialConfig:
    """The config of a space with no searched parameters (e.g. `paper`)."""
    space = load_space(name_or_path)
    if space.params:
        raise ConfigError(f"{space.path}: searches {len(space.params)} parameter(s); not fixed")
    return space.to_config({})
