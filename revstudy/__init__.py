"""revstudy: hyperparameter studies of the invertible 13C NMR model of Kuhn et al.

Kept import-light: `import revstudy` loads no torch or ray (the API functions import them
when called), so the CLI starts quickly and `analysis` can use the shared constants anywhere.

    import revstudy
    summary = revstudy.launch("quick", data="reversibledata.csv", name="first", num_samples=8)
    revstudy.report("first")
"""

from typing import Any

from revstudy.version import __version__

__all__ = ["__version__", "launch", "report", "resume", "status", "train", "train_config"]


def __getattr__(name: str) -> Any:
    """The API functions, loaded on first use (revstudy.api)."""
    if name in ("launch", "report", "resume", "status", "train", "train_config"):
        from revstudy import api

        return getattr(api, name)
    raise AttributeError(f"module 'revstudy' has no attribute {name!r}")
