"""revstudy: hyperparameter studies of the invertible 13C NMR model of Kuhn et al.

The public surface is this module: the API functions (`revstudy.api`, one per command a
script needs) and the few types their results and inputs use. Everything else is imported
from the module that defines it (`from revstudy.training.trainer import Trainer`).

Kept import-light: `import revstudy` loads no torch or ray (the API functions import them
when called; the types load their modules when first used), so the CLI starts quickly and
`analysis` reports work where neither is installed.

    import revstudy
    summary = revstudy.launch("quick", data="reversibledata.csv", name="first", num_samples=8)
    revstudy.report("first")
"""

import importlib
from typing import TYPE_CHECKING, Any

from revstudy.api import (
    elucidate,
    evaluate,
    export,
    launch,
    list_studies,
    predict,
    report,
    resume,
    status,
    train,
    train_config,
)
from revstudy.errors import RevstudyError
from revstudy.version import __version__

if TYPE_CHECKING:
    from revstudy.studyinfo import StudyInfo
    from revstudy.training.config import TrialConfig
    from revstudy.training.saved import SavedModel, load_model

# the types, loaded on first use: their modules import pandas or torch
_TYPES = {
    "StudyInfo": "revstudy.studyinfo",
    "TrialConfig": "revstudy.training.config",
    "SavedModel": "revstudy.training.saved",
    "load_model": "revstudy.training.saved",
}

__all__ = [
    "RevstudyError",
    "SavedModel",
    "StudyInfo",
    "TrialConfig",
    "__version__",
    "elucidate",
    "evaluate",
    "export",
    "launch",
    "list_studies",
    "load_model",
    "predict",
    "report",
    "resume",
    "status",
    "train",
    "train_config",
]


def __getattr__(name: str) -> Any:
    """A type of the public surface, imported from its module when first used."""
    if name in _TYPES:
        return getattr(importlib.import_module(_TYPES[name]), name)
    raise AttributeError(f"module 'revstudy' has no attribute {name!r}")
