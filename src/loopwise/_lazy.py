"""Lazy package exports: names imported from their submodule on first use, so that importing a package
(say ``loopwise.data`` from the storage layer) does not import pandas, scikit-learn or torch."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from typing import Any


def lazy_exports(
    package: str, submodules: Mapping[str, str], public: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` for ``package``.

    ``submodules`` maps each lazy name to the submodule (relative to ``package``) that defines it; a name
    is imported on first access and then cached in the package's namespace.
    """

    def __getattr__(name: str) -> Any:
        submodule = submodules.get(name)
        if submodule is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f"{package}.{submodule}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(public)

    return __getattr__, __dir__
