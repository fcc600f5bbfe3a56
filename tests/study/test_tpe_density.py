"""mixture_log_pdf (revstudy.study.tpe_density) returns the floats Optuna's own
`_MixtureOfProductDistribution.log_pdf` returns, bit for bit: for mixtures of every
parameter kind TPE builds (floats, log floats, stepped and log ints, categoricals), 1 to 12
continuous parameters (numpy sums fewer than 8 terms in a loop, more in 8 partial sums),
components far enough from a candidate that their exp underflows (to a subnormal, or to
0.0 where the function skips it), no observations (the prior alone), a zero prior weight
(log 0 terms), and candidates outside the bounds (Optuna's own method)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers._tpe._erf import erf as optuna_erf
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator, _ParzenEstimatorParameters
from optuna.samplers._tpe.sampler import default_weights

from revstudy.study.tpe_density import ERF_SERIES, MassMemo, Workspace, mixture_log_pdf

KINDS: list[BaseDistribution] = [
    FloatDistribution(0.0, 0.5),
    FloatDistribution(1e-4, 1e-2, log=True),
    IntDistribution(1, 8),
    IntDistribution(2, 12, step=2),
    IntDistribution(1, 64, log=True),
    CategoricalDistribution([16, 32, 64, 128]),
]


def parameters(prior_weight: float = 1.0) -> _ParzenEstimatorParameters:
    return _ParzenEstimatorParameters(
        prior_weight=prior_weight,
        consider_magic_clip=True,
        consider_endpoints=False,
        weights=default_weights,
        multivariate=True,
    )


def observations(
    space: dict[str, BaseDistribution], n: int, rng: np.random.Generator, cluster: bool = False
) -> dict[str, np.ndarray]:
    """n trials' parameters in TPE's internal representation; `cluster` puts them all near
    one corner, so candidates elsewhere see far components."""
    out: dict[str, np.ndarray] = {}
    for name, d in space.items():
        if isinstance(d, CategoricalDistribution):
            out[name] = rng.integers(0, 1 if cluster else len(d.choices), n)
            continue
        assert isinstance(d, (FloatDistribution, IntDistribution))
        lo, hi = (np.log(d.low), np.log(d.high)) if d.log else (d.low, d.high)
        u = rng.uniform(0, 0.02 if cluster else 1, n)
        v = np.exp(lo + u * (hi - lo)) if d.log else lo + u * (hi - lo)
        if isinstance(d, IntDistribution):
            v = np.clip(d.low + np.round((v - d.low) / d.step) * d.step, d.low, d.high)
        out[name] = v.astype(float)
    return out


def assert_same(
    space: dict[str, BaseDistribution],
    obs: dict[str, np.ndarray],
    rng: np.random.Generator,
    prior_weight: float = 1.0,
    candidates: dict[str, np.ndarray] | None = None,
    workspace: Workspace | None = None,
) -> np.ndarray:
    mpe = _ParzenEstimator(obs, space, parameters(prior_weight))
    if candidates is None:
        candidates = mpe.sample(np.random.RandomState(int(rng.integers(1 << 30))), 24)
    x = mpe._transform(candidates)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # log(0) of a zero prior weight
        ours = mixture_log_pdf(mpe._mixture_distribution, x, workspace)
        theirs = mpe._mixture_distribution.log_pdf(x)
    np.testing.assert_array_equal(ours, theirs)
    assert ours.dtype == theirs.dtype
    return ours


@pytest.mark.parametrize("n_continuous", [1, 2, 3, 7, 8, 9, 12])
def test_equal_for_every_parameter_kind(n_continuous: int) -> None:
    rng = np.random.default_rng(n_continuous)
    space = {f"c{i}": KINDS[i % 2] for i in range(n_continuous)}
    space |= {f"k{i}": d for i, d in enumerate(KINDS[2:])}
    for n in (0, 1, 30, 2000):
        assert_same(space, observations(space, n, rng), rng)


def test_equal_where_far_components_underflow() -> None:
    """Trials clustered in the first 2 % of each range have bandwidths of ~1 % of it; the
    candidates, spread over the whole range, see components from 0 to ~100 bandwidths
    away: log terms down to about -5000, through exp's subnormal range (-745 to -708)."""
    rng = np.random.default_rng(1)
    space = {"lr": KINDS[1], "decay": KINDS[0], "blocks": KINDS[2], "width": KINDS[5]}
    obs = observations(space, 3000, rng, cluster=True)
    grid = np.linspace(0, 1, 24)
    spread = {
        "lr": np.exp(np.log(1e-4) + grid * np.log(100)),
        "decay": 0.5 * grid,
        "blocks": np.round(1 + 7 * grid),
        "width": np.zeros(24),
    }
    assert_same(space, obs, rng, candidates=spread)


def test_equal_with_a_zero_prior_weight() -> None:
    """Choices no trial took have weight 0: log 0 = -inf terms, and rows of -inf alone."""
    rng = np.random.default_rng(2)
    space = {"width": KINDS[5], "lr": KINDS[1]}
    obs = observations(space, 50, rng, cluster=True)  # every trial took choice 0
    unseen = {"width": np.array([0, 1, 2, 3] * 6), "lr": np.full(24, 1e-3)}
    assert_same(space, obs, rng, prior_weight=0.0, candidates=unseen)


def test_candidates_outside_the_bounds_use_optuna_s_method() -> None:
    rng = np.random.default_rng(3)
    space = {"decay": KINDS[0], "lr": KINDS[1]}
    obs = observations(space, 100, rng)
    outside = {"decay": np.array([-0.1, 0.2, 0.7]), "lr": np.array([1e-3, 1e-5, 1e-3])}
    assert_same(space, obs, rng, candidates=outside)


def test_a_workspace_reused_across_mixtures_changes_nothing() -> None:
    """One workspace through mixtures of growing, shrinking and other spaces (its arrays
    are reused, sliced or replaced): every result equal to Optuna's, and no result lives in
    the workspace (a later call would overwrite it)."""
    rng = np.random.default_rng(4)
    ws = Workspace()
    wide = {f"c{i}": KINDS[i % 2] for i in range(9)} | {"k": KINDS[2], "w": KINDS[5]}
    narrow = {"lr": KINDS[1], "blocks": KINDS[3]}
    kept = []
    for space, n in [(wide, 2000), (narrow, 30), (wide, 500), (narrow, 3000), (wide, 0)]:
        out = assert_same(space, observations(space, n, rng), rng, workspace=ws)
        kept.append((out, out.copy()))
    for out, copy in kept:
        np.testing.assert_array_equal(out, copy)


@pytest.mark.parametrize(("seed", "n"), [(15, 700), (16, 1200), (11, 1500)])
def test_equal_where_the_masses_of_all_parameters_reach_optuna_s_erf_threshold(
    seed: int, n: int
) -> None:
    """Optuna's `erf` is `math.erf` for fewer than 2,000 values and its own polynomial
    (different in the last bit) from 2,000 on, and Optuna computes every continuous
    parameter's truncation masses in one call: with 700-1,500 components and three
    parameters that call takes the polynomial where one call per parameter would not.
    Kernels clustered near the low bound put the masses in erf's small-argument range."""
    rng = np.random.default_rng(seed)
    space = {"c0": KINDS[0], "c1": KINDS[1], "c2": KINDS[0]}
    obs = observations(space, n, rng, cluster=True)
    mpe = _ParzenEstimator(obs, space, parameters())
    candidates = mpe.sample(np.random.RandomState(seed), 24)
    assert_same(space, obs, rng, candidates=candidates)


def test_masses_found_again_by_trial_number_are_optuna_s() -> None:
    """Consecutive asks' mixtures (trials added among the others, so that neighbours'
    bandwidths change, and the erf method switching as the central intervals pass
    ERF_SERIES) with a MassMemo: every density equal to Optuna's, and most masses found
    rather than computed once the memo holds the previous mixture."""
    rng = np.random.default_rng(5)
    space = {"c0": KINDS[0], "c1": KINDS[1], "k": KINDS[2]}
    obs = observations(space, 1200, rng, cluster=True)
    numbers = np.sort(rng.choice(5000, size=1200, replace=False))
    memo = MassMemo()
    ws = Workspace()
    keep = np.arange(0)
    for step, n in enumerate([900, 930, 960, 1000, 1000, 1100, 1200]):
        if n != len(keep):  # trials of the first n drawn anew; step 4 keeps step 3's
            keep = np.sort(rng.choice(1200, size=n, replace=False))
        part = {k: v[keep] for k, v in obs.items()}
        mpe = _ParzenEstimator(part, space, parameters())
        x = mpe._transform(mpe.sample(np.random.RandomState(step), 24))
        before = memo.computed
        ours = mixture_log_pdf(mpe._mixture_distribution, x, ws, numbers[keep], memo)
        np.testing.assert_array_equal(ours, mpe._mixture_distribution.log_pdf(x))
        if step == 4:  # the same trials as the step before: only the prior's kernel
            assert memo.computed - before == 1
    assert memo.last is not None and memo.last.series  # 1,200 x 2 central intervals
    assert memo.computed < 7 * 1200 / 2
    # few trials spread over the range: each new one changes its neighbours' bandwidths,
    # and the smallest bandwidth shrinks with the trial count: those masses are recomputed
    spread = observations(space, 60, rng)
    small = MassMemo()
    for step, n in enumerate([40, 41, 50, 60]):
        mpe = _ParzenEstimator({k: v[:n] for k, v in spread.items()}, space, parameters())
        x = mpe._transform(mpe.sample(np.random.RandomState(step), 24))
        ours = mixture_log_pdf(mpe._mixture_distribution, x, ws, np.arange(n), small)
        np.testing.assert_array_equal(ours, mpe._mixture_distribution.log_pdf(x))


def test_optuna_s_erf_changes_method_at_erf_series_values() -> None:
    """What MassMemo relies on: Optuna's erf is math.erf below ERF_SERIES values and its
    polynomial from there on, which differs in the last bit for some arguments."""
    xs = np.linspace(0.9, 2.5, 400)
    below = np.array([optuna_erf(np.full(ERF_SERIES - 1, v))[0] for v in xs])
    at = np.array([optuna_erf(np.full(ERF_SERIES, v))[0] for v in xs])
    assert np.array_equal(below, [math.erf(v) for v in xs])
    assert not np.array_equal(at, below)
