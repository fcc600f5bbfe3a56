"""What `revstudy launch` takes, checked before anything is created or started.

Every option left out is `None` (or empty), so a relaunch of an existing study can tell what
the user asked for from what they did not: a study keeps the settings it was launched with,
a contradictory flag is refused with a one-line error, and only `--num-samples` may grow.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field, fields
from typing import Any

from revstudy.errors import RevstudyError
from revstudy.jsontypes import is_int, is_number
from revstudy.study.devices import check_gpu_share
from revstudy.study.tracking import check_trackers
from revstudy.studyfolder import Constraint, Objective, parse_constraint, parse_objective
from revstudy.studyinfo import StudyInfo
from revstudy.training.config import SEED_MAX

__all__ = [
    "DEFAULTS",
    "KNOWN_METRICS",
    "SAMPLERS",
    "SCHEDULERS",
    "LaunchOptions",
    "check_address",
    "check_objectives",
    "parse_duration",
    "parse_objectives",
    "relaunch_changes",
]

SAMPLERS = ("tpe", "random", "gp", "nsga2", "qmc")
SCHEDULERS = ("asha", "none")
# members of one pack: 64 is the most issue #31 asks to measure; more would hold that many
# trials' data and optimiser state on one GPU share
MAX_PACK = 64
KNOWN_METRICS = (
    "f1_macro",
    "f1_micro",
    "f1_samples",
    "f1_macro_present",
    "f1_macro_skill",
    "val_f1_skill",
    "val_loss",
    "val_f1_macro",
    "inv_error_max",
    "inv_error_mean",
    "z_free_mean_mean",
    "z_free_std_mean",
    "cond_variation_mean",
    "bond_count_corr",
    "aromatic_corr",
    "bond_count_corr_from_code",
    "aromatic_corr_from_code",
    "f1_macro_128",
    "f1_macro_skill_128",
    "retrieval_mrr",
    "retrieval_top1",
    "retrieval_top10",
    "val_retrieval_mrr",
    "f1_macro_relabelled",
    "f1_macro_skill_relabelled",
    "f1_macro_128_relabelled",
    "f1_macro_skill_128_relabelled",
    "retrieval_mrr_relabelled",
    "retrieval_top1_relabelled",
    "retrieval_top10_relabelled",
    "val_f1_skill_relabelled",
)


@dataclass
class LaunchOptions:
    """Everything `revstudy launch` takes; stored in study.json so resume needs no flags.

    `None` means "not given": a new study takes `DEFAULTS` (or the space's value), an
    existing one keeps what it was launched with."""

    space: str | None = None  # built-in name or YAML path (default: "default")
    data: str | None = None  # CSV (default: the cached public file)
    name: str = ""  # "" : <space>-<timestamp>
    num_samples: int | None = None
    max_concurrent: int | None = None  # 0: as many as the resources allow
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None  # None: GPU_SHARE when the cluster has GPUs, else 0
    sampler: str | None = None
    scheduler: str | None = None
    objectives: list[str] = field(default_factory=list)  # []: the space's objectives
    repeats: int | None = None  # None: the space's `repeats` (default 1)
    time_budget_s: float | None = None
    address: str | None = None
    storage: str | None = None
    seed: int | None = None
    baseline: bool | None = None
    max_failures: int | None = None  # Ray retries of a trial after a (transient) error
    pack: int | None = None  # trials per pack (one vmapped ensemble in one Ray trial)
    constraints: list[str] = field(default_factory=list)  # []: the space's constraints
    # earlier studies whose finished trials seed the sampler (names or folders; issue #33)
    warm_start: list[str] = field(default_factory=list)
    warm_start_any: bool | None = None  # use sources on other data/objectives/settings
    log: list[str] = field(default_factory=list)  # experiment trackers: mlflow, tensorboard

    def validate(self) -> None:
        """One-line errors naming the flag, before a folder is made or Ray is started."""
        self._check_types()
        # (value, flag, lowest, highest, whether the lowest is excluded)
        checks = [
            (self.num_samples, "--num-samples", 1, 10**6, False),
            (self.max_concurrent, "--max-concurrent", 0, 10**4, False),
            (self.cpus_per_trial, "--cpus-per-trial", 0, 1024, True),
            (self.repeats, "--repeats", 1, 100, False),
            (self.time_budget_s, "--time-budget", 0, 10**9, True),
            (self.seed, "--seed", 0, SEED_MAX, False),
            (self.max_failures, "--max-failures", 0, 100, False),
            (self.pack, "--pack", 1, MAX_PACK, False),
        ]
        for value, flag, low, high, open_low in checks:
            if value is None:
                continue
            above = value > low if open_low else value >= low
            if value != value or not (above and value <= high):  # NaN fails too
                shown = f"{value:g}" if abs(value) < 1e300 else "(a huge number)"
                rule = f"must be {'>' if open_low else '>='} {low} and <= {high}"
                raise RevstudyError(f"{flag} {shown}: {rule}")
        if self.gpus_per_trial is not None:
            check_gpu_share(self.gpus_per_trial)  # one trial, one device
        if self.sampler is not None and self.sampler not in SAMPLERS:
            raise RevstudyError(
                f"--sampler: choose from {', '.join(SAMPLERS)}, got {self.sampler!r}"
            )
        if self.scheduler is not None and self.scheduler not in SCHEDULERS:
            raise RevstudyError(f"--scheduler: choose asha or none, got {self.scheduler!r}")
        if self.objectives:
            parse_objectives(self.objectives)
        for c in self.constraints:
            check_constraint(parse_constraint(c))
        if self.log:
            check_trackers(self.log)
        if self.address is not None:
            check_address(self.address)

    def _check_types(self) -> None:
        """Each option of the type its field declares (the Python API passes values the
        CLI's parser would have refused: `num_samples="2"`, `cpus_per_trial="1"`, …)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            flag = "--" + f.name.replace("_", "-")
            hint = str(f.type)
            if f.name in _LISTS:
                ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
                want = _LISTS[f.name]
            elif hint.startswith("bool"):
                ok, want = isinstance(value, bool), "true or false"
            elif hint.startswith("int"):
                ok = is_int(value)
                want = "an integer"
            elif hint.startswith("float"):
                ok = is_number(value)
                want = "a number"
            else:
                ok, want = isinstance(value, str), "a string"
            if not ok:
                raise RevstudyError(f"{flag} {value!r}: expected {want}")

    def resolved(self, name: str) -> Any:
        """The value of option `name`: given, else its default."""
        value = getattr(self, name)
        return DEFAULTS.get(name) if value is None else value


# the options that take a list of strings, and what each string is
_LISTS = {
    "objectives": "a list of METRIC:max|min strings",
    "constraints": "a list of METRIC<=VALUE strings",
    "log": "a list of tracker names (mlflow, tensorboard)",
    "warm_start": "a list of study names or folders",
}

DEFAULTS: dict[str, Any] = {
    "space": "default",
    "num_samples": 20,
    "max_concurrent": 0,
    "cpus_per_trial": 1.0,
    "sampler": "tpe",
    "scheduler": "asha",
    "seed": 0,
    "baseline": True,
    "max_failures": 1,
    # measured: on a CPU a step is arithmetic-bound and packing gains nothing
    # (docs/performance.md, "Packs"); no GPU measurement yet, so 1 everywhere
    "pack": 1,
}

# settings a relaunch must not contradict: each LaunchOptions field here is the StudyInfo
# field of the same name, given on the command line as this flag
KEPT = {
    "sampler": "--sampler",
    "scheduler": "--scheduler",
    "seed": "--seed",
    "repeats": "--repeats",
    "max_concurrent": "--max-concurrent",
    "cpus_per_trial": "--cpus-per-trial",
    "gpus_per_trial": "--gpus-per-trial",
    "time_budget_s": "--time-budget",
    "baseline": "--no-baseline",
    "max_failures": "--max-failures",
    "pack": "--pack",
}


def relaunch_changes(opts: LaunchOptions, info: StudyInfo, data_sha: str | None) -> int:
    """Check a relaunch of an existing study against its study.json.

    Returns the new `num_samples` (grown if asked); raises on any contradictory flag."""
    clash = []
    for opt, flag in KEPT.items():
        given, have = getattr(opts, opt), getattr(info, opt)
        if given is not None and given != have:
            clash.append(f"{flag} {_show(given)} (study has {_show(have)})")
    if opts.constraints:
        asked_c = tuple(str(parse_constraint(c)) for c in opts.constraints)
        if asked_c != info.constraints:
            have_c = ",".join(info.constraints) or "none"
            clash.append(f"--constraint {','.join(asked_c)} (study has {have_c})")
    if opts.log and tuple(opts.log) != info.log:
        have_log = ",".join(info.log) or "none"
        clash.append(f"--log {','.join(opts.log)} (study has {have_log})")
    if opts.warm_start or opts.warm_start_any:
        clash.append("--warm-start (only a new study takes one: this one has its history)")
    if opts.objectives:
        asked = [f"{o.metric}:{o.mode}" for o in parse_objectives(opts.objectives)]
        have_objectives = [f"{o.metric}:{o.mode}" for o in info.objectives]
        if asked != have_objectives:
            clash.append(f"--objectives {','.join(asked)} (study has {','.join(have_objectives)})")
    space_name = info.space.get("name")
    if opts.space is not None and opts.space not in (space_name, info.space.get("path")):
        clash.append(f"--space {opts.space} (study has {space_name})")
    if data_sha is not None and data_sha != info.data_file.sha256:
        clash.append("--data: another file than the study's (sha256 differs)")
    if opts.num_samples is not None and opts.num_samples < info.num_samples:
        clash.append(
            f"--num-samples {opts.num_samples} (study has {info.num_samples}; it can only grow)"
        )
    if clash:
        raise RevstudyError(
            f"study {info.name} exists and keeps its settings; refused: {'; '.join(clash)}. "
            "Drop these flags to continue it, or choose a new --name"
        )
    return max(info.num_samples, opts.num_samples or 0)


def _show(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def parse_objectives(specs: list[str], flag: str = "--objectives") -> list[Objective]:
    """['f1_macro_skill:max', 'inv_error_max:min'] → [Objective], each parsed by the one
    parser (`studyfolder.parse_objective`), then checked: known metrics, none twice; errors
    name `flag` (the option, or the study.json a resume reads them from)."""
    return check_objectives([parse_objective(spec, flag) for spec in specs], flag)


def check_objectives(objectives: list[Objective], flag: str) -> list[Objective]:
    """`objectives` if each names a known metric, none twice; else a one-line error naming
    `flag` (launch's option, or the study.json a resume reads them from)."""
    for o in objectives:
        if o.metric not in KNOWN_METRICS:
            raise RevstudyError(
                f"{flag}: unknown metric {o.metric!r}; choose from {', '.join(KNOWN_METRICS)}"
            )
    if len({o.metric for o in objectives}) != len(objectives):
        raise RevstudyError(f"{flag}: a metric is named twice")
    return objectives


# metrics a constraint may bound: the objectives' and the network's size
CONSTRAINT_METRICS = (*KNOWN_METRICS, "params_millions")


def check_constraint(c: Constraint, flag: str = "--constraint") -> Constraint:
    """`c` if it bounds a metric every finished trial records; else a one-line error."""
    if c.metric not in CONSTRAINT_METRICS:
        raise RevstudyError(
            f"{flag} {c}: unknown metric {c.metric!r}; choose from {', '.join(CONSTRAINT_METRICS)}"
        )
    return c


def parse_duration(text: str) -> float:
    """'90s', '30m', '2h', '1h30m' or plain seconds → seconds."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise RevstudyError(f"--time-budget: cannot read {text!r} (e.g. 90s, 30m, 2h, 1h30m)")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(a) * unit[b] for a, b in parts)


def check_address(address: str, timeout: float = 5.0) -> None:
    """`--address`: `auto`, or HOST:PORT of a running Ray head that answers within `timeout`.

    Ray Client (`ray://`) needs the `ray[client]` extra and runs the driver remotely with
    other guarantees; revstudy's driver runs on the cluster (`ray submit`, `--address auto`).
    An address where nothing listens would otherwise make `ray.init` wait for minutes."""
    if address == "auto":
        return
    if address.startswith("ray://"):
        raise RevstudyError(
            f"--address {address}: Ray Client (ray://) is not supported; run revstudy on the "
            "cluster's head node (`ray submit cluster.yaml -- revstudy launch --address auto`)"
        )
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RevstudyError(f"--address {address}: expected auto or HOST:PORT of a Ray head")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise RevstudyError(
            f"--address {address}: no Ray head answers there ({e.strerror or type(e).__name__}); "
            "start one with `ray start --head` or use --address auto"
        ) from None
