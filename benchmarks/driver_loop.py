"""The driver's whole per-trial loop as a study grows, against the time a GPU study leaves it.

    python benchmarks/driver_loop.py [--sizes 100 1000 10000] [--rounds 100]
        [--rate 10000] [--samplers tpe random] [--storages journal sqlite] [--packs 1 16]
        [--out benchmarks/results/driver_loop.json]

Issue #31 asks the driver to keep up with 10,000 trials an hour and to spend under 10 % of
the study's wall time on its own bookkeeping. For each size N a study folder of N finished
trials is built (study.json of the quick space, the Optuna record with N COMPLETE trials:
`optuna.journal` as a new study keeps it, or `optuna.db` as a study launched before the
journal does; and N trial folders whose records have the size and keys of a real quick
trial's: trial.json, five epochs.jsonl rows, result.json). Then `--rounds` new trials run
through the driver's own objects exactly as a Ray Tune run drives them (`driver._search`:
the study's searcher and ASHA; `StudyCallback`): suggest (Optuna's ask with the space's
define-by-run suggestions), trial start (trial.json), five epoch results (Optuna's report,
ASHA's decision, trackers off, the live panel, the tables' refresh), and the trial's
completion (Optuna's tell, the records, the tables). What a trial's worker writes (its epoch
rows and result.json) is written between those calls and not timed: the worker does it, not
the driver.

With `--packs K` (K > 1) the study is launched with `--pack K`: the driver's pack layer
(`PackSearcher`, `PackScheduler`, `PackCallback`) asks a pack's K members together (the
first freely, the others with its shape fixed), takes one report a epoch with a row per
member still in it, lets the members ASHA stops leave, and ends the pack; figures are per
member (trial). `tpe_fits` counts the finished sets TPE split (revstudy.study.tpe: one per
search space and finished set, not one per ask).

The loop is paced at `--rate` trials an hour (one trial ends every 3600/rate seconds, as
in a GPU study that reaches the rate), so the tables' time-based refresh runs as often as
it would there. Reported per size: the driver's seconds per trial (median and mean, split
into ask, tell, results and the callback) and its share of the paced wall time, the
figure the issue bounds at 10 %. The run's first refresh of the tables reads every trial
folder once (as a driver run's first does) and is reported apart (`first_refresh_s`): a
run pays it once, not per trial. The tables' later refreshes are spaced to take at most
their share of a run (`LiveTables.share`, 1 %), which a window of a minute or two cannot
show: it holds the run's second refresh, 5 s after the first, and a whole refresh costs
~1.4 s at 10⁴ trials. So each row also gives the refreshes in the window (`tables_s`) and
`share_of_wall_steady`: the driver's share without them plus the tables' cap, what a long
run converges to. Ray Tune's own controller (trial objects, actor reuse,
result routing) is not included: it is Ray's, measured by benchmarks/study_overhead.py.
Results are written after every size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from driver_bookkeeping import record, start_record  # noqa: E402  (one record format)

EPOCHS = 5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    p.add_argument("--rounds", type=int, default=100)
    p.add_argument("--rate", type=float, default=10000.0, help="trials an hour to pace at")
    p.add_argument("--samplers", nargs="+", default=["tpe", "random"])
    p.add_argument("--storages", nargs="+", default=["journal", "sqlite"])
    p.add_argument("--packs", type=int, nargs="+", default=[1], help="trials per pack: sizes")
    p.add_argument("--out", default=str(REPO / "benchmarks/results/driver_loop.json"))
    return p.parse_args(argv)


def _metrics(rng: Any, epoch: int) -> dict[str, float]:
    """A final record's figures: the keys of a real quick trial's (result.json 'metrics')."""
    keys = [
        "f1_macro", "f1_micro", "f1_samples", "f1_macro_present", "f1_random_baseline",
        "f1_macro_skill", "inv_error_max", "inv_error_mean", "inv_error_p95",
        "z_free_mean_mean", "z_free_std_mean", "cond_variation_mean", "bond_count_corr",
        "aromatic_corr", "retrieval_top1", "retrieval_top10", "retrieval_mrr",
        "f1_macro_128", "f1_macro_skill_128", "f1_macro_relabelled",
        "f1_macro_skill_relabelled", "retrieval_mrr_relabelled", "val_loss", "train_loss",
    ] + [f"{p}_r{r}" for p in ("cd_local", "rcd_local", "cd_prior", "rcd_prior")
         for r in (0.01, 0.05, 0.1, 0.2, 0.5, 1.0)]  # fmt: skip
    out: dict[str, float] = {"epoch": float(epoch)}
    for k in keys:
        out[k] = float(rng.normal(0.1, 0.03))
        out[f"{k}_std"] = float(abs(rng.normal(0.0, 0.01)))
    for k in ("inv_error_max", "inv_error_mean", "inv_error_p95"):  # a working model's
        out[k] = float(abs(rng.normal(1e-5, 3e-6)))  # (0.1 is numerically broken: DIVERGED)
    return out


def _epoch_row(rng: Any, epoch: int) -> dict[str, Any]:
    row: dict[str, Any] = {"repeat": 0, "node": "local", "epoch": epoch}
    for k in ("train_loss", "train_loss_y", "train_loss_x", "train_loss_latent", "val_loss",
              "val_loss_y", "val_f1_macro", "val_f1_skill", "val_retrieval_mrr", "seconds",
              "val_f1_macro_relabelled", "val_f1_skill_relabelled",
              "val_retrieval_mrr_relabelled"):  # fmt: skip
        row[k] = float(rng.normal(0.1, 0.03))
    return row


def _write_worker_records(study: Path, rid: str, config: dict[str, Any], rng: Any) -> dict:
    """What a finished trial's worker leaves: its epoch rows and result.json (not timed)."""
    from revstudy.files import write_json_atomic
    from revstudy.study.records import append_epochs
    from revstudy.studyfolder import FINAL_KEY, RESULT_FILE, trial_dir

    append_epochs(study, rid, [_epoch_row(rng, e) for e in range(1, EPOCHS + 1)])
    metrics = _metrics(rng, EPOCHS)
    metrics[FINAL_KEY] = 1
    doc = {
        "trial_id": rid,
        "config": config,
        "repeats": [metrics],
        "device": "cpu",
        "wall_seconds": 1.0,
        "history": {"nodes": ["local"], "resumed_after_epoch": []},
        "report": metrics,
        "metrics": metrics,
    }
    write_json_atomic(trial_dir(study, rid) / RESULT_FILE, doc)
    return metrics


def build_study(
    folder: Path, n: int, sampler: str, rounds: int, storage: str, pack: int = 1
) -> tuple[Path, Any, Any]:
    """A quick-space study folder holding `n` finished trials (the Optuna record in
    `storage`: journal or sqlite, and the trial folders)."""
    import numpy as np
    import optuna

    from revstudy.files import write_json_atomic
    from revstudy.study.optuna_store import RAY_ID_ATTR, open_optuna
    from revstudy.study.spaces import load_space
    from revstudy.studyfolder import STUDY_FILE, TRIAL_FILE, Objective, trial_dir
    from revstudy.studyinfo import STUDY_ID_ATTR, StudyInfo

    space = load_space("quick")
    study = folder / "loop"
    study.mkdir()
    info = StudyInfo(
        "loop", (Objective("f1_macro_skill_relabelled"),), space=space.to_dict(),
        sampler=sampler, scheduler="asha", num_samples=n + rounds, study_id="bench", pack=pack,
    )  # fmt: skip
    write_json_atomic(study / STUDY_FILE, info.to_dict())
    if storage == "sqlite":  # a study launched before the journal: its optuna.db goes on
        old = optuna.create_study(
            study_name="loop", storage=f"sqlite:///{study / 'optuna.db'}", direction="maximize"
        )
        old.set_user_attr(STUDY_ID_ATTR, "bench")
    ostudy = open_optuna(study, info, create=storage != "sqlite")
    rng = np.random.default_rng(0)
    scratch = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    frozen = []
    for i in range(n):
        t = scratch.ask()
        space.suggest(t)
        rid = f"old{i:06d}"
        config = space.to_config(dict(t.params)).to_dict()
        meta = {"config": config, "trial_id": rid, "number": i, "params": dict(t.params),
                "is_baseline": False, "device": "cpu"}  # fmt: skip
        trial_dir(study, rid).mkdir(parents=True)
        write_json_atomic(trial_dir(study, rid) / TRIAL_FILE, meta)
        metrics = _write_worker_records(study, rid, config, rng)
        frozen.append(
            optuna.trial.create_trial(
                params=dict(t.params),
                distributions=dict(t.distributions),
                value=metrics["f1_macro_skill_relabelled"],
                intermediate_values={e: float(rng.normal(0.1, 0.03)) for e in range(1, 6)},
                user_attrs={RAY_ID_ATTR: rid},
            )
        )
    ostudy.add_trials(frozen)
    return study, info, space


class Clock:
    """Seconds spent inside the driver's calls, by part."""

    def __init__(self) -> None:
        self.parts: dict[str, float] = {}

    def run(self, part: str, fn: Any, *args: Any) -> Any:
        start = time.perf_counter()
        out = fn(*args)
        self.parts[part] = self.parts.get(part, 0.0) + time.perf_counter() - start
        return out


def measure(
    n: int, sampler: str, storage: str, pack: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Median, mean and share of the paced wall time of the driver's work per trial, with
    `args.rounds` new trials run after `n` finished ones (in packs of `pack`)."""
    import numpy as np

    from revstudy.study.callbacks import StudyCallback, StudyStopper
    from revstudy.study.driver import _search
    from revstudy.study.optuna_store import counted_trials, open_optuna, succeeded
    from revstudy.study.packs import PackCallback

    with tempfile.TemporaryDirectory(prefix="driver_loop-") as tmp:
        t0 = time.perf_counter()
        study, info, space = build_study(Path(tmp), n, sampler, args.rounds, storage, pack)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ostudy = open_optuna(study, info)
        counted = counted_trials(ostudy)  # as the driver
        stopper = StudyStopper(4, succeeded=succeeded(counted))
        searcher, scheduler, book = _search(
            study, info, space, ostudy, False, stopper.holding, counted=len(counted)
        )
        if book is None:
            callback = StudyCallback(study, info, stopper, live=False, done_before=n)
        else:
            callback = PackCallback(study, info, stopper, live=False, done_before=n, book=book)
        callback.number_of = searcher.number_of
        open_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        assert callback.tables is not None
        callback.tables.refresh(callback.ray_states(), force=True)  # the run's first: all
        first_refresh_s = time.perf_counter() - t0
        refreshes: list[float] = []  # seconds of each tables refresh in the loop
        live_refresh = callback.tables.refresh

        def timed_refresh(*a: Any, **k: Any) -> bool:
            t = time.perf_counter()
            done = live_refresh(*a, **k)
            if done:
                refreshes.append(time.perf_counter() - t)
            return done

        callback.tables.refresh = timed_refresh  # type: ignore[method-assign]
        rng = np.random.default_rng(1)
        run = _pack if book is not None else _lone
        step = pack if book is not None else 1
        period = 3600.0 / args.rate * step  # a pack of K trials ends every K periods
        per_trial: list[float] = []
        parts: dict[str, float] = {}
        start = time.perf_counter()
        for r in range(0, args.rounds, step):
            clock = Clock()
            run(clock, f"new{r:06d}", study, space, searcher, scheduler, callback, rng)
            per_trial.extend([sum(clock.parts.values()) / step] * step)
            for k, v in clock.parts.items():
                parts[k] = parts.get(k, 0.0) + v
            behind = start + (r // step + 1) * period - time.perf_counter()
            if behind > 0:  # paced: the next trial (pack) ends one period after this one
                time.sleep(behind)
        wall = time.perf_counter() - start
        fits = getattr(ostudy.sampler, "fits", None)
        finished = [t for t in ostudy.get_trials(deepcopy=False) if t.state.is_finished()]
    return {
        "storage": storage,
        "sampler": sampler,
        "pack": pack,
        "trials": n,
        "rounds": args.rounds,
        "tpe_fits": fits,
        "finished_new": len(finished) - n,  # new trials Optuna holds as finished
        "build_s": round(build_s, 1),
        "open_s": round(open_s, 2),
        "first_refresh_s": round(first_refresh_s, 2),
        "driver_s_median": round(statistics.median(per_trial), 4),
        "driver_s_mean": round(statistics.fmean(per_trial), 4),
        "driver_s_max": round(max(per_trial), 4),
        "parts_s_mean": {k: round(v / args.rounds, 4) for k, v in parts.items()},
        "wall_s": round(wall, 2),
        "share_of_wall": round(sum(per_trial) / wall, 4),
        # the tables' refreshes in the window (spaced to a share of the run: a short
        # window holds the run's second refresh, 5 s after its first, whatever the share)
        "tables_refreshes": len(refreshes),
        "tables_s": round(sum(refreshes), 2),
        "tables_share_cap": callback.tables.share,
        # over a long run: the driver without the window's refreshes, plus the tables' cap
        "share_of_wall_steady": round(
            (sum(per_trial) - sum(refreshes)) / wall + callback.tables.share, 4
        ),
        "kept_up": wall <= args.rounds / step * period * 1.05,
    }


def _lone(
    clock: Clock, rid: str, study: Path, space: Any, searcher: Any, scheduler: Any,
    callback: Any, rng: Any,
) -> None:  # fmt: skip
    """One lone trial through the driver, as Ray Tune drives it."""
    from revstudy.studyfolder import public_params

    config = clock.run("ask", searcher.suggest, rid)
    trial = SimpleNamespace(
        trial_id=rid, config=config, status="RUNNING", last_result={}, error_file=None
    )
    clock.run("results", scheduler.on_trial_add, None, trial)
    clock.run("callback", callback.on_trial_start, 0, [], trial)
    full = space.to_config(public_params(config)).to_dict()
    for epoch in range(1, EPOCHS + 1):
        result = {"epoch": epoch, "training_iteration": epoch, "time_total_s": 1.0,
                  "val_f1_skill_relabelled": float(rng.normal(0.1, 0.03))}  # fmt: skip
        trial.last_result = result
        clock.run("results", searcher.on_trial_result, rid, result)
        clock.run("results", scheduler.on_trial_result, None, trial, result)
        clock.run("callback", callback.on_trial_result, 0, [], trial, result)
    final = _write_worker_records(study, rid, full, rng)  # the worker's, untimed
    trial.last_result = final
    trial.status = "TERMINATED"
    clock.run("tell", searcher.on_trial_complete, rid, final)
    clock.run("results", scheduler.on_trial_complete, None, trial, final)
    clock.run("callback", callback.on_trial_complete, 0, [], trial)


def _pack(
    clock: Clock, pid: str, study: Path, space: Any, searcher: Any, scheduler: Any,
    callback: Any, rng: Any,
) -> None:  # fmt: skip
    """One pack through the driver: its members asked together, one report a epoch with a
    row per member still in it (scheduler, searcher, callback: Ray Tune's order), members
    ASHA stops leave; those left finish with their final rows, then the pack ends."""
    from revstudy.studyfolder import PACK_KEY, TRIAL_KEY, public_params

    config = clock.run("ask", searcher.suggest, pid)
    members = {str(c[TRIAL_KEY]): c for c in config[PACK_KEY]}
    trial = SimpleNamespace(
        trial_id=pid, config=config, status="RUNNING", last_result={}, error_file=None
    )
    clock.run("results", scheduler.on_trial_add, None, trial)
    clock.run("callback", callback.on_trial_start, 0, [], trial)
    book = searcher.book
    for epoch in range(1, EPOCHS + 1):
        rows = []
        for mid, c in members.items():
            if mid in book.outcome:
                continue  # stopped by ASHA: it left the pack
            if epoch < EPOCHS:
                rows.append({TRIAL_KEY: mid, "epoch": epoch,
                             "val_f1_skill_relabelled": float(rng.normal(0.1, 0.03))})  # fmt: skip
            else:  # the worker writes the member's records, then reports its final row
                full = space.to_config(public_params(c)).to_dict()
                final = _write_worker_records(study, mid, full, rng)
                rows.append({**final, TRIAL_KEY: mid, "epoch": epoch})
        if not rows:
            break
        result = {"epoch": epoch, "training_iteration": epoch, "time_total_s": 1.0,
                  PACK_KEY: tuple(rows)}  # fmt: skip
        trial.last_result = result
        clock.run("results", scheduler.on_trial_result, None, trial, result)
        clock.run("results", searcher.on_trial_result, pid, result)
        clock.run("callback", callback.on_trial_result, 0, [], trial, result)
    trial.status = "TERMINATED"
    clock.run("tell", searcher.on_trial_complete, pid, None)
    clock.run("results", scheduler.on_trial_complete, None, trial, {})
    clock.run("callback", callback.on_trial_complete, 0, [], trial)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    doc = start_record(
        space="quick", scheduler="asha", epochs_per_trial=EPOCHS, paced_at_trials_per_hour=args.rate
    )
    out = Path(args.out)
    for n in args.sizes:
        for storage, sampler in [(st, sa) for st in args.storages for sa in args.samplers]:
            for pack in args.packs:
                record(doc, measure(n, sampler, storage, pack, args), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
