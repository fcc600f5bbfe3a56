"""The study's live terminal panel: counts, times, each running trial's epoch and objective,
the best trial so far, in a few lines that fit 80 columns (instead of Ray's tables).

Display only: `revstudy.study.callbacks.StudyCallback` feeds it from Ray's trial events and
keeps the records. Its best trial is the study folder's (`rank_finished`: earlier driver
runs' trials included, constraints kept, every objective shown, a multi-objective study's
Pareto front counted), so the panel never names a best that `status` would not."""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from rich.console import Console
from rich.live import Live
from rich.table import Table

from revstudy.jsontypes import is_number
from revstudy.studyfolder import PER_EPOCH, pareto_fronts, rank_key, worst_violation
from revstudy.studyinfo import StudyInfo

ENDED = ("COMPLETED", "STOPPED_EARLY", "DIVERGED", "FAILED")


class LivePanel:
    """What the panel shows, updated as trials start, report and end."""

    def __init__(self, info: StudyInfo, live: bool = True, done_before: int = 0):
        self.info = info
        self.objective = info.objectives[0]
        self.done_before = done_before  # trials that ended in earlier driver runs
        self.counts = dict.fromkeys(ENDED, 0)
        self.durations: list[float] = []
        self.started = time.time()
        self.console = Console(stderr=True)
        self.enabled = live and self.console.is_terminal
        self._live: Live | None = None
        # each running trial's last validated objective: epochs `val_every` skips report NaN
        self._validated: dict[str, tuple[int, float]] = {}
        # one objective: the best kept as trials end (`rank_key`, O(1) a trial)
        self._best: tuple[tuple[float, ...], str, dict[str, Any]] | None = None
        self._best_key: tuple[int, float] | None = None
        # several: every rankable trial, sorted again when the best is next asked for
        self._ranked: dict[str, tuple[bool, tuple[float, ...], dict[str, Any]]] = {}
        self._front: tuple[tuple[tuple[float, ...], str, dict[str, Any]], int] | None = None
        self._dirty = False
        self._next_sort = 0.0  # a sort is spaced by 20× its cost (3 objectives, 10⁴: 0.6 s)

    @property
    def metric(self) -> str:
        return self.objective.metric

    @property
    def done(self) -> int:
        return sum(self.counts.values()) + self.done_before

    @property
    def best(self) -> tuple[tuple[float, ...], str, dict[str, Any]] | None:
        """(each objective's value, trial id, params) of the best trial so far."""
        return self._best if len(self.info.objectives) == 1 else self._pareto()[0]

    @property
    def front_size(self) -> int:
        """Trials on the Pareto front (`front` 0 in `rank_finished`); several objectives."""
        return self._pareto()[1]

    def ended(self, state: str, rid: str, result: dict[str, Any], params: dict[str, Any]) -> None:
        """Count a trial that ended, and rank it."""
        self.counts[state] += 1
        if state in ("FAILED", "DIVERGED"):  # never the best
            return
        self.durations.append(float(result.get("time_total_s", 0.0) or 0.0))
        feasible = not (self.info.bounds and worst_violation(result, self.info.bounds) > 0)
        self._consider(state, rid, result, params, feasible or state != "COMPLETED")

    def seed(self, rows: Iterable[dict[str, Any]]) -> None:
        """Rank the finished trials of earlier driver runs (rows of the trials table:
        `revstudy.trialtable.trial_row`), so a resumed study's best is the study's."""
        for row in rows:
            feasible = row.get("feasible")
            try:
                params = json.loads(row.get("params") or "{}")
            except (TypeError, ValueError):
                params = {}
            params = params if isinstance(params, dict) else {}
            ok = feasible is None or feasible != feasible or bool(feasible)
            self._consider(str(row.get("state")), str(row.get("trial_id")), row, params, ok)

    def _consider(
        self, state: str, rid: str, metrics: dict[str, Any], params: dict[str, Any], ok: bool
    ) -> None:
        """Rank one finished trial as `rank_finished` does: completed trials before
        early-stopped ones, then the Pareto front, then the first objective; a trial that
        broke a constraint, or lacks a finite value, never."""
        if state not in ("COMPLETED", "STOPPED_EARLY") or not ok:
            return
        raw = [metrics.get(o.metric) for o in self.info.objectives]
        if not all(is_number(v) and math.isfinite(v) for v in raw):
            return
        values = tuple(float(v) for v in raw)  # type: ignore[arg-type]
        if len(values) > 1:
            self._ranked[rid] = (state != "COMPLETED", values, params)
            self._dirty = True
            return
        key = rank_key(state, values[0], self.objective)
        if self._best_key is None or key < self._best_key:
            self._best_key = key
            self._best = (values, rid, params)

    def _pareto(self) -> tuple[tuple[tuple[float, ...], str, dict[str, Any]] | None, int]:
        """(best, Pareto front size) under `rank_finished`, sorted again when trials ended
        since the last sort and its spacing allows."""
        if self._dirty and (self._front is None or time.monotonic() >= self._next_sort):
            start = time.monotonic()
            # drawn by the panel's thread: a trial ranked during the sort marks it again
            self._dirty = False
            ids = list(self._ranked)
            stopped = np.array([self._ranked[i][0] for i in ids], dtype=int)
            signs = np.array([o.sign for o in self.info.objectives], dtype=float)
            signed = np.array([self._ranked[i][1] for i in ids], dtype=float) * signs
            fronts = pareto_fronts(signed)
            top = int(np.lexsort((-signed[:, 0], fronts, stopped))[0])
            _, values, params = self._ranked[ids[top]]
            self._front = ((values, ids[top], params), int((fronts == 0).sum()))
            self._next_sort = time.monotonic() + 20 * (time.monotonic() - start)
        return self._front if self._front is not None else (None, 0)

    @contextlib.contextmanager
    def display(self, trials: dict[str, Any]) -> Iterator[None]:
        """Show the panel (a terminal only) while the study runs; `trials` is the live dict
        of Ray trials by folder id. The panel is drawn at its refresh rate (twice a second),
        not at every event: a drawing looks at every trial of the run (~1 ms at 10⁴), and a
        study at GPU rates has ~7 events a trial, 0.36 s apart (issue #31)."""
        if self.enabled:
            with Live(
                console=self.console,
                refresh_per_second=2,
                get_renderable=lambda: self.render(trials),
            ) as live:
                self._live = live
                yield
                live.refresh()  # the last state
            self._live = None
        else:
            yield

    def update(self, trials: dict[str, Any], rid: str | None = None) -> None:
        """Trial `rid` reported: its last validated objective is kept (an epoch that
        `val_every` skips reports NaN, and the panel may not be drawn in between)."""
        trial = trials.get(rid) if rid is not None else None
        last = getattr(trial, "last_result", None) or {}
        per_epoch = PER_EPOCH.get(self.metric)
        value = last.get(per_epoch) if per_epoch else None
        if rid is not None and isinstance(value, int | float) and math.isfinite(value):
            self._validated[rid] = (int(last.get("epoch", 0)), float(value))

    def say(self, text: str, trials: dict[str, Any]) -> None:
        """One event: a plain line without a terminal (the panel shows it when drawn)."""
        if self._live is None:
            print(text, file=sys.stderr, flush=True)

    def render(self, trials: dict[str, Any]) -> Table:
        """A few short lines that fit 80 columns: counts and times, each running trial
        (epoch and objective so far, like Ray's CLIReporter but compact), the best so far."""
        # drawn by the panel's own thread while the driver changes `trials`: a copy
        running = [(rid, t) for rid, t in list(trials.items()) if t.status == "RUNNING"]
        total = self.info.num_samples
        eta = "estimating…"  # until the first trial has ended
        if self.durations:
            left = max(0, total - self.done)
            mean = sum(self.durations) / len(self.durations)
            eta = fmt_seconds(left * mean / max(1, len(running)))
        t = Table.grid(padding=(0, 1))
        t.add_column(overflow="fold")
        t.add_row(
            f"[bold]{self.info.name}[/] {self.done}/{total} done "
            f"({self.counts['STOPPED_EARLY']} stopped early, {self.counts['FAILED']} failed"
            + (f", {self.counts['DIVERGED']} diverged" if self.counts["DIVERGED"] else "")
            + ") · "
            f"{len(running)} running · {fmt_seconds(time.time() - self.started)} elapsed · "
            f"ETA {eta}"
        )
        for rid, trial in running[:8]:
            last = trial.last_result or {}
            fixed = self.info.space.get("fixed") or {}
            epochs = trial.config.get("epochs") or int(fixed.get("epochs", 5))
            shown = ""
            validated = self._validated.get(rid)  # noted by `update`, event by event
            if validated is not None:
                at, measured = validated
                when = "" if at == last.get("epoch") else f" (epoch {at})"
                shown = f"  {self.metric} {short(measured)}{when}"
            t.add_row(f"  ▸ {rid}  epoch {last.get('epoch', 0)}/{epochs}{shown}")
        if len(running) > 8:
            t.add_row(f"  … and {len(running) - 8} more running")
        best = self.best
        if best:
            values, tid, params = best
            figures = ", ".join(
                f"{o.metric} {short4(v)}" for o, v in zip(self.info.objectives, values, strict=True)
            )
            where = tid if len(values) == 1 else f"{tid}; {self.front_size} on the Pareto front"
            shown = ", ".join(f"{k}={short(v)}" for k, v in list(params.items())[:6])
            t.add_row(f"best {figures} ({where}): {shown}")
        return t


def fmt_seconds(seconds: float) -> str:
    """H:MM:SS."""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def short(v: Any) -> str:
    """A value in a few characters."""
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def short4(v: float) -> str:
    """An objective's value: 4 decimals, or 3 significant digits where that shows nothing
    (an inversion error of 1.2e-06)."""
    return f"{v:.4f}" if v == 0 or 1e-3 <= abs(v) < 1e6 else f"{v:.3g}"
