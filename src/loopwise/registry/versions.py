"""Model versions, their references (``name``, ``name:3``, ``name@champion``) and aliases."""

from __future__ import annotations

import re

from loopwise.errors import NotFoundError
from loopwise.registry.records import ModelRef

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")


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
        if not (version.isascii() and version.isdigit()) or len(version) > 19 or int(version) >= 2**63:
            raise NotFoundError(
                f"bad model reference {ref[:80]!r}: the version after ':' must be a number below 2**63"
            )
        return ModelRef(check_name(name), version=int(version))
    return ModelRef(check_name(ref))
