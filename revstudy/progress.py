"""Live study progress in the terminal and the driver-side bookkeeping of trials.

`StudyCallback` is a Ray Tune callback: it writes each trial's `trial.json` (Optuna number,
params, baseline flag), refreshes the tidy tables as trials report and end, and draws a
compact rich panel (done / running / stopped early / failed, best so far, elapsed, ETA)
instead of Ray's tables. `StudyStopper` ends a study whose first trials all fail.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ray import tune
from rich.console import Console
from rich.live import Live
from rich.table import Table

from revstudy.records import optuna_url, read_json, refresh_tables, trial_dir, write_json_atomic
from revstudy.spaces import SearchSpace, baseline_params
from revstudy.studyfolder import (
    FINAL_KEY,
    PER_EPOCH,
    STATE_FILE,
    TRIAL_KEY,
    Objective,
    public_params,
    rank_key,
)


class StudyStopper(tune.Stopper):
    """Stop everything once `threshold` trials failed and none succeeded."""

    def __init__(self, threshold: int):
        self.threshold = max(1, threshold)
        self.failed = 0
        self.succeeded = 0

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.succeeded == 0 and self.failed >= self.threshold


class StudyCallback(tune.Callback):
    def __init__(
        self,
        study: Path,
        info: dict[str, Any],
        stopper: StudyStopper,
        live: bool = True,
        done_before: int = 0,
    ):
        self.study = study
        self.info = info
        self.stopper = stopper
        self.metric = info["objectives"][0]["metric"]
        self.mode = info["objectives"][0]["mode"]
        self.trials: dict[str, Any] = {}
        self.done_before = done_before  # trials that ended in earlier driver runs
        self.best: tuple[float, str, dict[str, Any]] | None = None
        self._best_key: tuple[int, float] | None = None
        self.started = time.time()
        self.durations: list[float] = []
        self.counts = {"COMPLETED": 0, "STOPPED_EARLY": 0, "FAILED": 0}
        self.console = Console(stderr=True)
        self.live_enabled = live and self.console.is_terminal
        self._live: Live | None = None
        self._last_refresh = 0.0

        self._space = SearchSpace.from_info(info["space"])
        self._baseline = baseline_params(self._space) if info.get("baseline") else None

    def __getstate__(self) -> dict[str, Any]:
        """Ray pickles run configs (tuner.pkl): leave out the terminal and live trials."""
        state = dict(self.__dict__)
        state.update(console=None, _live=None, trials={})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.console = Console(stderr=True)

    # -- display ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def display(self) -> Iterator[None]:
        if self.live_enabled:
            with Live(self._render(), console=self.console, refresh_per_second=2) as live:
                self._live = live
                yield
                live.update(self._render())
            self._live = None
        else:
            yield

    def _render(self) -> Table:
        """A few short lines that fit 80 columns: counts and times, each running trial
        (epoch and objective so far, like Ray's CLIReporter but compact), the best so far."""
        running = [(rid, t) for rid, t in self.trials.items() if t.status == "RUNNING"]
        done = sum(self.counts.values()) + self.done_before
        total = self.info["num_samples"]
        elapsed = time.time() - self.started
        eta = "estimating…"  # until the first trial has ended
        if self.durations:
            parallel = max(1, len(running))
            left = max(0, total - done)
            eta = _fmt(left * (sum(self.durations) / len(self.durations)) / parallel)
        t = Table.grid(padding=(0, 1))
        t.add_column(overflow="fold")
        t.add_row(
            f"[bold]{self.info['name']}[/] {done}/{total} done "
            f"({self.counts['STOPPED_EARLY']} stopped early, {self.counts['FAILED']} failed) · "
            f"{len(running)} running · {_fmt(elapsed)} elapsed · ETA {eta}"
        )
        per_epoch = PER_EPOCH.get(self.metric)
        for rid, trial in running[:8]:
            last = trial.last_result or {}
            epochs = trial.config.get("epochs") or _config_epochs(self.info)
            value = last.get(per_epoch) if per_epoch else None
            shown = f"  {self.metric} {_short(value)}" if value is not None else ""
            t.add_row(f"  ▸ {rid}  epoch {last.get('epoch', 0)}/{epochs}{shown}")
        if len(running) > 8:
            t.add_row(f"  … and {len(running) - 8} more running")
        if self.best:
            value, tid, params = self.best
            shown = ", ".join(f"{k}={_short(v)}" for k, v in list(params.items())[:6])
            t.add_row(f"best {self.metric} {value:.4f} ({tid}): {shown}")
        return t

    def _say(self, text: str) -> None:
        if self._live is not None:
            self._live.update(self._render())
        else:
            print(text, file=sys.stderr, flush=True)

    # -- records ---------------------------------------------------------------------------
    def ray_states(self) -> dict[str, dict[str, Any]]:
        """Ray's view of this run's trials, keyed by trial folder id."""
        out = {}
        for tid, t in self.trials.items():
            err = ""
            if t.status == "ERROR":
                err = str(getattr(t, "error_file", "") or "failed (see Ray logs)")
            out[tid] = {
                "status": t.status,
                "config": public_params(dict(t.config)),
                "error": err,
                "last_result": dict(t.last_result or {}),
            }
        return out

    def _refresh(self, force: bool = False) -> None:
        now = time.time()
        if force or now - self._last_refresh > 5:
            self._last_refresh = now
            refresh_tables(self.study, self.ray_states())

    def _optuna_number(self, trial_id: str) -> int | None:
        """Optuna's number for a Ray trial (the searcher tags each Optuna trial with it)."""
        import optuna

        try:
            s = optuna.load_study(study_name=self.info["name"], storage=optuna_url(self.study))
        except Exception:
            return None
        for t in reversed(s.get_trials(deepcopy=False)):
            if t.user_attrs.get("ray_trial_id") == trial_id:
                return int(t.number)
        return None

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        rid = record_id(trial)
        self.trials[rid] = trial
        meta_path = trial_dir(self.study, rid) / "trial.json"
        if not meta_path.is_file():
            params = public_params(dict(trial.config))
            try:
                config = self._space.to_config(params).to_dict()
            except Exception:  # the trial itself reports an invalid config as its failure
                config = {}
            write_json_atomic(
                meta_path,
                {
                    "config": config,
                    "trial_id": rid,
                    "number": self._optuna_number(rid),
                    "params": params,
                    "is_baseline": self._baseline is not None and params == self._baseline,
                    "device": "cuda" if self.info.get("gpus_per_trial") else "cpu",
                },
            )
        self._say(f"trial {rid} started")

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self.trials[record_id(trial)] = trial
        self._refresh()
        if self._live is not None:
            self._live.update(self._render())

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        rid = record_id(trial)
        self.trials[rid] = trial
        # finished or stopped for good: its checkpoint is no longer needed (lean folders)
        (trial_dir(self.study, rid) / STATE_FILE).unlink(missing_ok=True)
        result = trial.last_result or {}
        state = "COMPLETED" if result.get(FINAL_KEY) else "STOPPED_EARLY"
        self.counts[state] += 1
        self.stopper.succeeded += 1
        self.durations.append(float(result.get("time_total_s", 0.0) or 0.0))
        value = result.get(self.metric)
        if isinstance(value, int | float) and value == value:
            # the study folder's ranking: completed trials before early-stopped ones
            key = rank_key(state, float(value), Objective(self.metric, self.mode))
            if self._best_key is None or key < self._best_key:
                self._best_key = key
                self.best = (float(value), rid, public_params(dict(trial.config)))
        self._refresh(force=True)
        self._say(
            f"trial {rid} {state.lower()}: {self.metric}={_short(value)} "
            f"[{sum(self.counts.values()) + self.done_before}/{self.info['num_samples']}]"
        )

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        rid = record_id(trial)
        self.trials[rid] = trial
        self.counts["FAILED"] += 1
        self.stopper.failed += 1
        self._refresh(force=True)
        reason = (read_json(trial_dir(self.study, rid) / "failure.json") or {}).get("reason", "")
        self._say(f"trial {rid} failed: {reason}")


def record_id(trial: Any) -> str:
    """The trial's folder id: its first Ray id, kept when `resume` continues it."""
    return str(trial.config.get(TRIAL_KEY) or trial.trial_id)


def _config_epochs(info: dict[str, Any]) -> int:
    return int(info["space"]["fixed"].get("epochs", 5))


def _fmt(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
