"""Lazy re-exports: a package's public names load their submodule on first use.

Each subpackage (`data`, `training`, `study`, `elucidation`) lists its public names in
`__all__` and maps them to submodules in `_EXPORTS`; `lazy_exports` builds the module-level
`__getattr__` (PEP 562) that imports on demand, so importing a package stays light (no
torch or ray until a name needs them). Standard library only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """The `__getattr__` of `package`: `exports[name]` is the submodule defining `name`."""

    def __getattr__(name: str) -> Any:
        """A public name, imported from its module when first asked for."""
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
