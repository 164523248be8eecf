"""Split files: row hashes independent of chunking, streamed reading, the Examples contract."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopwise.data import ParquetExamples, SplitWriter, read_split, version_hash
from loopwise.data.splits import write_frames
from loopwise.errors import DataError

LABELS = ["-1", "0", "1"]


def _frame(n: int = 1_000) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "text": [f"review number {i} " + "é" * (i % 7) for i in range(n)],
            "label": [LABELS[i % 3] for i in range(n)],
            "rating": [1 + i % 5 for i in range(n)],
            "title": [None if i % 4 == 0 else f"t{i}" for i in range(n)],
        }
    )


def test_hash_ignores_chunking_but_not_content(tmp_path: Path) -> None:
    frame = _frame()
    hashes = set()
    for chunk_size in (1_000, 7, 333):
        directory = tmp_path / str(chunk_size)
        directory.mkdir()
        written = write_frames(directory, {"train": frame}, LABELS, chunk_size=chunk_size)["train"]
        hashes.add(written.sha256)
        assert written.rows == 1_000
        assert written.label_counts == {"-1": 334, "0": 333, "1": 333}
    assert len(hashes) == 1
    changed = frame.copy()
    changed.loc[500, "text"] = "review number 500 "  # one character less
    other = tmp_path / "other"
    other.mkdir()
    assert write_frames(other, {"train": changed}, LABELS)["train"].sha256 not in hashes
    moved = frame.copy()
    moved.loc[3, "title"] = ""  # null -> empty string is a change too
    (tmp_path / "moved").mkdir()
    assert write_frames(tmp_path / "moved", {"train": moved}, LABELS)["train"].sha256 not in hashes


def test_version_hash_covers_labels_and_splits() -> None:
    base = version_hash(["a", "b"], {"train": "1" * 64, "test": "2" * 64})
    assert base == version_hash(["a", "b"], {"test": "2" * 64, "train": "1" * 64})
    assert base != version_hash(["b", "a"], {"train": "1" * 64, "test": "2" * 64})
    assert base != version_hash(["a", "b"], {"train": "1" * 64, "test": "3" * 64})


def test_writer_rejects_unknown_labels(tmp_path: Path) -> None:
    with SplitWriter(tmp_path, "train", ["a", "b"]) as writer, pytest.raises(DataError, match="'c'"):
        writer.write(pa.table({"text": ["x"], "label": ["c"]}))


def test_parquet_examples_stream_in_chunks(tmp_path: Path) -> None:
    written = write_frames(tmp_path, {"train": _frame()}, LABELS, chunk_size=100)["train"]
    examples = ParquetExamples(written.path)
    assert len(examples) == 1_000
    for _ in range(2):  # every call starts again from the first row
        chunks = list(examples.iter_chunks(64))
        assert all(len(texts) == len(labels) <= 64 for texts, labels in chunks)
        assert [t for texts, _ in chunks for t in texts] == list(_frame()["text"])
    assert pq.ParquetFile(written.path).metadata.num_row_groups == 10
    texts, labels = read_split(written.path.as_uri())
    assert labels[:4] == ["-1", "0", "1", "-1"] and len(texts) == 1_000


def test_missing_split_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing"):
        ParquetExamples(tmp_path / "gone.parquet")
