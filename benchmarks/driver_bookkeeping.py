"""What a study's driver spends per trial on Optuna's bookkeeping, as the study grows.

    python benchmarks/driver_bookkeeping.py [--sizes 100 1000 3000 10000] [--rounds 10]
        [--out benchmarks/results/driver_bookkeeping.json]

Issue #31 asks the driver to keep up with 10,000 trials an hour (0.36 s of bookkeeping per
trial at most, under 10 % of a study's wall time: 36 ms). For each study size N and each
storage Optuna offers for a study folder (SQLite, as `optuna.db` is today; a journal file,
`JournalStorage(JournalFileBackend)`; and in memory, as a floor), a study of N finished
trials over the quick space's distributions is built, then `--rounds` trials each run the
driver's per-trial calls: an `ask` with the quick space's define-by-run suggestions (TPE,
seeded), five per-epoch `report`s and a `tell`. Also timed: one scan of every trial for a
folder id (`StudyCallback._optuna_number` before this benchmark: once per trial start).
Results are written after every size, so a long run loses nothing measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from train_speed import cpu_model  # noqa: E402  (one description of the machine)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 3000, 10000])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--storages", nargs="+", default=["sqlite", "journal", "memory"])
    p.add_argument("--out", default=str(REPO / "benchmarks/results/driver_bookkeeping.json"))
    return p.parse_args(argv)


def _storage(kind: str, folder: Path) -> Any:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if kind == "sqlite":
        return f"sqlite:///{folder / 'optuna.db'}"
    if kind == "journal":
        return optuna.storages.JournalStorage(JournalFileBackend(str(folder / "optuna.journal")))
    return optuna.storages.InMemoryStorage()


def _finished_trials(space: Any, n: int) -> list[Any]:
    """n COMPLETE trials of the space's distributions, values drawn at random."""
    import numpy as np
    import optuna

    rng = np.random.default_rng(0)
    sampler = optuna.samplers.RandomSampler(seed=0)
    scratch = optuna.create_study(sampler=sampler)
    out = []
    for i in range(n):
        t = scratch.ask()
        space.suggest(t)
        frozen = optuna.trial.create_trial(
            params=dict(t.params),
            distributions=dict(t.distributions),
            value=float(rng.normal(0.1, 0.03)),
            intermediate_values={e: float(rng.normal(0.1, 0.03)) for e in range(1, 6)},
            user_attrs={"ray_trial_id": f"t{i:06d}"},
        )
        out.append(frozen)
    return out


def measure(space: Any, kind: str, n: int, rounds: int, folder: Path) -> dict[str, Any]:
    import optuna

    storage = _storage(kind, folder)
    study = optuna.create_study(
        study_name="b", storage=storage, sampler=optuna.samplers.TPESampler(seed=0)
    )
    t0 = time.perf_counter()
    study.add_trials(_finished_trials(space, n))
    build_s = time.perf_counter() - t0
    asks, loops, scans = [], [], []
    for r in range(rounds):
        start = time.perf_counter()
        trial = study.ask()
        space.suggest(trial)
        asked = time.perf_counter()
        for epoch in range(1, 6):
            trial.report(0.1, epoch)
        study.tell(trial, 0.1)
        loops.append(time.perf_counter() - start)
        asks.append(asked - start)
        start = time.perf_counter()  # the old trial.json lookup: every trial scanned
        loaded = optuna.load_study(study_name="b", storage=storage)
        wanted = f"t{r:06d}"
        next((t for t in reversed(loaded.get_trials(deepcopy=False))
              if t.user_attrs.get("ray_trial_id") == wanted), None)  # fmt: skip
        scans.append(time.perf_counter() - start)
    return {
        "storage": kind,
        "trials": n,
        "build_s": round(build_s, 2),
        "ask_s": round(statistics.median(asks), 4),
        "ask_report_tell_s": round(statistics.median(loops), 4),
        "scan_s": round(statistics.median(scans), 4),
    }


def machine_conditions() -> dict[str, Any]:
    """Optuna's version, the machine and the start time, as every driver benchmark records
    them."""
    import optuna

    return {
        "optuna": optuna.__version__,
        "machine": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def start_record(**conditions: Any) -> dict[str, Any]:
    """A driver benchmark's record, before its first row: `conditions` and the machine's
    (`machine_conditions`), no runs yet. Optuna is quieted first: its INFO line per study
    and its experimental-feature warnings would bury the rows printed."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return {"conditions": {**conditions, **machine_conditions()}, "runs": []}


def record(doc: dict[str, Any], row: dict[str, Any], out: Path) -> None:
    """Print `row`, add it to `doc` and write `doc` at once: a long run loses nothing
    measured."""
    print(json.dumps(row), flush=True)
    doc["runs"].append(row)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    from revstudy.study.spaces import load_space

    args = parse_args(argv)
    doc = start_record(
        space="quick (its define-by-run suggestions)", sampler="TPE, seed 0", rounds=args.rounds
    )
    space = load_space("quick")
    out = Path(args.out)
    for n in args.sizes:
        for kind in args.storages:
            with tempfile.TemporaryDirectory(prefix="driver_bookkeeping-") as folder:
                row = measure(space, kind, n, args.rounds, Path(folder))
            record(doc, row, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
