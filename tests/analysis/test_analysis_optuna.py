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


def matrix_study() -> optuna.Study:
    """Three parameters, so the contour is a matrix; y_dim's choice 256 never tried."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    st = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(1))
    rng = np.random.default_rng(1)
    for i in range(6):
        st.enqueue_trial(
            {"y_dim": [64, 128][i % 2], "lr": float(10 ** rng.uniform(-3, -2)), "blocks": i + 1}
        )

    def f(t: optuna.Trial) -> float:
        y = t.suggest_categorical("y_dim", [64, 128, 256])
        return y / 256 + t.suggest_float("lr", 1e-4, 1e-2, log=True) + t.suggest_int("blocks", 1, 6)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st.optimize(f, n_trials=6)
    return st


def test_every_axis_of_a_contour_matrix_row_or_column_is_one_kind() -> None:
    """Optuna titles only the matrix's outer axes; the inner ones `match` them. Converting
    the titled axis alone left the others numeric, and plotly.js then drew nothing."""
    fig = _contour(matrix_study(), [Objective("m")], ["lr", "y_dim", "blocks"])[0]
    axes = {k: fig.layout[k] for k in fig.layout if k.startswith(("xaxis", "yaxis"))}
    titled = {k[0] + k[5:]: a.title.text for k, a in axes.items() if a.title.text}
    of_y_dim = [k for k, a in axes.items() if titled.get(a.matches or k[0] + k[5:]) == "y_dim"]
    assert len(of_y_dim) == 6  # a row and a column of three
    for k in of_y_dim:
        # only the tried choices: a contour on a category its grid lacks crashes plotly.js
        assert axes[k].type == "category" and list(axes[k].categoryarray) == ["64", "128"]
        assert list(axes[k].range) == [-0.5, 1.5]
    others = [a for k, a in axes.items() if k not in of_y_dim]
    assert others and all(a.type != "category" for a in others)
