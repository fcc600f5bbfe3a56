"""Errors a user can act on. The CLI prints them as one line and exits with `exit_code`."""

from __future__ import annotations


class RevstudyError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""

    exit_code = 2


class DataError(RevstudyError):
    """A data file is malformed: the message names the file, the 1-based line and the field."""


class ConfigError(RevstudyError):
    """A configuration or search-space file is invalid: the message names file and field."""


class UnknownFieldsError(ConfigError):
    """A configuration names fields this version does not know: most likely written by
    another revstudy version (a reader may say so; other config errors are not that)."""


class NonFiniteLossError(RevstudyError):
    """Training produced NaN or inf; a study records the trial as failed with this reason."""

    exit_code = 3
