"""Type checks for values read from JSON and YAML files, where a boolean is not a number.

Python's `bool` is a subclass of `int`, so `isinstance(True, int)` holds and a `true` in a
trial.json or config.yaml would pass for the count 1 or the rate 1.0. The readers of study,
model and space files share these two, so none has to remember the exception.
"""

from __future__ import annotations

from typing import Any, TypeGuard

__all__ = ["is_int", "is_number"]


def is_int(value: Any) -> TypeGuard[int]:
    """Whether `value` is an integer and not a boolean."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> TypeGuard[int | float]:
    """Whether `value` is an integer or a float (NaN and infinities included) and not a
    boolean."""
    return isinstance(value, int | float) and not isinstance(value, bool)
