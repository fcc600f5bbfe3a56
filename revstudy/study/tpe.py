"""Optuna's TPE with the work on finished trials done once per set of finished trials.

Optuna 5's `TPESampler` (multivariate, `constant_liar` on by default) rebuilds everything
on every ask: it splits all finished trials into the better ones (below) and the rest
(above), converts every trial's parameters, and fits a Parzen estimator to each part. At
10^4 trials that is ~55 ms of Python loops on 2 cores, more than half of an ask
(benchmarks/driver_loop.py). A study asks many times between two finished trials (a pack's
K members, the first trials of a parallel study), and what those asks see differs only in
the running trials: the finished set only grows (finished Optuna trials are never modified
or deleted, so its size names it), and the constant liar puts running trials in `above`
alone, never in `below`, and never counts them in the split.

`FitOnceTPESampler` keeps, for the latest finished set: its split, whatever the search space
(in a one-objective study taken from the finished trials kept in the split's orders,
`SplitOrders`, so a lone trial's ask does not sort 10^4 trials again); for each search space
(a pack's first member samples the whole space, the others the space left when its shape is
fixed) the `below` estimator and `above`'s converted parameters in trial order; and, per
search space, every finished trial's converted parameters as arrays in trial order
(`SpaceTable`, each trial converted once), of which `above` is all but the few `below`
trials. Trials new to a finished set are found from the newest back, and the study's
journal hands over its finished and running trials without walking every trial
(`_trials_in`). Each ask adds its running trials to `above` in trial order, builds that
estimator (`ScatterParzenEstimator`: Optuna's, one sort fewer), draws candidates with the
sampler's own random stream and scores them with `tpe_density.mixture_log_pdf` (Optuna's
log-density, the same floats in a quarter of the time: temporaries in a `Workspace` kept
between asks, `above`'s truncation masses found again by trial number). Its suggestions,
and every candidate's score, equal stock `TPESampler`'s for the same seed and history, bit
for bit (tests/study/test_tpe.py runs both through asks, packs, trials finishing in any
order, pruned, infeasible and multi-objective trials, in memory and on a study's journal);
it changes how often TPE converts and splits, never what it suggests. Optuna is pinned
(pyproject.toml): the private methods this class calls are those of Optuna 5.0.
"""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator
from optuna.samplers._tpe.sampler import (
    _get_infeasible_trial_score,
    _get_pruned_trial_score,
    _split_trials,
    default_gamma,
    default_gamma_multiobjective,
)
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from revstudy.journalstore import StudyJournalStorage
from revstudy.study.tpe_density import MassMemo, Workspace, mixture_log_pdf
from revstudy.study.tpe_estimator import ScatterParzenEstimator

__all__ = ["FitOnceTPESampler"]

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what TPE learns from
RUNNING = (TrialState.RUNNING,)  # the constant liar's


def _trials_in(study: optuna.Study, states: tuple[TrialState, ...]) -> list[FrozenTrial]:
    """The study's trials in `states`, in trial order, as the ask's trial list holds them
    (Optuna's per-ask cache, filled when the ask's search space was inferred). A study's
    journal keeps these lists by state (`StudyJournalStorage`), where Optuna walks every
    trial (~2-3 ms at 10^4 trials, twice an ask); both read the same operations while the
    driver is the study's only writer, as the study lock makes it."""
    storage = study._storage
    if isinstance(storage, StudyJournalStorage):
        return storage.get_all_trials(study._study_id, deepcopy=False, states=states)
    return study._get_trials(deepcopy=False, states=states, use_cache=True)


@dataclass
class FinishedFit:
    """TPE's view of one finished set in one search space: the `below` estimator, and the
    parameters of `above`'s trials (internal representation, trial order) with their
    numbers, to which each ask adds its running trials."""

    below: _ParzenEstimator
    above_numbers: np.ndarray  # int64, ascending
    above_values: dict[str, np.ndarray]
    above: _ParzenEstimator | None = None  # without running trials, made on first need


class FitOnceTPESampler(optuna.samplers.TPESampler):
    """`TPESampler` that splits and converts the finished trials once per finished set."""

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self._parzen_estimator_cls = ScatterParzenEstimator  # Optuna's, one sort fewer
        self._study: optuna.Study | None = None  # the study the caches below hold
        self._fits: dict[tuple, FinishedFit] = {}
        self._fitted_on: tuple[int, int] | None = None  # (finished trials, last one's number)
        # the finished trials' parameters in each search space's representation
        self._tables: dict[tuple, SpaceTable] = {}  # by search space
        self._below: list[FrozenTrial] | None = None  # the split's better trials
        self._orders: SplitOrders | None = None  # a one-objective study's finished trials
        self._workspace = Workspace()  # the log-densities' temporaries, kept between asks
        self._memos: dict[tuple, MassMemo] = {}  # per search space, the last `above`'s masses
        self.fits = 0  # fits made: one per finished set and search space (benchmarks, tests)
        self.splits = 0  # finished sets split into below and above

    def _sample(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._sample_from(study, trial, search_space, _trials_in(study, FINISHED))

    def _sample_from(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        search_space: dict[str, BaseDistribution],
        finished: list[FrozenTrial],
    ) -> dict[str, Any]:
        """TPESampler._sample, `finished` being the study's finished trials."""
        # The trials by state as `_trials_in` reads them; stock TPE re-reads the storage
        # under the constant liar (~3.5 ms at 10^4 trials on a stock journal), which returns
        # the same lists while no one else writes the study during the ask: the driver is
        # its only writer, under the study lock.
        if study is not self._study:  # another study (in memory, it may have the same id)
            self._forget(study)
        running = (
            [t for t in _trials_in(study, RUNNING) if t.number != trial.number]
            if self._constant_liar
            else []
        )  # the trial being sampled is not its own liar
        fit = self._finished_fit(study, finished, search_space)
        below = fit.below
        above = self._with_running(study, fit, running, search_space)
        # from here on exactly what TPESampler._sample does after its split and fits
        samples = below.sample(self._rng.rng, self._n_ei_candidates)
        acquisition = self._compute_acquisition_func(samples, below, above)
        best = optuna.samplers.TPESampler._compare(samples, acquisition)
        return {name: d.to_external_repr(best[name]) for name, d in search_space.items()}

    def _sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """TPESampler's, with its count of finished trials from `_trials_in`."""
        if search_space == {}:
            return {}
        finished = _trials_in(study, FINISHED)
        if len(finished) < self._n_startup_trials:
            return {}  # Optuna's independent (random) sampling until then
        return self._sample_from(study, trial, search_space, finished)

    def _forget(self, study: optuna.Study) -> None:
        """Drop what the caches hold of another study's trials: they go by trial number."""
        self._study = study
        self._fits.clear()
        self._fitted_on = None
        self._tables.clear()
        self._below = None
        self._orders = None
        self._memos.clear()  # numbers name another study's trials

    def _finished_fit(
        self,
        study: optuna.Study,
        finished: list[FrozenTrial],
        search_space: dict[str, BaseDistribution],
    ) -> FinishedFit:
        """The cached fit of `finished` in `search_space`, made on first use."""
        key = (len(finished), finished[-1].number if finished else -1)
        if key != self._fitted_on:
            self._fits.clear()
            self._fitted_on = key
            self._below = None
        space = tuple(search_space.items())
        fit = self._fits.get(space)
        if fit is None:
            fit = self._fits[space] = self._fit(study, finished, search_space)
        return fit

    def _fit(
        self,
        study: optuna.Study,
        finished: list[FrozenTrial],
        search_space: dict[str, BaseDistribution],
    ) -> FinishedFit:
        if self._below is None:  # one split per finished set, whatever the search space
            if self._gamma is None:  # as TPESampler sets it on its first sample
                multi = len(study.directions) > 1
                self._gamma = default_gamma_multiobjective if multi else default_gamma
            # running trials would only join `above`, sorted in by number: added per ask
            n_below = self._gamma(len(finished))
            if len(study.directions) > 1:  # non-domination ranks: Optuna's own split
                self._below = _split_trials(study, finished, n_below)[0]
            else:
                if self._orders is None:
                    self._orders = SplitOrders(study)
                self._below = self._orders.below(finished, n_below)
            self.splits += 1
        # `above` is every other finished trial: those with the space's parameters, in
        # trial order, as TPESampler._get_internal_repr would convert them
        space = tuple(search_space.items())
        table = self._tables.get(space)
        if table is None:
            table = self._tables[space] = SpaceTable(search_space)
        table.add(finished)
        keep = ~np.isin(table.numbers, [t.number for t in self._below])
        numbers = table.numbers[keep]
        # the arrays `_ParzenEstimator` would make of the lists (np.asarray), made once
        values = {
            name: column[keep] if numbers.size else np.asarray([])
            for name, column in table.values.items()
        }
        self.fits += 1
        return FinishedFit(
            below=self._build_parzen_estimator(study, search_space, self._below, True),
            above_numbers=numbers,
            above_values=values,
        )

    def _with_running(
        self,
        study: optuna.Study,
        fit: FinishedFit,
        running: list[FrozenTrial],
        search_space: dict[str, BaseDistribution],
    ) -> _ParzenEstimator:
        """`above`'s estimator with the running trials (the constant liar's) in trial order."""
        rows = []
        for t in running:
            row = _internal_row(self._get_params(t, study), search_space)
            if row is not None:
                rows.append((t.number, row))
        if not rows:
            if fit.above is None:
                fit.above = self._estimator(fit.above_values, search_space, fit.above_numbers)
            return fit.above
        rows.sort(key=lambda r: r[0])
        # where each running trial goes among the finished ones, in trial order: np.insert
        # places values given for one index in the order given
        at = np.searchsorted(fit.above_numbers, [number for number, _ in rows])
        values = {
            name: _inserted(fit.above_values[name], at, [row[i] for _, row in rows])
            for i, name in enumerate(search_space)
        }
        numbers = np.insert(fit.above_numbers, at, [number for number, _ in rows])
        return self._estimator(values, search_space, numbers)

    def _compute_acquisition_func(
        self,
        samples: dict[str, np.ndarray],
        mpe_below: _ParzenEstimator,
        mpe_above: _ParzenEstimator,
    ) -> np.ndarray:
        """TPESampler's, with the mixtures' log-densities by `mixture_log_pdf` (the same
        floats, a quarter of the time at 10^4 trials); `above`'s masses found again by trial
        number in what the previous ask in its search space computed."""
        ws = self._workspace
        below = mixture_log_pdf(mpe_below._mixture_distribution, mpe_below._transform(samples), ws)
        memo = self._memos.setdefault(tuple(mpe_above._search_space.items()), MassMemo())
        above = mixture_log_pdf(
            mpe_above._mixture_distribution,
            mpe_above._transform(samples),
            ws,
            numbers=getattr(mpe_above, "numbers", None),
            memo=memo,
        )
        return below - above

    def _estimator(
        self,
        values: dict[str, np.ndarray],
        search_space: dict[str, BaseDistribution],
        numbers: np.ndarray,
    ) -> _ParzenEstimator:
        """What TPESampler._build_parzen_estimator builds for `above` from these values,
        told its components' trial `numbers` (for the masses' memo)."""
        mpe = self._parzen_estimator_cls(values, search_space, self._parzen_estimator_parameters)
        if not isinstance(mpe, _ParzenEstimator):
            raise RuntimeError("_parzen_estimator_cls must override _ParzenEstimator.")
        if isinstance(mpe, ScatterParzenEstimator):
            mpe.numbers = numbers
        return mpe


class SplitOrders:
    """A one-objective study's finished trials kept in the orders `_split_trials` sorts them
    in, so a new finished set is split without sorting every trial again (~20 ms at 10^4
    trials, on every ask of lone trials, whose finished set grows between two asks).

    Optuna's split: feasible complete trials by value (best first), then pruned trials by
    `_get_pruned_trial_score`, then infeasible ones by their violation, each sort stable
    (ties in trial order; `sorted(reverse=True)` keeps ties in their input order too), the
    first `n_below` of that sequence below, the rest above, both in trial order. A finished
    trial's state, value, intermediate values and constraints never change, so each is
    classified and inserted in its order once, by (key, number)."""

    def __init__(self, study: optuna.Study):
        self._study = study
        self._sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        self._known: set[int] = set()
        # (key, number, trial): the number breaks ties in trial order, never the trial
        self._orders: tuple[list[tuple], list[tuple], list[tuple]] = ([], [], [])

    def below(self, finished: list[FrozenTrial], n_below: int) -> list[FrozenTrial]:
        """`_split_trials(study, finished, n_below)[0]`: the same trials in the same order
        (the rest of `finished` is above)."""
        for t in new_finished(finished, self._known):
            self._add(t)
        below: list[FrozenTrial] = []
        for order in self._orders:
            below += [t for _, _, t in order[: max(0, n_below - len(below))]]
        below.sort(key=lambda t: t.number)
        return below

    def _add(self, t: FrozenTrial) -> None:
        self._known.add(t.number)
        violation = _get_infeasible_trial_score(t)
        if violation > 0:
            insort(self._orders[2], (violation, t.number, t))
        elif t.state == TrialState.COMPLETE:
            insort(self._orders[0], (self._sign * t.value, t.number, t))  # type: ignore[operator]
        else:
            insort(self._orders[1], (_get_pruned_trial_score(t, self._study), t.number, t))


class SpaceTable:
    """The finished trials' parameters in one search space's representation, in trial
    order: one array per parameter, rows only for the trials that have every parameter of
    the space (TPESampler._get_internal_repr leaves the others out). Each finished trial is
    converted once and inserted by number (trials finish in any order)."""

    def __init__(self, search_space: dict[str, BaseDistribution]):
        self._space = search_space
        self.known: set[int] = set()  # numbers of the finished trials added, with a row or not
        self.numbers = np.empty(0, dtype=np.int64)
        self.values: dict[str, np.ndarray] = {name: np.asarray([]) for name in search_space}

    def add(self, finished: list[FrozenTrial]) -> None:
        """Add the trials of `finished` (a superset of those added before) not added yet."""
        rows = []
        for t in new_finished(finished, self.known):
            self.known.add(t.number)
            row = _internal_row(t.params, self._space)
            if row is not None:
                rows.append((t.number, row))
        if not rows:
            return
        rows.sort(key=lambda r: r[0])
        at = np.searchsorted(self.numbers, [number for number, _ in rows])
        self.numbers = np.insert(self.numbers, at, [number for number, _ in rows])
        for i, name in enumerate(self._space):
            self.values[name] = _inserted(self.values[name], at, [row[i] for _, row in rows])


def new_finished(finished: list[FrozenTrial], known: set[int]) -> list[FrozenTrial]:
    """The trials of `finished` whose numbers are not in `known` (a subset of theirs: a
    finished trial stays finished), searched from the newest back until all are found:
    a few trials, not a walk over 10^4 of them."""
    missing = len(finished) - len(known)
    new: list[FrozenTrial] = []
    for t in reversed(finished):
        if missing <= 0:
            break
        if t.number not in known:
            new.append(t)
            missing -= 1
    return new


def _inserted(finished: np.ndarray, at: np.ndarray, running: list[Any]) -> np.ndarray:
    """`finished` with `running` inserted before the indices `at`: the array np.asarray
    makes of the merged list (a parameter's internal values are all ints, the categorical
    indices, or all floats; an empty `finished` has np.asarray([])'s float dtype)."""
    if finished.size == 0:
        return np.asarray(running)
    return np.insert(finished, at, running)


def _internal_row(
    params: dict[str, Any], search_space: dict[str, BaseDistribution]
) -> list[Any] | None:
    """A trial's parameters in the estimators' representation, None when it lacks one of
    the space's (TPESampler._get_internal_repr leaves such a trial out)."""
    if not search_space.keys() <= params.keys():
        return None
    return [d.to_internal_repr(params[name]) for name, d in search_space.items()]
