"""A pack: K study trials of one network shape trained as one ensemble in one Ray trial.

A GPU step of this small network costs its ~2,000 kernel launches, not its arithmetic, so K
trials whose networks have one shape (`revstudy.training.config.STEP_FIELDS`) train as one
vmapped ensemble: one step's launches for K trials (`revstudy.training.fused`; on a CPU the
members train side by side or in turn, as a trial's repeats do). Each member stays a trial in
every record: its own `trials/<id>/` folder (owner.json, epochs.jsonl, state.pt, result.json),
Optuna trial, seed, splits, generator, learning rate, loss weights and epochs.

Every epoch the pack reports one row per member (`PACK_KEY`); the driver's pack layer
(`revstudy.study.packs`) hands each row to Optuna, the scheduler and the records as it would
a lone trial's report. A member leaves the pack when it reaches its epochs (result.json),
when the study's scheduler stops it (the driver writes its stopped.json before the pack's
next epoch: Ray Tune holds a function trial in `report` until the driver has processed the
result) or when it fails on its own (a non-finite loss: failure.json naming the pack, so a
restart of the pack by Ray does not train it again); the ensemble shrinks to the members
left (`Repeats.keep`). A failure of the shared step fails every member still training.
Resume is per member: each continues from its own checkpoint, however the driver regroups
it, and a pack resumed with the same members continues bit for bit on the CPU.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch

from revstudy.files import read_json
from revstudy.study.devices import Device, check_assigned, trial_device
from revstudy.study.records import append_epochs
from revstudy.study.trial import (
    Guard,
    Report,
    TrialAbandoned,
    device_memory,
    epoch_report,
    node_id,
    record_failure,
    restore,
    write_final,
)
from revstudy.study.trial_context import TrialContext
from revstudy.studyfolder import (
    FAILED_KEY,
    FAILURE_FILE,
    PACK_KEY,
    RESULT_FILE,
    STATE_FILE,
    STOPPED_FILE,
    TRIAL_KEY,
    public_params,
    trial_dir,
)
from revstudy.training.checkpoint import save_checkpoint
from revstudy.training.fused import Repeats, Strategy
from revstudy.training.splits import SplitTensors
from revstudy.training.trainer import Trainer

__all__ = ["run_pack", "train_pack"]


@dataclass
class _Member:
    """One trial of the pack while it trains."""

    id: str  # its folder id
    tdir: Path
    guard: Guard
    trainers: list[Trainer]  # its repeats
    epochs: int
    started: float  # wall time it started, earlier runs included
    history: dict[str, list[Any]]


def run_pack(params: dict[str, Any], context: TrialContext) -> None:
    """The Ray Tune function trainable of a pack (`params[PACK_KEY]`: its members' configs,
    each with its folder id); it trains on the device it reserved."""
    import ray
    from ray import tune

    device = trial_device(context.gpu_share)
    check_assigned(device, ray.get_gpu_ids(), torch.cuda.is_available())
    pack_id = str(tune.get_context().get_trial_id() or "local")
    train_pack(list(params[PACK_KEY]), context, pack_id, report=tune.report, device=device)


def train_pack(
    members: list[dict[str, Any]],
    context: TrialContext,
    pack_id: str,
    *,
    report: Report,
    device: Device = "cpu",
) -> None:
    """Train (or continue) the pack's `members` (configs with their TRIAL_KEY) together,
    reporting one row per member every epoch, until none is left."""
    c = context
    if c.threads > 0:
        torch.set_num_threads(c.threads)
    rows: list[dict[str, Any]] = []  # the next report's rows
    with device_memory(device, c.gpu_share, c.repeats * len(members)):
        live = [m for m in (_join(p, c, pack_id, device, rows) for p in members) if m]
        strategy = cast(Strategy | None, c.strategy)
        group = Repeats([t for m in live for t in m.trainers], fuse=c.fuse, strategy=strategy)
        while live:
            try:
                rows, leaving = _epoch(group, live, c, pack_id, rows)
            except TrialAbandoned:
                raise
            except Exception as e:  # the shared step failed: every member still training
                for m in live:
                    record_failure(m.tdir, e)
                raise
            _report(report, live, rows, c)
            rows = []
            leaving |= {j for j, m in enumerate(live) if (m.tdir / STOPPED_FILE).is_file()}
            if leaving:  # finished, failed, or stopped by the driver just now
                staying = [j for j in range(len(live)) if j not in leaving]
                r = c.repeats
                group = group.keep([j * r + i for j in staying for i in range(r)])
                live = [live[j] for j in staying]
        if rows:  # nothing trained: members finished or failed before
            _report(report, live, rows, c)


def _join(
    params: dict[str, Any],
    c: TrialContext,
    pack_id: str,
    device: Device,
    rows: list[dict[str, Any]],
) -> _Member | None:
    """A member ready to train, restored from its checkpoint; None (and its row in `rows`
    where it has one) when it finished, was stopped or failed before."""
    mid = str(params[TRIAL_KEY])
    tdir = trial_dir(c.study, mid)
    guard = Guard(tdir, c.driver)  # a worker whose driver is gone touches nothing
    done = read_json(tdir / RESULT_FILE)
    if done is not None and isinstance(done.get("report"), dict):
        rows.append({**done["report"], TRIAL_KEY: mid})  # reported again, trained no more
        return None
    if (tdir / STOPPED_FILE).is_file():  # stopped by the scheduler, told already
        return None
    failed = read_json(tdir / FAILURE_FILE)
    if failed is not None and failed.get("pack") == pack_id:  # this pack, before Ray restarted it
        rows.append({TRIAL_KEY: mid, FAILED_KEY: str(failed.get("reason", "failed"))})
        return None
    (tdir / FAILURE_FILE).unlink(missing_ok=True)  # a retry starts without the old verdict
    try:
        config = c.space.to_config(public_params(params)).replace(seed=c.seed)
        splits = [SplitTensors.build(c.dataset, config, r, device) for r in range(c.repeats)]
        trainers = [Trainer(config, s, device, seed=c.seed + r) for r, s in enumerate(splits)]
        for t in trainers:
            t.validate_epochs = frozenset(c.validate_epochs)
        elapsed, history = restore(tdir / STATE_FILE, trainers)
    except Exception as e:
        rows.append({TRIAL_KEY: mid, FAILED_KEY: record_failure(tdir, e, pack=pack_id)})
        return None
    history["nodes"].append(node_id())
    return _Member(mid, tdir, guard, trainers, config.epochs, time.time() - elapsed, history)


def _epoch(
    group: Repeats,
    live: list[_Member],
    c: TrialContext,
    pack_id: str,
    rows: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], set[int]]:
    """One epoch of every live member: its records, its checkpoint or final result, its row;
    returns the rows and the positions (in `live`) of the members that leave."""
    outcomes = group.train_epoch(collect=True)
    states = group.states()
    r = c.repeats
    leaving: set[int] = set()
    for j, m in enumerate(live):
        m.guard.check()  # before anything of this epoch is written
        recs: list[Any] = outcomes[j * r : (j + 1) * r]
        bad = next((o for o in recs if isinstance(o, Exception)), None)
        if bad is not None:  # this member's own failure (a non-finite loss)
            rows.append({TRIAL_KEY: m.id, FAILED_KEY: record_failure(m.tdir, bad, pack=pack_id)})
            leaving.add(j)
            continue
        epoch = m.trainers[0].epoch
        node = m.history["nodes"][-1]
        append_epochs(
            c.study, m.id, [{"repeat": i, "node": node, **vars(rec)} for i, rec in enumerate(recs)]
        )
        metrics = epoch_report(epoch, recs, list(c.objectives))
        if epoch >= m.epochs:
            leaving.add(j)
            run = {"started": m.started, "history": m.history, "pack": pack_id}
            try:
                write_final(m.tdir, group, m.trainers, metrics, m.guard, run)
            except TrialAbandoned:
                raise
            except Exception as e:  # its evaluation failed: this member only
                rows.append({TRIAL_KEY: m.id, FAILED_KEY: record_failure(m.tdir, e, pack=pack_id)})
                continue
        else:
            checkpoint = {
                "trainers": states[j * r : (j + 1) * r],
                "elapsed": time.time() - m.started,
                "history": m.history,
            }
            save_checkpoint(m.tdir / STATE_FILE, checkpoint)
        rows.append({**metrics, TRIAL_KEY: m.id})
    return rows, leaving


def _report(
    report: Report, live: list[_Member], rows: list[dict[str, Any]], c: TrialContext
) -> None:
    """One report for the pack: its rows, the latest epoch, and every objective at the top
    level (NaN: Ray Tune checks that the searcher's metrics are there; the rows carry the
    values)."""
    for m in live:
        m.guard.check()
    epochs = [int(row["epoch"]) for row in rows if isinstance(row.get("epoch"), int)]
    top: dict[str, Any] = {key: math.nan for key in c.objectives}
    # a tuple: Ray's TensorBoard logger would try to draw a list as a histogram
    report({**top, "epoch": max(epochs, default=0), PACK_KEY: tuple(rows)})
