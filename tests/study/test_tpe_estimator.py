"""ScatterParzenEstimator (revstudy.study.tpe_estimator) builds the mixture Optuna's own
`_ParzenEstimator` builds, float for float: every parameter kind, ties (integer and
categorical parameters repeat values, so the sort's tie order decides which tied trial gets
the wider bandwidth), 0, 1, 2 and 3,000 observations, with and without the magic clip and
the endpoints."""

from __future__ import annotations

import numpy as np
import pytest
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator, _ParzenEstimatorParameters
from optuna.samplers._tpe.sampler import default_weights

from revstudy.study.tpe_estimator import ScatterParzenEstimator
from tests.study.test_tpe_density import KINDS, observations


def arrays(mpe: _ParzenEstimator) -> list[np.ndarray]:
    """Every array of the mixture: weights, then each distribution's fields."""
    mixture = mpe._mixture_distribution
    out = [mixture.weights]
    for d in mixture.distributions:
        out += [np.asarray(v) for v in d]
    return out


@pytest.mark.parametrize("n", [0, 1, 2, 3000])
@pytest.mark.parametrize(("clip", "endpoints"), [(True, False), (False, True), (True, True)])
def test_the_mixture_is_optuna_s(n: int, clip: bool, endpoints: bool) -> None:
    rng = np.random.default_rng(n)
    space = {f"p{i}": d for i, d in enumerate(KINDS)}
    obs = observations(space, n, rng)
    parameters = _ParzenEstimatorParameters(
        prior_weight=1.0,
        consider_magic_clip=clip,
        consider_endpoints=endpoints,
        weights=default_weights,
        multivariate=True,
    )
    ours = arrays(ScatterParzenEstimator(obs, space, parameters))
    theirs = arrays(_ParzenEstimator(obs, space, parameters))
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
