"""Data sets: fetch and verify the course data, read labelled files in chunks, and record split versions.

Importing this package is cheap: the names below are loaded from their modules on first use (pandas,
pyarrow and scikit-learn are imported only then, torch never).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopwise._lazy import lazy_exports
from loopwise.data.records import DatasetVersion, SplitInfo

if TYPE_CHECKING:
    from loopwise.data.cache import Progress, fetch, fetch_reviews, reviews_cache_path, sha256_file
    from loopwise.data.readers import (
        Chunk,
        check_utf8,
        columns_of,
        detect_format,
        locate,
        read_chunks,
        require_columns,
        validate_chunk,
    )
    from loopwise.data.recipes import (
        REVIEWS_LABELS,
        ReviewsSplits,
        assign_splits,
        check_ratios,
        plan_splits,
        reviews_splits,
    )
    from loopwise.data.service import import_dataset, prepare_reviews, split_examples
    from loopwise.data.splits import ParquetExamples, SplitWriter, WrittenSplit, read_split, version_hash
    from loopwise.data.versions import parse_dataset_ref

_LAZY = {
    "parse_dataset_ref": "versions",
    "Progress": "cache",
    "fetch": "cache",
    "fetch_reviews": "cache",
    "reviews_cache_path": "cache",
    "sha256_file": "cache",
    "Chunk": "readers",
    "check_utf8": "readers",
    "columns_of": "readers",
    "detect_format": "readers",
    "locate": "readers",
    "read_chunks": "readers",
    "require_columns": "readers",
    "validate_chunk": "readers",
    "REVIEWS_LABELS": "recipes",
    "ReviewsSplits": "recipes",
    "assign_splits": "recipes",
    "check_ratios": "recipes",
    "plan_splits": "recipes",
    "reviews_splits": "recipes",
    "import_dataset": "service",
    "prepare_reviews": "service",
    "split_examples": "service",
    "ParquetExamples": "splits",
    "SplitWriter": "splits",
    "WrittenSplit": "splits",
    "read_split": "splits",
    "version_hash": "splits",
}

__all__ = [
    "REVIEWS_LABELS",
    "Chunk",
    "DatasetVersion",
    "ParquetExamples",
    "Progress",
    "ReviewsSplits",
    "SplitInfo",
    "SplitWriter",
    "WrittenSplit",
    "assign_splits",
    "check_ratios",
    "check_utf8",
    "columns_of",
    "detect_format",
    "fetch",
    "fetch_reviews",
    "import_dataset",
    "locate",
    "parse_dataset_ref",
    "plan_splits",
    "prepare_reviews",
    "read_chunks",
    "read_split",
    "require_columns",
    "reviews_cache_path",
    "reviews_splits",
    "sha256_file",
    "split_examples",
    "validate_chunk",
    "version_hash",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
