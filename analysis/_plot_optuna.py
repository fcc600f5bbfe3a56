"""Figures optuna.visualization already draws, made from the persisted Optuna record.

We only choose the target per objective (multi-objective studies need one) and the
parameters worth a slice/contour; drawing stays Optuna's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from revstudy.studyfolder import Objective

from ._load import Study
from ._optuna_views import CONTOUR_LEVELS, binned
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


def _loaded(study: Study) -> Any:
    """The study's Optuna record, or Unavailable saying why there is nothing to draw."""
    try:
        ostudy = study.load_optuna()
    except ValueError as e:  # another study's record, or a damaged one
        raise Unavailable(str(e)) from None
    if ostudy is None:
        raise Unavailable("no Optuna record (optuna.journal) in the study folder")
    if _complete(ostudy) == 0:
        raise Unavailable("the Optuna record has no complete trial yet")
    return ostudy


def _history(ostudy: Any, objs: Sequence[Objective]) -> list[go.Figure]:
    """One optimization history per objective, each with its own target."""
    import optuna.visualization as vis

    return [
        finish(
            vis.plot_optimization_history(ostudy, target=_target(ostudy, i), target_name=o.metric),
            f"Optimization history: {o.metric} ({o.mode}imise)",
        )
        for i, o in enumerate(objs)
    ]


def _importance(
    ostudy: Any, objs: Sequence[Objective], importances: pd.DataFrame
) -> list[go.Figure]:
    """fANOVA importance per objective, drawn by Optuna from the importances the report's
    table holds (`analysis._stats.param_importances`): computing them again here doubled
    the report's time (fANOVA: 22 s an objective at 1,000 trials). An objective whose
    fANOVA could not run has no figure; the table gives the reason."""
    import optuna.visualization as vis
    from optuna.importance import BaseImportanceEvaluator

    class Given(BaseImportanceEvaluator):
        def __init__(self, values: dict[str, float]):
            self.values = values

        def evaluate(self, study: Any, params: Any = None, *, target: Any = None) -> dict:
            return dict(self.values)

    figures = []
    for i, o in enumerate(objs):
        rows = importances[
            (importances["objective"] == o.metric)
            & (importances["evaluator"] == "fanova")
            & (importances["param"] != "")
            & importances["importance"].notna()
        ]
        if rows.empty:
            continue
        whom = str(rows["note"].iloc[0]) or "finished trials only"  # a sample, named (_stats)
        values = dict(zip(rows["param"], rows["importance"].astype(float), strict=True))
        figures.append(
            finish(
                vis.plot_param_importances(
                    ostudy, evaluator=Given(values), target=_target(ostudy, i), target_name=o.metric
                ),
                f"Hyperparameter importance (fANOVA, {whom}) for {o.metric}",
            )
        )
    return figures


def _parallel(ostudy: Any, objs: Sequence[Objective]) -> list[go.Figure]:
    """Parallel coordinates of all parameters, coloured by objective 1."""
    import optuna.visualization as vis

    n0 = objs[0].metric
    return [
        finish(
            vis.plot_parallel_coordinate(ostudy, target=_target(ostudy, 0), target_name=n0),
            f"Parallel coordinates of the hyperparameters, coloured by {n0}",
            480,
        )
    ]


def categorical_params(ostudy: Any) -> dict[str, list[Any]]:
    """Categorical parameters and their choices, as the study's trials declare them."""
    from optuna.distributions import CategoricalDistribution

    out: dict[str, list[Any]] = {}
    for t in ostudy.get_trials(deepcopy=False):
        for name, dist in t.distributions.items():
            if isinstance(dist, CategoricalDistribution):
                out.setdefault(name, list(dist.choices))
    return out


def as_categories(fig: go.Figure, choices: dict[str, list[Any]]) -> go.Figure:
    """Axes of categorical parameters drawn as categories, in their declared order.

    Optuna draws a categorical parameter whose choices are all numbers (`y_dim`: 32, 64,
    128, 256, 512) on a numeric axis, as if 96 bits lay between 64 and 128 and 512 were
    far away; it is a set of choices, and the axis says so. A contour matrix titles only
    its outer row and column; every other axis `matches` one of those, and is converted
    with it. Two plotly.js limits leave a whole figure blank, so both are kept clear of: a
    category axis matched to a numeric one, and a contour on a category axis that declares
    a category its grid lacks (the untried choices are left out of a contour's axes)."""
    axes = [k for k in fig.layout if k.startswith(("xaxis", "yaxis"))]
    titles = {a[0] + a[5:]: fig.layout[a].title.text for a in axes}  # "xaxis2" -> "x2"
    params = {a: titles[a[0] + a[5:]] or titles.get(fig.layout[a].matches or "") for a in axes}
    gridded: dict[str, set[str]] = {}  # a parameter's labels on contour grids
    for axis, title in params.items():
        if title not in choices:
            continue
        letter, ref = axis[0], axis[0] + axis[5:]  # the traces drawn on this axis name it so
        for trace in fig.data:
            if getattr(trace, f"{letter}axis", None) in (ref, None if ref in "xy" else "-"):
                _to_labels(trace, letter, choices[title])
                if trace.type == "contour" and getattr(trace, letter) is not None:
                    gridded.setdefault(title, set()).update(getattr(trace, letter))
    for axis, title in params.items():
        if title in choices:
            labels = [str(c) for c in choices[title]]
            if title in gridded:
                labels = [c for c in labels if c in gridded[title]]
            fig.layout[axis].update(
                type="category",
                categoryorder="array",
                categoryarray=labels,
                # every category shown, half a slot either side (Optuna's numeric range,
                # padded, means nothing here; autorange would hide untried choices)
                range=[-0.5, len(labels) - 0.5],
            )
    return fig


def _to_labels(trace: Any, letter: str, choices: list[Any]) -> None:
    """A trace's coordinates on a categorical axis as the choices' labels. A contour's grid
    has padding points beyond the extreme choices (Optuna pads numeric axes): those rows or
    columns are dropped, as there is no category between or beyond choices."""
    values = getattr(trace, letter, None)
    if values is None:
        return
    labels = [_label(v, choices) for v in values]
    if trace.type == "contour" and trace.z is not None:
        keep = [i for i, lab in enumerate(labels) if lab is not None]
        z = np.asarray(trace.z, dtype=float)
        z = z[keep, :] if letter == "y" else z[:, keep]
        trace.update({letter: [labels[i] for i in keep], "z": z})
    else:
        trace.update(
            {
                letter: [
                    lab if lab is not None else str(v)
                    for lab, v in zip(labels, values, strict=True)
                ]
            }
        )


def _label(value: Any, choices: list[Any]) -> str | None:
    """The label of the choice `value` stands for (64.0 stands for 64), else None."""
    for c in choices:
        if value == c or str(value) == str(c):
            return str(c)
        try:
            if float(value) == float(c):
                return str(c)
        except (TypeError, ValueError):
            continue
    return None


def _slice(ostudy: Any, objs: Sequence[Objective], params: list[str]) -> list[go.Figure]:
    """Slices of objective 1 over the top parameters (all of them when none is known)."""
    import optuna.visualization as vis

    t0, n0 = _target(ostudy, 0), objs[0].metric
    return [
        finish(
            as_categories(
                vis.plot_slice(ostudy, params=params or None, target=t0, target_name=n0),
                categorical_params(ostudy),
            ),
            f"Slice plots of the top parameters ({', '.join(params)}) against {n0}",
        )
    ]


def _contour(ostudy: Any, objs: Sequence[Objective], params: list[str]) -> list[go.Figure]:
    """Contour of objective 1 over the top parameters; the caller needs two or more.
    Optuna's contour holds a cell for every pair of distinct values: a parameter with more
    than `CONTOUR_LEVELS` of them is binned first (`analysis._optuna_views.binned`), and the
    title says which."""
    import optuna.visualization as vis

    t0, n0 = _target(ostudy, 0), objs[0].metric
    drawn, coarse = binned(ostudy, params)
    note = f" ({', '.join(coarse)} binned to {CONTOUR_LEVELS} levels)" if coarse else ""
    return [
        finish(
            as_categories(
                vis.plot_contour(drawn, params=params, target=t0, target_name=n0),
                categorical_params(ostudy),
            ),
            f"Contour of {n0} over the top parameters{note}",
            600,
        )
    ]


def _pareto(ostudy: Any, objs: Sequence[Objective]) -> list[go.Figure]:
    """The Pareto front over all objectives; Optuna draws it for two or three only."""
    import optuna.visualization as vis

    return [
        finish(
            vis.plot_pareto_front(ostudy, target_names=[o.metric for o in objs]),
            "Pareto front: " + " vs ".join(f"{o.metric} ({o.mode})" for o in objs),
            520,
        )
    ]


def optuna_figures(study: Study, importances: pd.DataFrame) -> dict[str, list[go.Figure]]:
    """Figures per report section: history, parallel, importance, slice, contour, pareto.

    Raises Unavailable when there is no Optuna record or no complete trial in it.
    """
    ostudy = _loaded(study)
    objs = study.objectives
    params = top_params(importances, ostudy)
    out: dict[str, list[go.Figure]] = {
        "history": _history(ostudy, objs),
        "parallel": _parallel(ostudy, objs),
        "importance": _importance(ostudy, objs, importances),
        "slice": _slice(ostudy, objs, params),
    }
    if len(params) >= 2:
        out["contour"] = _contour(ostudy, objs, params)
    if len(objs) in (2, 3):
        out["pareto"] = _pareto(ostudy, objs)
    return out
