"""Data set versions: content-addressed, immutable, with their splits stored as Parquet files."""

from __future__ import annotations

from loopwise.errors import NotFoundError

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
