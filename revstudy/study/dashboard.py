"""`revstudy dashboard STUDY` (issue #34): optuna-dashboard over the study's Optuna record, live
while the study runs, with revstudy's view of each trial and nothing written.

optuna-dashboard reads trials through an Optuna storage; `StudyView` is one over the
study's Optuna record that adds, to every trial of the study, revstudy's state and key figures
from the trial records (`revstudy_state`: COMPLETED, STOPPED_EARLY, DIVERGED, DAMAGED,
INTERRUPTED, …, which Optuna's four states cannot say) as user attributes, re-read every
couple of seconds as the dashboard polls. Warm-start trials (`launch --warm-start`) are
left out, as the report leaves them out: they are not the study's results. Every write the
dashboard offers (delete or rename a study, notes, telling a trial) is refused: a dashboard
must not change or delete a study a driver may be running.
"""

from __future__ import annotations

import math
import socket
import sys
import threading
import time
from collections.abc import Container, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial, TrialState

from revstudy.errors import RevstudyError
from revstudy.jsontypes import is_number
from revstudy.optunafile import optuna_path, optuna_storage
from revstudy.study.optuna_store import RAY_ID_ATTR, check_owner
from revstudy.studyfolder import find_study
from revstudy.studyinfo import WARM_START_ATTR, read_study
from revstudy.trialtable import load_trials

__all__ = ["SHOWN_FIGURES", "StudyView", "serve"]

# figures of the trial records shown beside Optuna's values (when a trial has them)
SHOWN_FIGURES = (
    "epochs_done",
    "f1_macro",
    "f1_macro_skill",
    "f1_macro_skill_relabelled",
    "retrieval_mrr",
    "inv_error_max",
    "z_free_mean_mean",
    "z_free_std_mean",
    "bond_count_corr",
    "aromatic_corr",
    "params_millions",
    "violation",
    "wall_seconds",
)
REFRESH_S = 2.0  # how old the trial records may be (optuna-dashboard polls every ~2 s)


class ReadOnlyStudy(RevstudyError):
    """What the dashboard gets for a write: the study is shown, never changed."""


class StudyView(BaseStorage):
    """A read-only Optuna storage over a study's Optuna record, its trials carrying revstudy's
    states and figures as `revstudy_*` user attributes."""

    def __init__(self, study: Path):
        self.study = study
        self._inner = optuna_storage(study)  # optuna.journal, or an older study's optuna.db
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Any]] = {}
        self._read_at = 0.0

    # -- revstudy's view of each trial ----------------------------------------------------
    def records(self) -> dict[str, dict[str, Any]]:
        """{trial folder id: revstudy attributes}, re-read at most every `REFRESH_S`."""
        with self._lock:
            if time.monotonic() - self._read_at > REFRESH_S:
                self._records = _records(self.study)
                self._read_at = time.monotonic()
            return self._records

    def _with_records(self, trial: FrozenTrial) -> FrozenTrial:
        extra = self.records().get(str(trial.user_attrs.get(RAY_ID_ATTR, "")))
        if not extra:
            return trial
        return optuna.trial.FrozenTrial(
            number=trial.number,
            state=trial.state,
            value=None,
            values=trial.values,
            datetime_start=trial.datetime_start,
            datetime_complete=trial.datetime_complete,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs={**trial.user_attrs, **extra},
            system_attrs=trial.system_attrs,
            intermediate_values=trial.intermediate_values,
            trial_id=trial._trial_id,
        )

    # -- reads ----------------------------------------------------------------------------
    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        trials = self._inner.get_all_trials(study_id, deepcopy=deepcopy, states=states)
        # warm-start trials are sampler history, not the study's: left out, as in the report
        return [self._with_records(t) for t in trials if WARM_START_ATTR not in t.user_attrs]

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self._with_records(self._inner.get_trial(trial_id))

    def get_all_studies(self) -> list[FrozenStudy]:
        return self._inner.get_all_studies()

    def get_study_id_from_name(self, study_name: str) -> int:
        return self._inner.get_study_id_from_name(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._inner.get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self._inner.get_study_directions(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._inner.get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._inner.get_study_system_attrs(study_id)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._inner.get_trial_id_from_study_id_trial_number(study_id, trial_number)

    def get_trial_number_from_id(self, trial_id: int) -> int:
        return self._inner.get_trial_number_from_id(trial_id)

    # -- writes: refused ------------------------------------------------------------------
    def _refuse(self, *args: Any, **kw: Any) -> Any:
        raise ReadOnlyStudy(f"{optuna_path(self.study)}: `revstudy dashboard` only shows it")

    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        return self._refuse()

    def delete_study(self, study_id: int) -> None:
        self._refuse()

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._refuse()

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self._refuse()

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        return self._refuse()

    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float, distribution: Any
    ) -> None:
        self._refuse()

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        return self._refuse()

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        self._refuse()

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._refuse()

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._refuse()


def _records(study: Path) -> dict[str, dict[str, Any]]:
    """revstudy's state, failure reason and key figures per trial folder id."""
    import warnings

    with warnings.catch_warnings():  # a damaged table is rebuilt from the folders
        warnings.simplefilter("ignore")
        table = load_trials(study)
    out: dict[str, dict[str, Any]] = {}
    for row in table.to_dict("records"):
        attrs: dict[str, Any] = {"revstudy_state": str(row.get("state", ""))}
        reason = row.get("failure_reason")
        if isinstance(reason, str) and reason:
            attrs["revstudy_failure"] = reason[:300]
        for key in SHOWN_FIGURES:
            v = row.get(key)
            if is_number(v) and math.isfinite(v):
                attrs[f"revstudy_{key}"] = int(v) if key == "epochs_done" else float(v)
        out[str(row.get("trial_id"))] = attrs
    return out


def serve(name: str, storage: str | None, host: str, port: int) -> None:
    """Serve study `name` (a name under `storage`, or a folder) at http://host:port until
    interrupted; one-line errors for a missing study, package or busy port."""
    try:
        import optuna_dashboard
    except ImportError:
        raise RevstudyError(
            "revstudy dashboard: optuna-dashboard is not installed; "
            "pip install 'revstudy[dashboard]'"
        ) from None
    study = find_study(name, storage)
    info = read_study(study)
    if not optuna_path(study).is_file():
        raise RevstudyError(f"{optuna_path(study)}: missing; nothing to show")
    view = StudyView(study)
    check_owner(
        optuna_path(study), optuna.load_study(study_name=info.optuna_name, storage=view), info
    )
    try:
        with socket.create_server((host, port)):
            pass  # free now (the dashboard binds it next)
    except OSError as e:
        raise RevstudyError(
            f"revstudy dashboard: cannot listen on {host}:{port} ({e.strerror or e}); "
            "choose another --port"
        ) from None
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: serving on {host}: anyone who can reach this machine's port {port} can "
            "see the study (it cannot change it)",
            file=sys.stderr,
        )
    print(f"study {info.name}: http://{host}:{port}/dashboard/ (Ctrl-C stops)", flush=True)
    optuna_dashboard.run_server(view, host=host, port=port)
