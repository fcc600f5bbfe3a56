"""FitOnceTPESampler (revstudy.study.tpe) suggests exactly what Optuna's TPESampler does for
the same seed and history, while splitting and converting the finished trials once per
finished set: compared ask by ask through packs (members asked with the first one's shape
fixed, as PackSearcher does), trials finishing mid-pack, pruned, infeasible and failed
trials, a conditional space, several objectives, and without the constant liar."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from revstudy.journalstore import batched
from revstudy.optunafile import optuna_storage
from revstudy.study.optuna_store import make_sampler
from revstudy.study.tpe import FitOnceTPESampler

TS = optuna.trial.TrialState
SHAPE = ("blocks", "width")


def space(trial: optuna.Trial) -> dict[str, Any]:
    """Parameters of every kind TPE converts (ints, log floats, categoricals) and one that
    exists only for some trials (define-by-run, sampled independently)."""
    p: dict[str, Any] = {
        "blocks": trial.suggest_int("blocks", 1, 6),
        "width": trial.suggest_categorical("width", [64, 128, 256]),
        "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
        "decay": trial.suggest_float("decay", 0.0, 0.5),
    }
    if p["blocks"] > 3:
        p["extra"] = trial.suggest_int("extra", 2, 8, step=2)
    return p


def score(p: dict[str, Any]) -> float:
    return -((math.log10(p["lr"]) + 3) ** 2) - 0.1 * p["blocks"] + p["decay"] + p["width"] / 1e3


def outcome(study: optuna.Study, trial: optuna.Trial, p: dict[str, Any], i: int) -> None:
    """Finish `trial` in one of the ways a study does: complete (sometimes infeasible),
    pruned with intermediate values, or failed."""
    v = score(p)
    if i % 4 == 0:  # ties in value: TPE's split keeps them in trial order
        v = round(v, 1)
    multi = len(study.directions) > 1
    if i % 7 == 3:
        if not multi:  # Optuna keeps intermediate values of one objective only
            trial.report(v - 0.5, 1)
            trial.report(v - 0.2, 2)
        study.tell(trial, state=TS.PRUNED)
    elif i % 11 == 5:
        study.tell(trial, state=TS.FAIL)
    else:
        trial.set_constraint("f1_min", 0.5 if i % 5 == 0 else -0.1)
        study.tell(trial, [v, p["blocks"]] if multi else v)


def run(
    make: Callable[[], optuna.samplers.BaseSampler],
    *,
    directions: tuple[str, ...] = ("maximize",),
    pack: int = 4,
    packs: int = 6,
    storage: Any = None,
) -> tuple[list[dict[str, Any]], optuna.samplers.BaseSampler]:
    """Every suggestion of a study: 14 trials one at a time (TPE's random start and its
    first fits), then `packs` packs of `pack` members asked together, one member of every
    other pack finishing before the others are asked, every third pack's members finishing
    last first. A pack's asks are one journal write where `storage` batches them (as the
    driver's PackSearcher makes them)."""
    sampler = make()
    study = optuna.create_study(directions=list(directions), sampler=sampler, storage=storage)
    seen: list[dict[str, Any]] = []
    i = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental PartialFixedSampler, set_constraint
        for _ in range(14):
            t = study.ask()
            p = space(t)
            seen.append(p)
            outcome(study, t, p, i)
            i += 1
        for k in range(packs):
            first = study.ask()
            p0 = space(first)
            asked = [(first, p0)]
            study.sampler = optuna.samplers.PartialFixedSampler({n: p0[n] for n in SHAPE}, sampler)
            with batched(storage):
                for j in range(1, pack):
                    if k % 2 and j == 2:  # a trial finishes between two members' asks:
                        # the first, or (pack 1) the newest, before older ones finish
                        t, p = asked.pop(-1 if k == 1 else 0)
                        outcome(study, t, p, i)
                        i += 1
                    t = study.ask()
                    asked.append((t, space(t)))
            study.sampler = sampler
            for t, p in asked[::-1] if k % 3 == 2 else asked:  # some finish out of order
                seen.append(p)
                outcome(study, t, p, i)
                i += 1
            seen.append({"after": k})  # marks where the packs ended
    return seen, sampler


class Recorded:
    """A TPE sampler that keeps every acquisition array it computes (the candidates'
    scores), so runs compare on every float, not only on the winning candidates."""

    acquisitions: list[np.ndarray]

    def _compute_acquisition_func(self, *args: Any) -> np.ndarray:
        values = super()._compute_acquisition_func(*args)  # type: ignore[misc]
        self.acquisitions.append(values.copy())
        return values


class RecordedStock(Recorded, optuna.samplers.TPESampler):
    pass


class RecordedOurs(Recorded, FitOnceTPESampler):
    pass


def recorded(cls: type, **options: Any) -> Callable[[], Any]:
    def make() -> Any:
        sampler = cls(**options)
        sampler.acquisitions = []
        return sampler

    return make


def same_acquisitions(a: Any, b: Any) -> bool:
    return len(a.acquisitions) == len(b.acquisitions) > 0 and all(
        x.tobytes() == y.tobytes() for x, y in zip(a.acquisitions, b.acquisitions, strict=True)
    )


@pytest.mark.parametrize(
    ("options", "directions"),
    [
        ({}, ("maximize",)),  # Optuna 5's default: multivariate, constant liar
        ({}, ("minimize",)),
        ({"constant_liar": False}, ("maximize",)),
        ({}, ("maximize", "minimize")),
        ({"multivariate": False}, ("maximize",)),
    ],
    ids=["default", "minimize", "no-liar", "two-objectives", "univariate"],
)
def test_suggestions_equal_optuna_tpe(options: dict, directions: tuple[str, ...]) -> None:
    stock, reference = run(recorded(RecordedStock, seed=7, **options), directions=directions)
    ours, sampler = run(recorded(RecordedOurs, seed=7, **options), directions=directions)
    assert ours == stock  # every parameter of every trial, exactly
    assert isinstance(sampler, FitOnceTPESampler) and sampler.fits > 0
    if options.get("multivariate", True):  # the univariate TPE is Optuna's own
        assert same_acquisitions(sampler, reference)  # every candidate's score, bit for bit


@pytest.mark.parametrize("directions", [("maximize",), ("minimize",), ("maximize", "minimize")])
def test_suggestions_equal_optuna_tpe_on_a_study_journal(
    directions: tuple[str, ...], tmp_path: Path
) -> None:
    """On the journal a study keeps (trial lists by state, a pack's asks in one write) the
    suggestions are stock TPE's on Optuna's own in-memory storage."""
    stock, reference = run(recorded(RecordedStock, seed=11), directions=directions)
    storage = optuna_storage(tmp_path, create=True)
    ours, sampler = run(recorded(RecordedOurs, seed=11), directions=directions, storage=storage)
    assert ours == stock
    assert same_acquisitions(sampler, reference)


def test_a_pack_s_members_share_one_fit_per_search_space() -> None:
    """No trial finishes while a pack is asked: the first member fits the whole space, the
    others the space left with the shape fixed; nothing else is split or converted."""
    _, sampler = run(lambda: FitOnceTPESampler(seed=3), pack=5, packs=1)
    assert isinstance(sampler, FitOnceTPESampler)
    before = sampler.fits
    study = optuna.create_study(direction="maximize", sampler=sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(20):  # a history TPE fits (past its 10 random trials)
            t = study.ask()
            study.tell(t, score(space(t)))
        fits = sampler.fits
        first = study.ask()
        p0 = space(first)
        study.sampler = optuna.samplers.PartialFixedSampler({n: p0[n] for n in SHAPE}, sampler)
        for _ in range(7):
            space(study.ask())
    # the whole space and the reduced one, plus one single-parameter fit for `extra` where
    # a member's blocks > 3 asks for it (sampled on its own: not in every trial)
    assert 2 <= sampler.fits - fits <= 3
    assert before > 0


def test_studies_get_it_for_tpe() -> None:
    assert type(make_sampler("tpe", 0, multi=False)) is FitOnceTPESampler


def test_a_sampler_used_for_a_second_study_forgets_the_first() -> None:
    """Its caches hold one study's trials by number; a second study (in memory, Optuna gives
    it the same study id) gets suggestions of its own history, as stock TPE's."""

    def two_studies(sampler: optuna.samplers.BaseSampler) -> list[dict[str, Any]]:
        seen = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(2):
                study = optuna.create_study(direction="maximize", sampler=sampler)
                for i in range(30):
                    t = study.ask()
                    p = space(t)
                    seen.append(p)
                    outcome(study, t, p, i)
        return seen

    stock = two_studies(optuna.samplers.TPESampler(seed=5))
    assert two_studies(FitOnceTPESampler(seed=5)) == stock


def test_the_sampler_pickles_before_and_after_asks() -> None:
    """Ray Tune pickles the search algorithm, its sampler with it, when a study starts (a
    weak-reference table in the sampler once failed every study there). After asks, with
    its caches full, an unpickled copy suggests what the original suggests."""
    import pickle

    sampler = FitOnceTPESampler(seed=3, n_startup_trials=5)
    pickle.dumps(sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for i in range(20):
            t = study.ask()
            outcome(study, t, space(t), i)
        copy = pickle.loads(pickle.dumps(study))
        mine, theirs = study.ask(), copy.ask()
        assert space(mine) == space(theirs)
