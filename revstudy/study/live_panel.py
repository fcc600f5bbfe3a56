"""The study's live terminal panel: counts, times, each running trial's epoch and objective,
the best trial so far, in a few lines that fit 80 columns (instead of Ray's tables).

Display only: `revstudy.study.callbacks.StudyCallback` feeds it from Ray's trial events and
keeps the records."""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from revstudy.studyfolder import PER_EPOCH, rank_key
from revstudy.studyinfo import StudyInfo

ENDED = ("COMPLETED", "STOPPED_EARLY", "DIVERGED", "FAILED")


class LivePanel:
    """What the panel shows, updated as trials start, report and end."""

    def __init__(self, info: StudyInfo, live: bool = True, done_before: int = 0):
        self.info = info
        self.objective = info.objectives[0]
        self.done_before = done_before  # trials that ended in earlier driver runs
        self.counts = dict.fromkeys(ENDED, 0)
        self.best: tuple[float, str, dict[str, Any]] | None = None
        self._best_key: tuple[int, float] | None = None
        self.durations: list[float] = []
        self.started = time.time()
        self.console = Console(stderr=True)
        self.enabled = live and self.console.is_terminal
        self._live: Live | None = None
        # each running trial's last validated objective: epochs `val_every` skips report NaN
        self._validated: dict[str, tuple[int, float]] = {}

    @property
    def metric(self) -> str:
        return self.objective.metric

    @property
    def done(self) -> int:
        return sum(self.counts.values()) + self.done_before

    def ended(self, state: str, rid: str, result: dict[str, Any], params: dict[str, Any]) -> None:
        """Count a trial that ended; keep the best under the study folder's ranking
        (completed trials before early-stopped ones)."""
        self.counts[state] += 1
        if state in ("FAILED", "DIVERGED"):  # never the best
            return
        self.durations.append(float(result.get("time_total_s", 0.0) or 0.0))
        value = result.get(self.metric)
        if isinstance(value, int | float) and value == value:
            key = rank_key(state, float(value), self.objective)
            if self._best_key is None or key < self._best_key:
                self._best_key = key
                self.best = (float(value), rid, params)

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
        if self.best:
            value, tid, params = self.best
            shown = ", ".join(f"{k}={short(v)}" for k, v in list(params.items())[:6])
            t.add_row(f"best {self.metric} {value:.4f} ({tid}): {shown}")
        return t


def fmt_seconds(seconds: float) -> str:
    """H:MM:SS."""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def short(v: Any) -> str:
    """A value in a few characters."""
    return f"{v:.3g}" if isinstance(v, float) else str(v)
