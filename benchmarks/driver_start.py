"""What a driver run, and `revstudy status`, cost before the first trial at 10⁴ trials.

    python benchmarks/driver_start.py [--sizes 1000 10000] [--rate 10000]
        [--out benchmarks/results/driver_start.json]

benchmarks/driver_loop.py measures the driver's work per trial; a run also pays once, at
its start, for the checks that make a resume safe, and each of them reads the whole study.
For each size N a study folder of N finished quick-space trials is built as driver_loop.py
builds it (`optuna.journal` with TPE, N trial folders with a real trial's records), with the
tables a driver run leaves (`trials.parquet`, `epochs.parquet`). Then the steps of
`revstudy resume` before Ray Tune starts are timed one by one, in the driver's order
(`driver.resume`, then `driver._run` up to the tuner): stale temporaries removed, the Optuna
record opened (a journal is replayed into memory) and checked to cover every trial folder,
finished trials' checkpoints dropped, unstarted asks discarded, the counted trials, and the
searcher and scheduler built (ASHA's rungs from every trial's epochs). Ray's own start is
not included (benchmarks/study_overhead.py). `revstudy status` is timed whole and in its
parts (the table, the record check, the folder's size).

Each figure is one timing with the files in the page cache (just written); a first read
after a reboot is slower by what the disk adds. `start_share_at_rate` is the start's
seconds over the wall time of an N-trial study at `--rate` trials an hour: what a run that
resumes once pays. Results are written after every size.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from driver_bookkeeping import record, start_record  # noqa: E402  (one record format)
from driver_loop import Clock, build_study  # noqa: E402  (the same synthetic study)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--rate", type=float, default=10000.0, help="trials an hour, for the share")
    p.add_argument("--out", default=str(REPO / "benchmarks/results/driver_start.json"))
    return p.parse_args(argv)


def measure(n: int, rate: float) -> dict[str, Any]:
    """Seconds of each start step of a resume, and of `status`, on a study of `n` trials."""
    # Ray and the modules that import it: loaded before the timings, as the driver's
    # ray_init loads them before its run starts
    for module in ("revstudy.study.packs", "revstudy.study.scheduling", "revstudy.study.search"):
        importlib.import_module(module)
    from revstudy.study.driver import _search
    from revstudy.study.optuna_store import (
        check_covers_folders,
        counted_trials,
        discard_unstarted,
        open_optuna,
    )
    from revstudy.study.records import (
        drop_finished_checkpoints,
        refresh_tables,
        remove_stale_temps,
    )
    from revstudy.study.summary import folder_size, record_problem, study_summary
    from revstudy.studyinfo import read_study
    from revstudy.trialtable import load_trials

    with tempfile.TemporaryDirectory(prefix="driver_start-") as tmp:
        t0 = time.perf_counter()
        study, info, space = build_study(Path(tmp), n, "tpe", 0, "journal")
        refresh_tables(study, {})  # the tables a driver run leaves behind
        build_s = time.perf_counter() - t0
        resume = Clock()
        resume.run("remove_stale_temps", remove_stale_temps, study)
        ostudy = resume.run("open_record", lambda: open_optuna(study, info, mend=True))
        resume.run("check_covers_folders", check_covers_folders, study, ostudy)
        resume.run("drop_finished_checkpoints", drop_finished_checkpoints, study)
        resume.run("discard_unstarted", discard_unstarted, ostudy)
        counted = resume.run("counted_trials", counted_trials, ostudy)
        searcher, _, _ = resume.run(
            "searcher_and_scheduler",
            lambda: _search(study, info, space, ostudy, False, lambda: False, counted=len(counted)),
        )
        status = Clock()
        status.run("status", study_summary, str(study))
        parts = Clock()
        table = parts.run("load_trials", load_trials, study)
        problem = parts.run("record_problem", record_problem, study, read_study(study), table)
        parts.run("folder_size", folder_size, study)
    start_s = sum(resume.parts.values())
    return {
        "trials": n,
        "build_s": round(build_s, 1),
        "resume_start_s": round(start_s, 2),
        "resume_parts_s": {k: round(v, 3) for k, v in resume.parts.items()},
        "start_share_at_rate": round(start_s / (n * 3600.0 / rate), 4),
        "status_s": round(status.parts["status"], 2),
        "status_parts_s": {k: round(v, 3) for k, v in parts.parts.items()},
        # the path timed is a healthy study's: every trial counted, none to continue, no
        # problem with the record (a damaged study would have timed another path)
        "counted_trials": len(counted),
        "continuations": len(searcher.continuations),
        "record_problem": problem,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    doc = start_record(
        space="quick",
        sampler="tpe",
        storage="journal",
        rate_trials_per_hour=args.rate,
        page_cache="warm (the study was just written)",
    )
    for n in args.sizes:
        record(doc, measure(n, args.rate), Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
