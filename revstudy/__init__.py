"""revstudy: hyperparameter studies of the invertible 13C NMR model of Kuhn et al.

The public surface is this module: the API functions (`revstudy.api`, one per command a
script needs) and the few types their results and inputs use. Everything else is imported
from the module that defines it (`from revstudy.training.trainer import Trainer`).

Kept import-light: `import revstudy` loads no torch or ray (a name loads its module when
first used), so the CLI starts quickly and `analysis` reports work where neither is
installed.

    import revstudy
    summary = revstudy.launch("quick", data="reversibledata.csv", name="first", num_samples=8)
    revstudy.report("first")
"""

import importlib
from typing import TYPE_CHECKING, Any

from revstudy.errors import RevstudyError
from revstudy.version import __version__

if TYPE_CHECKING:
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
    from revstudy.studyinfo import StudyInfo
    from revstudy.training.config import TrialConfig
    from revstudy.training.saved import SavedModel, load_model

# public name -> the module defining it; loaded on first use because the engine's modules
# import torch, which `analysis` users may not have
_DEFINED_IN = {
    **dict.fromkeys(
        (
            "elucidate",
            "evaluate",
            "export",
            "launch",
            "list_studies",
            "predict",
            "report",
            "resume",
            "status",
            "train",
            "train_config",
        ),
        "revstudy.api",
    ),
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
    """A public name, imported from its module when first used."""
    if name in _DEFINED_IN:
        return getattr(importlib.import_module(_DEFINED_IN[name]), name)
    raise AttributeError(f"module 'revstudy' has no attribute {name!r}")
