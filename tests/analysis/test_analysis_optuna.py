"""Optuna's figures as the report draws them: categorical parameters on category axes."""

from __future__ import annotations

import warnings

import numpy as np
import optuna
import pytest

from analysis._plot_optuna import _contour, _slice, categorical_params
from revstudy.studyfolder import Objective

CHOICES = [32, 64, 128, 256, 512]


@pytest.fixture(scope="module")
def ostudy() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    st = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))

    def f(t: optuna.Trial) -> float:
        y = t.suggest_categorical("y_dim", CHOICES)
        return y / 512 + t.suggest_float("lr", 1e-4, 1e-2, log=True)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st.optimize(f, n_trials=16)
    return st


def test_numeric_choices_are_drawn_as_categories(ostudy: optuna.Study) -> None:
    """Issue #22.6: y_dim is a set of code sizes, not a number line."""
    assert categorical_params(ostudy) == {"y_dim": CHOICES}
    fig = _slice(ostudy, [Objective("m")], ["y_dim", "lr"])[0]
    axes = {fig.layout[k].title.text: fig.layout[k] for k in fig.layout if k.startswith("xaxis")}
    assert axes["y_dim"].type == "category" and axes["lr"].type == "log"
    assert list(axes["y_dim"].categoryarray) == [str(c) for c in CHOICES]
    points = [t for t in fig.data if t.xaxis == "x2"]
    assert points and set(points[0].x) <= {str(c) for c in CHOICES}
    drawn = sorted(int(v) for t in points for v in t.x)
    want = sorted(t.params["y_dim"] for t in ostudy.trials)
    assert drawn == want  # every trial, at its own choice


def test_the_contour_keeps_only_real_choices(ostudy: optuna.Study) -> None:
    fig = _contour(ostudy, [Objective("m")], ["y_dim", "lr"])[0]
    names = [k for k in fig.layout if k.startswith(("xaxis", "yaxis"))]
    (name,) = [k for k in names if fig.layout[k].title.text == "y_dim"]
    assert fig.layout[name].type == "category"
    letter = name[0]
    (contour,) = [t for t in fig.data if t.type == "contour"]
    labels = list(getattr(contour, letter))
    used = sorted({t.params["y_dim"] for t in ostudy.trials})
    assert labels == [str(c) for c in used]  # Optuna's padding rows are gone
    z = np.asarray(contour.z)
    assert z.shape[0 if letter == "y" else 1] == len(labels)
