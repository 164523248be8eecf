"""Data set versions: content-addressed, immutable, with their splits stored as Parquet files."""

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


#: the largest version a reference may name (a 64-bit integer column)
MAX_VERSION = 2**63 - 1


def parse_dataset_ref(ref: str) -> tuple[str, int | None]:
    """``reviews`` -> (reviews, None: the latest); ``reviews:3`` -> (reviews, 3)."""
    name, sep, version = ref.partition(":")
    if not name:
        raise NotFoundError(f"empty data set reference {ref!r}; use NAME or NAME:VERSION")
    if not sep:
        return name, None
    if not (version.isascii() and version.isdigit()) or len(version) > 19 or int(version) > MAX_VERSION:
        raise NotFoundError(
            f"bad data set reference {ref[:80]!r}: the version after ':' must be 0 to {MAX_VERSION}"
        )
    return name, int(version)
