"""In-memory copies of a study's Optuna record that keep two of Optuna's analyses usable at
GPU-rate study sizes (10³-10⁴ trials), each said in the report where it is used.

- fANOVA's forest costs about the square of its trials (on 2 AMD EPYC cores: 7.5 s at
  500 finished trials, 22 s at 1,000, minutes at 3,000, once per objective): it is given a
  seeded random sample of `FANOVA_TRIALS` (`sampled`).
- Optuna's contour plot holds one cell for every pair of distinct values of two parameters:
  N² cells a panel for continuous ones, 225 MB of page and 16 min at 3,000 trials. Values
  of a parameter with more than `CONTOUR_LEVELS` distinct ones are split into that many
  runs of neighbouring values, each drawn at one value it holds (`binned`), so a panel
  holds at most `CONTOUR_LEVELS`² cells.

Studies at or below these sizes are passed through unchanged.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["CONTOUR_LEVELS", "FANOVA_TRIALS", "binned", "sampled"]

FANOVA_TRIALS = 500
CONTOUR_LEVELS = 100


def _copy(ostudy: Any, trials: Sequence[Any]) -> Any:
    """A new in-memory study with `ostudy`'s directions holding `trials`."""
    import optuna

    copy = optuna.create_study(directions=ostudy.directions)
    copy.add_trials(trials)
    return copy


def sampled(ostudy: Any, trials: Sequence[Any], k: int = FANOVA_TRIALS, seed: int = 0) -> Any:
    """`ostudy` itself if it has at most `k` of `trials`, else an in-memory study of a
    seeded random `k` of them, in trial order (the same sample every time)."""
    if len(trials) <= k:
        return ostudy
    chosen = sorted(random.Random(seed).sample(range(len(trials)), k))
    return _copy(ostudy, [trials[i] for i in chosen])


def binned(
    ostudy: Any, params: Sequence[str], levels: int = CONTOUR_LEVELS
) -> tuple[Any, list[str]]:
    """(a study of the complete trials in which each of `params` with more than `levels`
    distinct numeric values has them split, in order, into `levels` runs of as many
    distinct values each, a trial's value replaced by the middle value of its run; the
    parameters so binned), or (`ostudy`, []) when none needs it. Every value a trial gets
    is one some trial had, so it lies in the parameter's distribution (steps, logs)."""
    import optuna
    from optuna.distributions import CategoricalDistribution

    complete = ostudy.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    maps: dict[str, dict[Any, Any]] = {}
    for name in params:
        having = [t for t in complete if name in t.params]
        if not having or isinstance(having[0].distributions[name], CategoricalDistribution):
            continue
        values = np.array(sorted({t.params[name] for t in having}))
        if len(values) <= levels:
            continue
        # as many distinct values a run: where trials crowd (a sampler's focus), finer
        maps[name] = {}
        for part in np.array_split(values, levels):
            middle = part[len(part) // 2].item()
            maps[name].update(dict.fromkeys(part.tolist(), middle))
    if not maps:
        return ostudy, []
    trials = []
    for t in complete:
        params_now = {k: maps[k][v] if k in maps else v for k, v in t.params.items()}
        trials.append(
            optuna.trial.create_trial(
                state=t.state,
                values=t.values,
                params=params_now,
                distributions=t.distributions,
                user_attrs=t.user_attrs,
                system_attrs=t.system_attrs,  # constraints live here
                intermediate_values=t.intermediate_values,
            )
        )
    return _copy(ostudy, trials), list(maps)
