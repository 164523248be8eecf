"""The checker's primitives: problems collected as (dotted field, message), and the checks of keys,
choices and numbers that every part of a spec uses."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from loopwise.tuning._vocabulary import suggest


class Problems:
    """Every problem found, as ``(dotted field, message)``, in the order found."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def keys(
        self, raw: Any, path: str, allowed: list[str], aliases: Mapping[str, str]
    ) -> dict[str, tuple[str, Any]]:
        """Canonical key -> (key as written, value); unknown, duplicate and non-string keys reported."""
        out: dict[str, tuple[str, Any]] = {}
        if not isinstance(raw, dict):
            self.add(path, f"expected a mapping of settings, got {type(raw).__name__}")
            return out
        for key, value in raw.items():
            where = f"{path}.{key}" if path else str(key)
            canonical = aliases.get(key, key) if isinstance(key, str) else key
            if canonical not in allowed:
                names = [*allowed, *aliases]
                self.add(where, f"unknown setting {key!r}{suggest(str(key), names)}; use one of {allowed}")
            elif canonical in out:
                self.add(where, f"{out[canonical][0]!r} and {key!r} are the same setting: keep one")
            else:
                out[canonical] = (key, value)
        return out

    def choice(
        self, raw: Any, path: str, choices: tuple[str, ...], aliases: Mapping[str, str] | None = None
    ) -> Any:
        if isinstance(raw, str):
            table = {c.replace("_", ""): c for c in choices}
            table.update({k.replace("_", ""): v for k, v in (aliases or {}).items()})
            found = table.get(raw.strip().lower().replace("-", "").replace("_", ""))
            if found:
                return found
        hint = suggest(str(raw).lower(), list(choices))
        self.add(path, f"unknown value {raw!r}{hint}; use one of {', '.join(choices)}")
        return None

    def number(self, raw: Any, path: str, integer: bool = False, minimum: float | None = None) -> Any:
        value: Any = None
        if isinstance(raw, bool):
            pass
        elif isinstance(raw, int) or (isinstance(raw, float) and not integer):
            value = raw
        elif isinstance(raw, str) and not integer:
            with contextlib.suppress(ValueError):  # YAML 1.1 reads 1e-5 (no dot) as a string
                value = float(raw)
        if value is None:
            kind = "a whole number" if integer else "a number"
            self.add(path, f"expected {kind}, got {raw!r}")
            return None
        if minimum is not None and value < minimum:
            self.add(path, f"must be at least {minimum:g}, got {value!r}")
            return None
        return value if integer else float(value)
