"""The in-memory copies that keep fANOVA and Optuna's contour usable at 10³-10⁴ trials
(analysis._optuna_views), and the report figures drawn from them."""

from __future__ import annotations

import warnings

import numpy as np
import optuna
import pandas as pd
import pytest

from analysis import _stats
from analysis._optuna_views import binned, sampled
from analysis._plot_optuna import _contour, _importance
from revstudy.studyfolder import Objective


def _study(n: int, constrained: bool = False) -> optuna.Study:
    """`n` complete trials: a log-scaled float, an int with few values, a categorical."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    st = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    dists = {
        "lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
        "blocks": optuna.distributions.IntDistribution(1, 6),
        "y_dim": optuna.distributions.CategoricalDistribution([64, 128]),
    }
    rng = np.random.default_rng(n)
    trials = []
    for i in range(n):
        params = {
            "lr": float(10 ** rng.uniform(-4, -2)),
            "blocks": int(rng.integers(1, 7)),
            "y_dim": [64, 128][i % 2],
        }
        attrs = {"constraints": [float(rng.normal())]} if constrained else {}
        value = float(np.log10(params["lr"]) + rng.normal(0, 0.1))
        trials.append(
            optuna.trial.create_trial(
                params=params, distributions=dists, value=value, system_attrs=attrs
            )
        )
    st.add_trials(trials)
    return st


def test_a_small_study_is_passed_through_unchanged() -> None:
    st = _study(40)
    trials = st.get_trials(deepcopy=False)
    assert sampled(st, trials, k=40) is st
    assert binned(st, ["lr", "blocks", "y_dim"], levels=40) == (st, [])


def test_the_fanova_sample_is_seeded_and_keeps_trials_whole() -> None:
    st = _study(60)
    trials = st.get_trials(deepcopy=False)
    one, two = sampled(st, trials, k=20), sampled(st, trials, k=20)
    key = [(t.params["lr"], t.value) for t in one.trials]
    assert len(key) == 20 and key == [(t.params["lr"], t.value) for t in two.trials]
    every = {(t.params["lr"], t.value) for t in trials}
    assert set(key) <= every  # each a trial of the study, params and value together
    order = [next(i for i, t in enumerate(trials) if t.params["lr"] == lr) for lr, _ in key]
    assert order == sorted(order)  # in trial order


def test_binning_keeps_order_values_constraints_and_small_parameters() -> None:
    st = _study(250, constrained=True)
    copy, coarse = binned(st, ["lr", "blocks", "y_dim"], levels=25)
    assert coarse == ["lr"]  # blocks (6 values) and the categorical are left alone
    before, after = st.get_trials(deepcopy=False), copy.get_trials(deepcopy=False)
    assert len(after) == len(before)
    old = np.array([t.params["lr"] for t in before])
    new = np.array([t.params["lr"] for t in after])
    assert len(set(new)) == 25 and set(new) <= set(old)  # observed values only
    order = np.argsort(old, kind="stable")
    assert (np.diff(new[order]) >= 0).all()  # neighbours stay neighbours
    for a, b in zip(before, after, strict=True):
        assert (a.value, a.params["blocks"], a.params["y_dim"]) == (
            b.value,
            b.params["blocks"],
            b.params["y_dim"],
        )
        assert a.system_attrs == b.system_attrs  # constraints drawn as before
    runs = pd.Series(old).groupby(new).agg(["min", "max", "size"])
    assert (runs["size"] == 10).all()  # 250 distinct values, 25 runs of 10


def test_the_contour_of_a_large_study_is_binned_and_says_so() -> None:
    st = _study(400)
    fig = _contour(st, [Objective("m")], ["lr", "blocks"])[0]
    assert "(lr binned to 100 levels)" in fig.layout.title.text
    (contour,) = [t for t in fig.data if t.type == "contour"]
    assert np.asarray(contour.z).shape[0] * np.asarray(contour.z).shape[1] <= 102 * 8
    small = _contour(_study(30), [Objective("m")], ["lr", "blocks"])[0]
    assert "binned" not in small.layout.title.text


def test_fanova_runs_once_on_a_sample_and_the_figure_draws_its_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The figure is drawn from the table's fANOVA values (fANOVA is not run again), and
    past FANOVA_TRIALS the table says it used a sample."""
    st = _study(80)
    calls: list[int] = []
    evaluate = optuna.importance.FanovaImportanceEvaluator.evaluate

    def counted(self, study, params=None, *, target=None):  # type: ignore[no-untyped-def]
        calls.append(len(study.trials))
        return evaluate(self, study, params, target=target)

    monkeypatch.setattr(optuna.importance.FanovaImportanceEvaluator, "evaluate", counted)
    monkeypatch.setattr(_stats, "FANOVA_TRIALS", 50)
    study = type("S", (), {"objectives": [Objective("m")], "load_optuna": lambda self: st})()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = _stats.param_importances(study)  # type: ignore[arg-type]
        figures = _importance(st, [Objective("m")], table)
    assert calls == [50]
    fan = table[table["evaluator"] == "fanova"]
    assert (fan["n_trials"] == 50).all()
    assert (fan["note"] == "a seeded random 50 of 80 finished trials").all()
    (fig,) = figures
    assert "a seeded random 50 of 80 finished trials" in fig.layout.title.text
    (bars,) = fig.data
    drawn = dict(zip(bars.y, bars.x, strict=True))
    assert drawn == pytest.approx(dict(zip(fan["param"], fan["importance"], strict=True)))
