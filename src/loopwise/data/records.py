"""Data set versions as storage returns them: content-addressed, immutable, with their splits stored as
Parquet files."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loopwise.errors import NotFoundError


@dataclass(frozen=True)
class SplitInfo:
    """One split of a data set version: where its rows lie and what they hold."""

    name: str
    uri: str
    rows: int
    label_counts: dict[str, int]
    sha256: str


@dataclass(frozen=True)
class DatasetVersion:
    """An immutable version of a named data set. ``content_hash`` covers every split's rows and the labels."""

    id: int
    name: str
    version: int
    content_hash: str
    labels: list[str]
    source: dict[str, Any]
    created_at: datetime
    splits: dict[str, SplitInfo] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def split(self, name: str) -> SplitInfo:
        try:
            return self.splits[name]
        except KeyError:
            raise NotFoundError(
                f"data set {self.ref} has no split {name!r}; it has: {', '.join(sorted(self.splits))}"
            ) from None
