"""Chunked readers and row checks: what they yield, and errors that name the file, line and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopwise.data import readers
from loopwise.data.readers import (
    check_utf8,
    detect_format,
    locate,
    read_chunks,
    require_columns,
    validate_chunk,
)
from loopwise.errors import DataError, DataFormatError

CSV = 'id,review,stars\n1,"soft, warm",5\n2,"runs\nsmall",2\n\n3,ok,3\n4,lovely,5\n5,meh,1\n'


def _csv(tmp_path: Path, text: str = CSV, name: str = "r.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _rows(path: Path, columns: list[str], chunk_size: int = 2, **kwargs: Any) -> list[tuple[int, dict]]:
    chunks = read_chunks(path, columns, chunk_size=chunk_size, **kwargs)
    return [(chunk.first_row, chunk.table.to_pydict()) for chunk in chunks]


def test_detect_format() -> None:
    assert detect_format(Path("a.CSV")) == "csv"
    assert detect_format(Path("a.jsonl")) == "jsonl"
    assert detect_format(Path("a.ndjson")) == "jsonl"
    assert detect_format(Path("a.parquet")) == "parquet"
    assert detect_format(Path("a.txt"), "csv") == "csv"
    with pytest.raises(DataError, match="--format"):
        detect_format(Path("a.txt"))
    with pytest.raises(DataError, match="unknown format"):
        detect_format(Path("a.csv"), "xml")


def test_csv_chunks_keep_quoted_newlines_and_number_rows(tmp_path: Path) -> None:
    chunks = _rows(_csv(tmp_path), ["review", "stars"])
    assert [first for first, _ in chunks] == [0, 2, 4]
    assert chunks[0][1] == {"review": ["soft, warm", "runs\nsmall"], "stars": ["5", "2"]}
    assert chunks[2][1] == {"review": ["meh"], "stars": ["1"]}


def test_jsonl_numbers_become_label_text(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    records = [{"t": "a", "y": 1}, {"t": "b", "y": -1.0}, {"t": "c", "y": "0"}, {"t": None, "y": True}]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n", encoding="utf-8")
    (_, rows), *_ = _rows(path, ["t", "y"], chunk_size=10)
    assert rows == {"t": ["a", "b", "c", ""], "y": ["1", "-1", "0", "true"]}


def test_parquet_integer_and_float_labels(tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    pq.write_table(pa.table({"t": ["a", "b", None], "y": [1, -1, 0], "z": [1.0, 2.5, None]}), path)
    (_, rows), *_ = _rows(path, ["t", "y", "z"], chunk_size=10)
    assert rows == {"t": ["a", "b", ""], "y": ["1", "-1", "0"], "z": ["1", "2.5", ""]}


def test_long_csv_records_grow_the_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "_CSV_BLOCK", 64)
    long_text = "word " * 200
    path = _csv(tmp_path, "text,label\n" + "".join(f"{long_text}{i},{i % 2}\n" for i in range(30)))
    texts = [t for _, rows in _rows(path, ["text", "label"], chunk_size=7) for t in rows["text"]]
    assert texts == [f"{long_text}{i}" for i in range(30)]


def test_missing_column_names_the_file_and_the_columns(tmp_path: Path) -> None:
    path = _csv(tmp_path)
    with pytest.raises(DataFormatError) as caught:
        list(read_chunks(path, ["review", "label"]))
    message = str(caught.value)
    assert str(path) in message and "'label'" in message
    assert "'id', 'review', 'stars'" in message
    with pytest.raises(DataFormatError, match="'nope'"):
        require_columns(path, ["a"], ["a", "nope"])


def test_non_utf8_bytes_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\nfine,1\ncaf\u00e9 ok,0\n".encode() + b"na\xefve,1\n")
    with pytest.raises(DataFormatError) as caught:
        check_utf8(path)
    assert f"{path}, line 4" in str(caught.value)
    assert "UTF-8" in str(caught.value)


def test_utf8_check_returns_the_sha256(tmp_path: Path) -> None:
    from loopwise.data import sha256_file

    path = _csv(tmp_path, "x\n" + "caf\u00e9\n" * 300_000)  # longer than one read block
    assert check_utf8(path) == sha256_file(path)


def test_locate_counts_physical_lines(tmp_path: Path) -> None:
    path = _csv(tmp_path)
    assert [locate(path, "csv", row) for row in range(4)] == ["line 2", "line 3", "line 6", "line 7"]
    assert locate(path, "parquet", 4) == "row 5"


def _validate(path: Path, fmt: str = "csv", **kwargs: Any) -> tuple[list[dict], int]:
    out, dropped = [], 0
    for chunk in read_chunks(path, ["review", "stars"], format=fmt, chunk_size=2):
        table, skipped = validate_chunk(
            chunk, path=path, format=fmt, text_column="review", label_column="stars", **kwargs
        )
        out.extend(table.to_pylist())
        dropped += skipped
    return out, dropped


def test_empty_text_names_file_line_and_field(tmp_path: Path) -> None:
    path = _csv(tmp_path, CSV.replace("3,ok,3", '3,"  ",3'))
    with pytest.raises(DataFormatError) as caught:
        _validate(path)
    assert f"{path}, line 6: field 'review' is empty" in str(caught.value)
    assert "--skip-empty" in str(caught.value)


def test_empty_label_names_the_label_field(tmp_path: Path) -> None:
    path = _csv(tmp_path, CSV.replace("4,lovely,5", "4,lovely,"))
    with pytest.raises(DataFormatError, match=r"line 7: field 'stars' is empty"):
        _validate(path)


def test_skip_empty_drops_and_counts(tmp_path: Path) -> None:
    path = _csv(tmp_path, CSV.replace("3,ok,3", "3,,3").replace("5,meh,1", "5,meh,"))
    rows, dropped = _validate(path, skip_empty=True)
    assert dropped == 2
    assert [r["text"] for r in rows] == ["soft, warm", "runs\nsmall", "lovely"]


def test_unknown_label_names_it_and_the_known_ones(tmp_path: Path) -> None:
    path = _csv(tmp_path)
    with pytest.raises(DataFormatError) as caught:
        _validate(path, labels=["1", "2", "5"])
    message = str(caught.value)
    assert f"{path}, line 6: unknown label '3' in field 'stars'" in message
    assert "'1', '2', '5'" in message


def test_unknown_label_after_dropped_rows_points_at_the_right_line(tmp_path: Path) -> None:
    path = _csv(tmp_path, CSV.replace("3,ok,3", "3,,3").replace("4,lovely,5", "4,lovely,7"))
    with pytest.raises(DataFormatError, match=r"line 7: unknown label '7'"):
        _validate(path, labels=["1", "2", "5"], skip_empty=True)


def test_jsonl_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"review": "a", "stars": 1}\n{"review": "b"}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"line 2: no field 'stars'"):
        _validate(path, "jsonl")
    path.write_text('{"review": "a", "stars": 1}\n\n{"review": "b", "stars": \n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"line 3: not valid JSON"):
        _validate(path, "jsonl")
    path.write_text('{"review": "a", "stars": 1}\n\n{"review": "", "stars": 2}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"line 3: field 'review' is empty"):
        _validate(path, "jsonl")


def test_parquet_empty_text_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    pq.write_table(pa.table({"review": ["a", "b", None], "stars": [1, 2, 3]}), path)
    with pytest.raises(DataFormatError, match=r"row 3: field 'review' is empty"):
        _validate(path, "parquet")
