"""Shared CLI pieces: user errors as one line, the common --data option."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from revstudy.errors import RevstudyError


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a `RevstudyError` into one `error: …` line on stderr and its exit code."""
    try:
        yield
    except RevstudyError as e:
        print(f"error: {e}", file=sys.stderr)
        raise typer.Exit(e.exit_code) from None
