"""Create data set versions: the course reviews recipe, and imports of labelled CSV, JSON lines, Parquet.

Both end the same way (:func:`_record`): split files are written into a staging directory, their content
hash is computed, and then either the version with that hash under that name is returned as it is (no new
rows, no new files), or the directory is moved to ``datasets/<content_hash>`` and the version recorded in
one unit of work. On any error nothing is recorded and the staged files are removed.

Imports stream: the file is read ``chunk_size`` rows at a time, validated and appended to a scratch Arrow
IPC stream (uncompressed, so reading it back allocates nothing beyond each batch) while only a 4-byte label
code per row stays in memory; the split assignment is computed from those codes
(:func:`~loopwise.data.recipes.assign_splits`), and the scratch rows are streamed again into the split
writers. Rows keep their file order inside each split.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loopwise.data.cache import Progress, sha256_file
from loopwise.data.readers import (
    DEFAULT_CHUNK_SIZE,
    check_utf8,
    detect_format,
    read_chunks,
    validate_chunk,
)
from loopwise.data.recipes import SPLITS, DropNa, assign_splits, check_ratios, reviews_splits
from loopwise.data.records import DatasetVersion, SplitInfo
from loopwise.data.splits import ParquetExamples, SplitWriter, WrittenSplit, version_hash, write_frames
from loopwise.errors import DataError, DataFormatError

if TYPE_CHECKING:
    from loopwise.storage import Store


def prepare_reviews(
    store: Store,
    csv_path: Path | str,
    *,
    name: str = "reviews",
    balance: bool = True,
    dropna: DropNa = "any",
    train: float = 0.9,
    validation: float = 0.05,
    test: float = 0.05,
    seed: int = 42,
) -> DatasetVersion:
    """The course's sentiment splits of the reviews CSV as a version of ``name`` (see
    :func:`~loopwise.data.recipes.reviews_splits`); the defaults give 5,537 / 307 / 309 balanced rows."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"no file at {csv_path}; fetch it with `loopwise data fetch reviews`")
    result = reviews_splits(
        csv_path, balance=balance, dropna=dropna, train=train, validation=validation, test=test, seed=seed
    )
    source = {
        "recipe": "reviews",
        "path": str(csv_path.resolve()),
        "sha256": result.sha256,
        "balance": balance,
        "dropna": dropna,
        "train": train,
        "validation": validation,
        "test": test,
        "seed": seed,
        "rows_read": result.rows_read,
        "rows_kept": result.rows_kept,
        "rows_used": result.rows_used,
    }
    with _staging(store) as staged:
        written = write_frames(staged, result.frames, result.labels)
        return _record(store, name, result.labels, source, staged, written)


def import_dataset(
    store: Store,
    path: Path | str,
    *,
    name: str,
    text_column: str,
    label_column: str,
    format: str | None = None,
    labels: Sequence[str] | None = None,
    balance: bool = False,
    train: float = 0.9,
    validation: float = 0.05,
    test: float = 0.05,
    seed: int = 42,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    skip_empty: bool = False,
    progress: Progress | None = None,
    origin: dict[str, Any] | None = None,
) -> DatasetVersion:
    """Import a labelled file as a version of ``name``, in bounded memory whatever the file's size.
    ``origin`` says where its labels came from (kept in the version's source, for lineage).

    ``labels`` fixes the label order (and rejects others); by default the labels found are sorted,
    numerically when all are numbers. ``skip_empty`` drops rows with an empty text or label instead of
    failing. ``progress(done, total)`` gets the rows read so far (total None), then the
    rows written to the splits (total known). Raises
    :class:`~loopwise.errors.DataFormatError` naming the file, line and field of a bad row, and
    :class:`~loopwise.errors.DataError` for wrong options.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no file at {path}")
    format = detect_format(path, format)
    check_ratios(train, validation, test)
    given = _check_labels(labels)
    file_sha = sha256_file(path) if format == "parquet" else check_utf8(path)
    with _staging(store) as staged, _staging(store, "rows-") as scratch:
        rows_file = scratch / "rows.arrows"
        codes, found, dropped = _read_validated(
            path, format, rows_file, text_column, label_column, given, chunk_size, skip_empty, progress
        )
        final = _final_labels(path, codes, found, given, label_column)
        assignment = assign_splits(
            codes,
            len(final),
            train=train,
            validation=validation,
            test=test,
            seed=seed,
            balance=balance,
            labels=final,
        )
        del codes
        rows_used = int((assignment >= 0).sum())
        written = _write_splits(rows_file, assignment, staged, final, chunk_size, progress, rows_used)
        source: dict[str, Any] = {
            "recipe": "import",
            "path": str(path.resolve()),
            "format": format,
            "sha256": file_sha,
            "text_column": text_column,
            "label_column": label_column,
            "balance": balance,
            "train": train,
            "validation": validation,
            "test": test,
            "seed": seed,
            "rows_read": len(assignment) + dropped,
            "rows_dropped_empty": dropped,
            "rows_used": rows_used,
        }
        if origin is not None:
            source["origin"] = origin
        return _record(store, name, final, source, staged, written)


def _final_labels(
    path: Path, codes: np.ndarray, found: list[str], given: list[str] | None, label_column: str
) -> list[str]:
    """The version's labels in order (``given``, or those found sorted); ``codes``, indices into
    ``found``, are rewritten in place as indices into them. Refuses a file without rows or with one label."""
    if not len(codes):
        raise DataFormatError(f"{path} has no rows to import")
    final = given or _sorted_labels(found)
    if len(final) < 2:
        raise DataError(
            f"{path} has only the label {final[0]!r} in {label_column!r}; "
            "a classifier needs at least two labels"
        )
    np.take(np.array([final.index(label) for label in found], dtype=np.int32), codes, out=codes)
    return final


def import_rows(
    store: Store,
    rows: Iterable[tuple[str, str]],
    *,
    name: str,
    labels: Sequence[str] | None = None,
    train: float = 0.8,
    validation: float = 0.1,
    test: float = 0.1,
    origin: dict[str, Any] | None = None,
) -> DatasetVersion:
    """A new version of ``name`` from (text, label) rows that people or a pipeline made (a labeling job,
    human loops, gathered labels), checked and split as :func:`import_dataset` does; ``origin`` says where
    the labels came from."""
    import csv
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
        return import_dataset(
            store, path, name=name, text_column="text", label_column="label", labels=labels,
            train=train, validation=validation, test=test, origin=origin,
        )  # fmt: skip


def split_examples(store: Store, version: DatasetVersion, split: str) -> ParquetExamples:
    """A split of a version as streamed :class:`~loopwise.classifiers._base.Examples` (from this host's
    copy of the file)."""
    return ParquetExamples(store.artifacts.local_file(version.split(split).uri))


def _check_labels(labels: Sequence[str] | None) -> list[str] | None:
    if labels is None:
        return None
    result = [str(label) for label in labels]
    if len(set(result)) != len(result):
        raise DataError(f"labels must be distinct, got {result}")
    return result


def _sorted_labels(labels: Sequence[str]) -> list[str]:
    """Numerically when every label is a number (so -1, 0, 1, 10), else as text."""
    try:
        return sorted(labels, key=float)
    except ValueError:
        return sorted(labels)


def _read_validated(
    path: Path,
    format: str,
    rows_file: Path,
    text_column: str,
    label_column: str,
    labels: list[str] | None,
    chunk_size: int,
    skip_empty: bool,
    progress: Progress | None,
) -> tuple[np.ndarray, list[str], int]:
    """Pass one: validate every chunk and append its text and label to ``rows_file``.

    Returns a provisional label code per kept row (indexes into the returned labels, in order of first
    appearance, or ``labels`` when given) and the number of rows dropped as empty.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    index: dict[str, int] = {label: code for code, label in enumerate(labels or [])}
    codes: list[np.ndarray] = []
    dropped = rows = 0
    schema = pa.schema([pa.field("text", pa.string()), pa.field("label", pa.string())])
    with pa.OSFile(str(rows_file), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for chunk in read_chunks(path, [text_column, label_column], format=format, chunk_size=chunk_size):
            table, skipped = validate_chunk(
                chunk,
                path=path,
                format=format,
                text_column=text_column,
                label_column=label_column,
                labels=labels,
                skip_empty=skip_empty,
            )
            dropped += skipped
            label = table.column("label")
            for value in pc.unique(label).to_pylist():
                index.setdefault(value, len(index))
            known = pa.array(list(index), pa.string())
            codes.append(pc.index_in(label, value_set=known).to_numpy(zero_copy_only=False).astype(np.int32))
            writer.write_table(table)
            rows += table.num_rows
            if progress is not None:
                progress(rows, None)
    all_codes = np.concatenate(codes) if codes else np.empty(0, dtype=np.int32)
    return all_codes, list(index), dropped


def _write_splits(
    rows_file: Path,
    assignment: np.ndarray,
    directory: Path,
    labels: list[str],
    chunk_size: int,
    progress: Progress | None,
    total: int,
) -> dict[str, WrittenSplit]:
    """Pass two: stream the scratch rows into one writer per split (``assignment``: split number or -1)."""
    import pyarrow as pa

    present = [number for number in range(len(SPLITS)) if (assignment == number).any()]
    writers = {n: SplitWriter(directory, SPLITS[n], labels, row_group_rows=chunk_size) for n in present}
    try:
        start = done = 0
        with pa.OSFile(str(rows_file)) as source, pa.ipc.open_stream(source) as reader:
            for batch in reader:
                where = assignment[start : start + batch.num_rows]
                start += batch.num_rows
                for number, writer in writers.items():
                    mask = where == number
                    if mask.any():
                        writer.write(batch.filter(pa.array(mask)))
                        done += int(mask.sum())
                if progress is not None:
                    progress(done, total)
        return {writer.name: writer.close() for writer in writers.values()}
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise


def _record(
    store: Store,
    name: str,
    labels: list[str],
    source: dict[str, Any],
    staged: Path,
    written: dict[str, WrittenSplit],
) -> DatasetVersion:
    """Return the version of ``name`` with this content, or move ``staged`` into place and record one."""
    content_hash = version_hash(labels, written)
    with store.uow() as uow:
        existing = uow.datasets.find_by_hash(name, content_hash)
    if existing is not None:
        return existing
    key = f"datasets/{content_hash}"
    created = not store.artifacts.exists(key)
    store.artifacts.commit_dir(staged, key)
    splits = [
        SplitInfo(s.name, store.artifacts.uri(key, s.path.name), s.rows, s.label_counts, s.sha256)
        for s in written.values()
    ]
    try:
        with store.uow() as uow:
            return uow.datasets.add(name, content_hash, labels, source, splits)
    except Exception:
        raced = _find_quietly(store, name, content_hash)  # a concurrent writer may have recorded it first
        if raced is not None:
            return raced
        if created:
            store.artifacts.remove(key)
        raise
    except BaseException:
        if created and _find_quietly(store, name, content_hash) is None:
            store.artifacts.remove(key)
        raise


def _find_quietly(store: Store, name: str, content_hash: str) -> DatasetVersion | None:
    try:
        with store.uow() as uow:
            return uow.datasets.find_by_hash(name, content_hash)
    except Exception:
        return None


@contextmanager
def _staging(store: Store, prefix: str = "dataset-") -> Iterator[Path]:
    """A private staging directory, removed on the way out unless it was committed (moved) meanwhile."""
    staged = store.artifacts.staging(prefix)
    try:
        yield staged
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def list_datasets(store: Store) -> list[DatasetVersion]:
    """Every data set version, as the repository orders them."""
    with store.uow() as uow:
        return uow.datasets.list()


def get_dataset(store: Store, name: str, version: int | None = None) -> DatasetVersion:
    """Version ``version`` of data set ``name`` (its latest when None)."""
    with store.uow() as uow:
        return uow.datasets.get(name, version)


__all__ = [
    "get_dataset",
    "import_dataset",
    "list_datasets",
    "prepare_reviews",
    "split_examples",
]
