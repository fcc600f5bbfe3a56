"""A boolean read from JSON or YAML is never taken for a number."""

import math

import numpy as np
import pytest

from revstudy.jsontypes import is_int, is_number


@pytest.mark.parametrize("value", [0, -3, 10**30, np.int64(2).item()])
def test_integers_are_ints_and_numbers(value: object) -> None:
    assert is_int(value) and is_number(value)


@pytest.mark.parametrize("value", [0.5, math.nan, math.inf, -0.0, np.float64(1.5)])
def test_floats_are_numbers_not_ints(value: object) -> None:
    assert is_number(value) and not is_int(value)


@pytest.mark.parametrize("value", [True, False, None, "1", [1], {"a": 1}])
def test_booleans_and_others_are_neither(value: object) -> None:
    assert not is_int(value) and not is_number(value)
