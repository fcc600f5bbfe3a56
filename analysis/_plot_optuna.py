"""Figures optuna.visualization already draws, made from the persisted optuna.db.

We only choose the target per objective (multi-objective studies need one) and the
parameters worth a slice/contour; drawing stays Optuna's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from ._load import Study
from ._style import finish

__all__ = ["Unavailable", "optuna_figures", "top_params"]


class Unavailable(Exception):
    """A section cannot be drawn; the message is shown in its place in the report."""


def _target(ostudy: Any, i: int) -> Callable[[Any], float] | None:
    """Optuna needs an explicit target for multi-objective studies, and only then."""
    if len(ostudy.directions) == 1:
        return None
    return lambda t: t.values[i]


def top_params(importances: pd.DataFrame, ostudy: Any, k: int = 3) -> list[str]:
    """The k most important parameters for objective 1 by fANOVA, else any k params."""
    ok = importances[(importances["param"] != "") & importances["importance"].notna()]
    if not ok.empty:
        first = ok[ok["evaluator"] == "fanova"]
        first = first if not first.empty else ok
        first = first[first["objective"] == first["objective"].iloc[0]]
        return list(first.sort_values("importance", ascending=False)["param"].head(k))
    names: dict[str, None] = {}
    for t in ostudy.get_trials(deepcopy=False):
        names.update(dict.fromkeys(t.params))
    return list(names)[:k]


def _complete(ostudy: Any) -> int:
    import optuna

    return len(ostudy.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def optuna_figures(study: Study, importances: pd.DataFrame) -> dict[str, list[go.Figure]]:
    """Figures per report section: history, parallel, importance, slice, contour, pareto.

    Raises Unavailable when there is no optuna.db or no complete trial in it.
    """
    import optuna.visualization as vis

    ostudy = study.load_optuna()
    if ostudy is None:
        raise Unavailable("no optuna.db in the study folder")
    if _complete(ostudy) == 0:
        raise Unavailable("optuna.db has no complete trial yet")
    objs = study.objectives
    names = [o.metric for o in objs]
    t0, n0 = _target(ostudy, 0), names[0]
    params = top_params(importances, ostudy)
    out: dict[str, list[go.Figure]] = {}
    out["history"] = [
        finish(
            vis.plot_optimization_history(ostudy, target=_target(ostudy, i), target_name=n),
            f"Optimization history: {n} ({o.mode}imise)",
        )
        for i, (o, n) in enumerate(zip(objs, names, strict=True))
    ]
    out["parallel"] = [
        finish(
            vis.plot_parallel_coordinate(ostudy, target=t0, target_name=n0),
            f"Parallel coordinates of the hyperparameters, coloured by {n0}",
            480,
        )
    ]
    from optuna.importance import FanovaImportanceEvaluator

    out["importance"] = [
        finish(  # the evaluator named: Optuna 5's default is PED-ANOVA
            vis.plot_param_importances(
                ostudy,
                evaluator=FanovaImportanceEvaluator(seed=0),
                target=_target(ostudy, i),
                target_name=n,
            ),
            f"Hyperparameter importance (fANOVA, finished trials only) for {n}",
        )
        for i, n in enumerate(names)
    ]
    out["slice"] = [
        finish(
            vis.plot_slice(ostudy, params=params or None, target=t0, target_name=n0),
            f"Slice plots of the top parameters ({', '.join(params)}) against {n0}",
        )
    ]
    if len(params) >= 2:
        out["contour"] = [
            finish(
                vis.plot_contour(ostudy, params=params, target=t0, target_name=n0),
                f"Contour of {n0} over the top parameters",
                600,
            )
        ]
    if len(objs) in (2, 3):
        out["pareto"] = [
            finish(
                vis.plot_pareto_front(ostudy, target_names=names),
                "Pareto front: "
                + " vs ".join(f"{n} ({o.mode})" for o, n in zip(objs, names, strict=True)),
                520,
            )
        ]
    return out
