"""Data set versions in the store (SQLite and PostgreSQL): the reviews recipe, imports, and bad inputs
that leave the store as it was."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopwise.data import import_dataset, prepare_reviews, read_split, split_examples
from loopwise.errors import DataError, DataFormatError
from loopwise.storage import Store
from loopwise.storage.artifacts.local import local_path

COLUMNS = {"text_column": "body", "label_column": "stars"}
WORDS = ["soft", "warm", "lovely", "tight", "small", "runs", "large", "fabric", "returned", "cheap"]


def _files(store: Store) -> list[str]:
    """Every file and directory under the artifact root, relative to it."""
    root = store.artifacts.root
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _assert_untouched(store: Store) -> None:
    """No data set recorded, and no file under the artifact root (empty directories may remain)."""
    with store.uow() as uow:
        assert uow.datasets.list() == []
    assert [p for p in store.artifacts.root.rglob("*") if not p.is_dir()] == []
    assert list((store.artifacts.root / ".staging").iterdir()) == []


def _rows(n: int = 300, seed: int = 0) -> list[dict[str, object]]:
    rng = random.Random(seed)
    return [
        {"id": i, "body": " ".join(rng.choices(WORDS, k=8)), "stars": rng.choice([-1, 0, 1, 1])}
        for i in range(n)
    ]


def _write(rows: list[dict[str, object]], path: Path) -> Path:
    if path.suffix == ".csv":
        lines = ["id,body,stars"] + [f'{r["id"]},"{r["body"]}",{r["stars"]}' for r in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


# --- the course reviews recipe ---------------------------------------------------------------------------


def test_prepare_reviews_is_the_course_split_and_content_addressed(store: Store, reviews_csv: Path) -> None:
    version = prepare_reviews(store, reviews_csv)
    assert (version.ref, version.labels) == ("reviews:1", ["-1", "0", "1"])
    sizes = {name: split.rows for name, split in version.splits.items()}
    assert sizes == {"train": 5_537, "validation": 307, "test": 309}
    assert version.split("train").label_counts == {"-1": 1_846, "0": 1_846, "1": 1_845}
    assert version.split("test").label_counts == {"-1": 103, "0": 103, "1": 103}
    assert version.source["sha256"] == store.settings.reviews_sha256
    directory = store.artifacts.root / "datasets" / version.content_hash
    assert local_path(version.split("train").uri) == directory / "train.parquet"
    files_before = _files(store)

    again = prepare_reviews(store, reviews_csv)
    assert (again.id, again.ref, again.content_hash) == (version.id, "reviews:1", version.content_hash)
    assert _files(store) == files_before

    other = prepare_reviews(store, reviews_csv, dropna="needed", balance=False)
    assert other.ref == "reviews:2" and other.content_hash != version.content_hash
    assert sum(split.rows for split in other.splits.values()) == 22_628
    with store.uow() as uow:
        assert [v.ref for v in uow.datasets.list()] == ["reviews:1", "reviews:2"]
        assert uow.datasets.get("reviews", 1).splits == version.splits

    texts, labels = read_split(version.split("validation").uri)
    assert len(texts) == 307 and set(labels) == {"-1", "0", "1"}
    examples = split_examples(store, version, "train")
    assert len(examples) == 5_537
    assert sum(len(t) for t, _ in examples.iter_chunks(1_000)) == 5_537


# --- imports -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_import_each_format(store: Store, tmp_path: Path, suffix: str) -> None:
    path = _write(_rows(), tmp_path / f"reviews{suffix}")
    seen: list[tuple[int, int | None]] = []
    version = import_dataset(
        store,
        path,
        name="mine",
        text_column="body",
        label_column="stars",
        train=0.8,
        validation=0.1,
        test=0.1,
        chunk_size=64,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert version.labels == ["-1", "0", "1"]  # numeric order
    # the course's float shares give test the odd row: 0.1 / (1 - 0.8) == 0.5000000000000001
    assert {n: s.rows for n, s in version.splits.items()} == {"train": 240, "validation": 29, "test": 31}
    assert version.source["format"] == suffix.lstrip(".")
    assert version.source["rows_read"] == 300
    texts, labels = read_split(version.split("train").uri)
    assert set(labels) <= {"-1", "0", "1"} and all(len(t.split()) == 8 for t in texts)
    assert (300, None) in seen  # all rows read, then written
    assert seen[-1] == (300, 300)


def test_the_same_rows_in_any_format_are_one_version(store: Store, tmp_path: Path) -> None:
    rows = _rows()
    versions = [
        import_dataset(
            store,
            _write(rows, tmp_path / f"r{suffix}"),
            name="same",
            text_column="body",
            label_column="stars",
        )
        for suffix in (".csv", ".jsonl", ".parquet")
    ]
    assert {v.id for v in versions} == {versions[0].id}
    assert versions[0].ref == "same:1"
    assert len(list((store.artifacts.root / "datasets").iterdir())) == 1
    reseeded = import_dataset(store, tmp_path / "r.csv", name="same", **COLUMNS, seed=1)
    assert reseeded.ref == "same:2"


def test_import_options(store: Store, tmp_path: Path) -> None:
    rows = _rows(400)
    rows[5]["body"] = "   "
    path = _write(rows, tmp_path / "r.csv")
    version = import_dataset(
        store,
        path,
        name="opts",
        text_column="body",
        label_column="stars",
        labels=["1", "0", "-1"],
        balance=True,
        skip_empty=True,
        train=0.5,
        validation=0.5,
        test=0.0,
    )
    assert version.labels == ["1", "0", "-1"]
    assert set(version.splits) == {"train", "validation"}
    counts = [version.split(s).label_counts for s in ("train", "validation")]
    smallest = min(sum(c[label] for c in counts) for label in version.labels)
    assert all(sum(c[label] for c in counts) == smallest for label in version.labels)
    assert version.source["rows_dropped_empty"] == 1


def test_bad_ratios_and_labels(store: Store, tmp_path: Path) -> None:
    path = _write(_rows(), tmp_path / "r.csv")
    with pytest.raises(DataError, match="add up to 1"):
        import_dataset(store, path, name="x", **COLUMNS, train=0.9, test=0.2)
    with pytest.raises(DataError, match="at least two labels"):
        one = _write([{**r, "stars": 1} for r in _rows()], tmp_path / "one.csv")
        import_dataset(store, one, name="x", **COLUMNS)
    rare = _rows()
    rare[0]["stars"] = 7
    with pytest.raises(DataError, match=r"label '7' has only 1 row"):
        import_dataset(store, _write(rare, tmp_path / "rare.csv"), name="x", **COLUMNS)
    _assert_untouched(store)


# --- bad inputs leave the store as it was ------------------------------------------------------------------


def _bad_missing_column(tmp_path: Path) -> tuple[Path, str]:
    return _write(
        _rows(), tmp_path / "r.csv"
    ), r"has no column 'text'; its columns are: 'id', 'body', 'stars'"


def _bad_empty_text(tmp_path: Path) -> tuple[Path, str]:
    rows = _rows()
    rows[200]["body"] = ""
    return _write(rows, tmp_path / "r.jsonl"), r"line 201: field 'body' is empty"


def _bad_non_utf8(tmp_path: Path) -> tuple[Path, str]:
    path = _write(_rows(), tmp_path / "r.csv")
    lines = path.read_bytes().split(b"\n")
    lines[150] = b'150,"na\xefve fit",1'  # Latin-1, not UTF-8, on line 151
    path.write_bytes(b"\n".join(lines))
    return path, r"line 151: bytes .* are not UTF-8"


def _bad_unknown_label(tmp_path: Path) -> tuple[Path, str]:
    rows = _rows()
    rows[250]["stars"] = 5
    return _write(
        rows, tmp_path / "r.parquet"
    ), r"row 251: unknown label '5' in field 'stars'; the known labels"


@pytest.mark.parametrize("case", [_bad_missing_column, _bad_empty_text, _bad_non_utf8, _bad_unknown_label])
def test_bad_input_names_the_place_and_changes_nothing(
    store: Store, tmp_path: Path, case: Callable[[Path], tuple[Path, str]]
) -> None:
    path, message = case(tmp_path)
    text_column = "text" if case is _bad_missing_column else "body"
    with pytest.raises(DataFormatError, match=message) as caught:
        import_dataset(
            store,
            path,
            name="bad",
            text_column=text_column,
            label_column="stars",
            labels=["-1", "0", "1"],
            chunk_size=64,
        )
    assert str(path) in str(caught.value)
    _assert_untouched(store)


def test_failed_recording_removes_the_files(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopwise.storage.repositories import DatasetRepository

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(DatasetRepository, "add", refuse)
    with pytest.raises(RuntimeError, match="went away"):
        import_dataset(store, _write(_rows(), tmp_path / "r.csv"), name="x", **COLUMNS)
    _assert_untouched(store)
