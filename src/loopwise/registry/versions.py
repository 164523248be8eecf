"""Model versions, their references (``name``, ``name:3``, ``name@champion``) and aliases."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loopwise.errors import NotFoundError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")


@dataclass(frozen=True)
class ModelVersion:
    id: int
    name: str
    version: int
    backend: str
    uri: str
    labels: list[str]
    code_version: str
    created_at: datetime
    run_id: str | None = None
    dataset_version_id: int | None = None
    parent_id: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: exactly one of ``version`` and ``alias`` is set, or neither for the latest."""

    name: str
    version: int | None = None
    alias: str | None = None


def check_name(name: str, what: str = "model name") -> str:
    if not _NAME.match(name):
        raise NotFoundError(
            f"invalid {what} {name!r}: use letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def parse_model_ref(ref: str) -> ModelRef:
    """Parse ``name``, ``name:VERSION`` or ``name@ALIAS``."""
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return ModelRef(check_name(name), alias=check_name(alias, "alias"))
    if ":" in ref:
        name, version = ref.split(":", 1)
        if not version.isdigit():
            raise NotFoundError(f"bad model reference {ref!r}: the version after ':' must be a number")
        return ModelRef(check_name(name), version=int(version))
    return ModelRef(check_name(ref))
