"""The log-density of Optuna's TPE mixture, bit for bit, in fewer passes over the data.

TPE scores its 24 candidates by the log-density of the `above` mixture, one component per
finished or running trial: at 10^4 trials a (24 x 10^4) array per parameter. Optuna 5.0's
`_MixtureOfProductDistribution.log_pdf` builds the continuous parameters' terms as one
(24 x n x d) array through `_truncnorm.logpdf` (a `np.select` over broadcast copies) and
sums them over a length-d axis (one tiny reduction per candidate and component), finds each
discrete parameter's distinct kernels with two sorts and gathers its terms with `np.ix_`,
and takes `exp` of components so far away that it underflows (numpy's slow path): ~20 ms
of numpy per call on 2 cores, most of an ask (benchmarks/driver_loop.py).

`mixture_log_pdf` computes every element with the same floating-point operations in the
same order, so the result is equal bit for bit (tests/study/test_tpe_density.py compares
mixtures of every parameter kind; tests/study/test_tpe.py whole studies): one (24 x n)
array per continuous parameter, updated in place and summed in numpy's own order; the
distinct kernels found by hashing; the underflowing `exp` (exactly 0.0) skipped; and
Optuna's `np.select` replaced by a check that every candidate lies inside its bounds,
which makes the select a no-op (for low <= x the rounded (x - mu) / sigma is never below
the rounded (low - mu) / sigma: subtracting the same mu and dividing by the same positive
sigma are monotone). Where a candidate lies outside, or a component has zero width, it
falls back to Optuna's own method. Its (candidates x components) temporaries live in a
`Workspace` the sampler keeps between asks, not in arrays mapped fresh every call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from optuna.samplers._tpe import _truncnorm
from optuna.samplers._tpe.probability_distributions import (
    _BatchedCategoricalDistributions,
    _log_gauss_mass_unique,
    _MixtureOfProductDistribution,
)

__all__ = ["MassMemo", "Workspace", "mixture_log_pdf"]

# below this, exp(x) is far under half the smallest subnormal: 0.0 in any exp (numpy's own
# returns 0.0 from -745.14 on)
UNDERFLOW = -750.0
PAIRWISE_BLOCK = 128  # numpy splits longer sums in halves (not emulated: stacked instead)


class Workspace:
    """Arrays `mixture_log_pdf` reuses from call to call. Each (24 x 10^4) float64
    temporary is 1.9 MB, past the C allocator's threshold for mapping memory fresh from the
    system, so every call would map it again and fault in its ~470 zeroed pages: ~4 ms of a
    ~13 ms call at 10^4 trials (benchmarks/driver_loop.py), more than most of the
    arithmetic. A sampler keeps one (calls are sequential) and hands it to every call; it
    holds ~10 MB at 10^4 trials in the quick space (a few (24 x n) arrays)."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
        """A C-contiguous array of `shape` named `name`, its content undefined."""
        size = math.prod(shape)
        held = self._arrays.get(name)
        if held is None or held.size < size or held.dtype != dtype:
            held = self._arrays[name] = np.empty(size, dtype=dtype)
        return held[:size].reshape(shape)


@dataclass
class _Masses:
    """One mixture's continuous truncation masses, by its components' trial numbers."""

    numbers: np.ndarray  # ascending; the prior's component (the last) has none
    a: np.ndarray  # (components but the prior x continuous parameters)
    b: np.ndarray
    log_mass: np.ndarray
    series: bool  # computed by Optuna's polynomial erf (its call had >= ERF_SERIES values)


class MassMemo:
    """The continuous truncation masses of one kind of mixture (a search space's `above`)
    at the previous ask, found again by trial number. Consecutive asks' `above` mixtures
    share all but a few kernels (a trial that finished, the running ones), and at 10^4
    trials the masses are ~2 ms of Optuna's `erf` an ask. A kernel is taken from the memo
    only where its standardised bounds (a, b) are the same floats and the erf that computed
    it took the same method; the others are computed as Optuna would (`_masses`)."""

    def __init__(self) -> None:
        self.last: _Masses | None = None
        self.computed = 0  # kernels computed rather than found (tests)


# Optuna 5.0's `erf` (optuna/samplers/_tpe/_erf.py) takes `math.erf` element by element for
# fewer values than this and its own polynomial from this many on; they differ in the last
# bit (tests/study/test_tpe_density.py checks both sides of it)
ERF_SERIES = 2000


def mixture_log_pdf(
    mixture: _MixtureOfProductDistribution,
    x: np.ndarray,
    workspace: Workspace | None = None,
    numbers: np.ndarray | None = None,
    memo: MassMemo | None = None,
) -> np.ndarray:
    """`mixture.log_pdf(x)`, the same floats: x is (candidates, parameters), internal
    representation, as `_ParzenEstimator.log_pdf` passes it. Temporaries live in
    `workspace` (a fresh one when None); the result never does. With the components'
    trial `numbers` (ascending, the prior's last component without one) and a `memo`, the
    continuous masses of kernels the memo holds are taken from it."""
    a, b = _standardised_bounds(mixture)
    if not _inside(mixture, x, a, b):
        return mixture.log_pdf(x)
    ws = workspace if workspace is not None else Workspace()
    shape = (len(x), len(mixture.weights))
    weighted = ws.get("weighted", shape)
    weighted.fill(0.0)
    log_masses = _continuous_log_masses(a, b, numbers, memo)
    continuous: list[np.ndarray] = []
    for i, d in enumerate(mixture.distributions):
        xi = x[:, i]
        if isinstance(d, _BatchedCategoricalDistributions):
            # log of the (components x choices) table once (contiguous, as Optuna's log
            # runs), copied choice by choice, then each candidate's choice added
            log_weights = np.log(d.weights, out=ws.get("log_weights", d.weights.shape))
            by_choice = ws.get("by_choice", log_weights.shape[::-1])
            np.copyto(by_choice, log_weights.T)
            for row, choice in zip(weighted, xi.astype(np.int64), strict=True):
                row += by_choice[choice]
            continue
        if d.step == 0.0:
            xi = np.log(xi) if d.is_log else xi
            k = len(continuous)
            continuous.append(_continuous_terms(d, xi, log_masses[:, k], ws.get(f"term{k}", shape)))
            continue
        step = d.step
        xi_uniq, xi_inv = np.unique(xi, return_inverse=True)
        mu_uniq, sigma_uniq, mu_sigma_inv = _unique_pairs(d.mu, d.sigma, ws)
        left = np.log(xi_uniq - step / 2) if d.is_log else (xi_uniq - step / 2)
        right = np.log(xi_uniq + step / 2) if d.is_log else (xi_uniq + step / 2)
        mass = np.take(
            _log_gauss_mass_unique(
                (left[:, np.newaxis] - mu_uniq) / sigma_uniq,
                (right[:, np.newaxis] - mu_uniq) / sigma_uniq,
            ),
            mu_sigma_inv,
            axis=1,
            out=ws.get("mass", (len(xi_uniq), shape[1])),
        )
        for row, u in zip(weighted, xi_inv, strict=True):  # Optuna: mass[np.ix_(xi_inv, inv)]
            row += mass[u]
        weighted -= _truncnorm._log_gauss_mass(
            (d.adapted_low - mu_uniq) / sigma_uniq, (d.adapted_high - mu_uniq) / sigma_uniq
        )[mu_sigma_inv]
    if continuous:
        weighted += _sum_last_axis(continuous)
    weighted += np.log(mixture.weights[np.newaxis])
    max_ = weighted.max(axis=1)
    max_[np.isneginf(max_)] = 0  # as Optuna: no (-inf) - (-inf)
    with np.errstate(divide="ignore"):
        weighted -= max_[:, None]
        # exp of the far components is exactly 0.0 and costs numpy's slow path (~10x), so
        # it is skipped; the others are numpy's exp as Optuna calls it
        near = np.greater(weighted, UNDERFLOW, out=ws.get("near", shape, np.bool_))
        np.exp(weighted, out=weighted, where=near)
        np.putmask(weighted, np.logical_not(near, out=ws.get("far", shape, np.bool_)), 0.0)
        return np.log(weighted.sum(axis=1)) + max_


def _inside(
    mixture: _MixtureOfProductDistribution, x: np.ndarray, a: np.ndarray, b: np.ndarray
) -> bool:
    """Whether Optuna's `np.select` in `_truncnorm.logpdf` keeps every element: each
    continuous candidate inside its bounds, every component of non-zero width (its
    standardised bounds `a` and `b` differ)."""
    for i, d in enumerate(mixture.distributions):
        if isinstance(d, _BatchedCategoricalDistributions) or d.step != 0.0:
            continue
        xi = np.log(x[:, i]) if d.is_log else x[:, i]
        if not (np.all(xi >= d.adapted_low) and np.all(xi <= d.adapted_high)):
            return False
    return not np.any(a == b)


def _standardised_bounds(
    mixture: _MixtureOfProductDistribution,
) -> tuple[np.ndarray, np.ndarray]:
    """Every continuous kernel's bounds in its own units, (low - mu) / sigma and
    (high - mu) / sigma, as (components x continuous parameters) arrays, as Optuna's
    `_MixtureOfProductDistribution.log_pdf` makes them."""
    cont = [
        d
        for d in mixture.distributions
        if not isinstance(d, _BatchedCategoricalDistributions) and d.step == 0.0
    ]
    if not cont:
        empty = np.empty((len(mixture.weights), 0))
        return empty, empty
    mus = np.asarray([d.mu for d in cont]).T
    sigmas = np.asarray([d.sigma for d in cont]).T
    lows = np.asarray([d.adapted_low for d in cont])
    highs = np.asarray([d.adapted_high for d in cont])
    return (lows - mus) / sigmas, (highs - mus) / sigmas


def _unique_pairs(
    a: np.ndarray, b: np.ndarray, ws: Workspace
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (a, b) pairs and each element's index into them, as Optuna's
    `_unique_inverse_2d` finds them, by hashing instead of two sorts (4x faster at 10^4):
    the masses computed from them are elementwise, so their order does not matter."""
    keys = ws.get("pairs", (len(a),), np.complex128)
    keys.real, keys.imag = a, b
    codes, pairs = pd.factorize(keys)
    return pairs.real, pairs.imag, codes


def _continuous_log_masses(
    a: np.ndarray,
    b: np.ndarray,
    numbers: np.ndarray | None = None,
    memo: MassMemo | None = None,
) -> np.ndarray:
    """The truncation masses of every continuous parameter's kernels, (components x
    continuous parameters), as Optuna's one `_log_gauss_mass` call over all of them makes
    them: its `erf` takes `math.erf` below `ERF_SERIES` values and its polynomial from
    there on, so the masses of 1,000 components and two parameters are the polynomial's,
    which one call per parameter would not give. With `numbers` and a `memo`, kernels the
    memo holds are taken from it (`MassMemo`). `a` and `b`: `_standardised_bounds`."""
    if a.shape[1] == 0:
        return a
    if memo is None or numbers is None or len(numbers) != len(a) - 1:
        return _truncnorm._log_gauss_mass(a, b)
    # the polynomial where Optuna's call has ERF_SERIES central values (its erf's input)
    series = int(np.count_nonzero(~((b <= 0) | (a > 0)))) >= ERF_SERIES
    log_mass = np.empty_like(a)
    fresh = np.ones(len(a), dtype=bool)  # the prior's kernel (last) is always computed
    last = memo.last
    if last is not None and last.series == series and len(last.numbers):
        at = np.minimum(np.searchsorted(last.numbers, numbers), len(last.numbers) - 1)
        same = (
            (last.numbers[at] == numbers)
            & (last.a[at] == a[:-1]).all(axis=1)
            & (last.b[at] == b[:-1]).all(axis=1)
        )
        log_mass[:-1][same] = last.log_mass[at[same]]
        fresh[:-1] = ~same
    log_mass[fresh] = _masses(a[fresh], b[fresh], series)
    memo.computed += int(fresh.sum())
    memo.last = _Masses(numbers, a[:-1], b[:-1], log_mass[:-1], series)
    return log_mass


def _masses(a: np.ndarray, b: np.ndarray, series: bool) -> np.ndarray:
    """`_truncnorm._log_gauss_mass(a, b)` of some kernels as a call over more of them
    computes it: with `series`, ERF_SERIES central intervals (-1, 1) are appended so that
    its `erf` takes the polynomial, as in the larger call (each value is elementwise)."""
    if not series:
        return _truncnorm._log_gauss_mass(a, b)
    pad = np.full(ERF_SERIES, 1.0)
    flat_a = np.concatenate([a.ravel(), -pad])
    flat_b = np.concatenate([b.ravel(), pad])
    return _truncnorm._log_gauss_mass(flat_a, flat_b)[: a.size].reshape(a.shape)


def _continuous_terms(
    d: object, xi: np.ndarray, log_mass: np.ndarray, out: np.ndarray
) -> np.ndarray:
    """One continuous parameter's (candidates x components) log-density terms, computed
    as `_truncnorm.logpdf` does: norm_logpdf((x - mu) / sigma) - log_mass - log(sigma),
    in `out`."""
    mu, sigma = d.mu, d.sigma  # type: ignore[attr-defined]
    log_scale = np.log(sigma)
    z = np.subtract(xi[:, np.newaxis], mu, out=out)
    z /= sigma
    np.square(z, out=z)  # what `x**2` computes
    z *= -0.5  # -(x**2) / 2.0: negating and halving are exact, so one rounding either way
    z -= _truncnorm._norm_pdf_logC
    z -= log_mass
    z -= log_scale
    return z


def _sum_last_axis(terms: list[np.ndarray]) -> np.ndarray:
    """`np.stack(terms, -1).sum(-1)`, the same floats, without the stacked copy and its
    one tiny reduction per element: numpy reduces a contiguous axis by its pairwise sum,
    which adds fewer than 8 terms in a plain loop and more (up to its block of 128) in 8
    interleaved partial sums joined as a tree (numpy/_core/src/umath/loops_utils.h).
    The sums go into the terms' own arrays (the terms are consumed)."""
    n = len(terms)
    if n < 8:
        total = np.add(terms[0], 0.0, out=terms[0])
        for t in terms[1:]:
            total += t
        return total
    if n > PAIRWISE_BLOCK:
        return np.stack(terms, axis=-1).sum(axis=-1)
    r = [np.add(t, 0.0, out=t) for t in terms[:8]]
    i = 8
    while i + 8 <= n:
        for j in range(8):
            r[j] += terms[i + j]
        i += 8
    # ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)), each sum into its left operand
    for step in (1, 2, 4):
        for j in range(0, 8, 2 * step):
            r[j] += r[j + step]
    total = r[0]
    for t in terms[i:]:
        total += t
    return total
