"""Fixtures: synthetic study directories, built once per session and kind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from analysis_synthetic import make_study

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="session")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """study_dir(kind) -> path of a synthetic study of that kind (see analysis_synthetic)."""
    root = tmp_path_factory.mktemp("studies")
    made: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in made:
            made[kind] = make_study(root, kind)
        return made[kind]

    return get
