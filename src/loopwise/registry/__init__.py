"""The model registry: versions with lineage, references and aliases.

Importing this package is cheap: the service's names load from their module on first use, so the storage
layer can import :mod:`loopwise.registry.records` without importing the service (which imports storage).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopwise._lazy import lazy_exports
from loopwise.registry.records import ModelRef, ModelVersion

if TYPE_CHECKING:
    from loopwise.registry.service import code_version, lineage, register, resolve, set_alias
    from loopwise.registry.versions import parse_model_ref

_LAZY = {name: "service" for name in ("code_version", "lineage", "register", "resolve", "set_alias")}
_LAZY["parse_model_ref"] = "versions"

__all__ = [
    "ModelRef",
    "ModelVersion",
    "code_version",
    "lineage",
    "parse_model_ref",
    "register",
    "resolve",
    "set_alias",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
