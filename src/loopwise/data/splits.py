"""Split files: Parquet written in chunks with their content hashes, and read back as a stream.

A split file has the string columns ``text`` and ``label`` first, then any extra columns a recipe keeps.
Its sha256 is taken over the *values*, not the file bytes, so it does not depend on the Parquet library,
compression or chunking. Column by column, each value's UTF-8 bytes feed one digest and each value's byte
length (little-endian int64, -1 for a null) another; integers and floats feed their little-endian values
and a null mask instead. The split's hash covers the column names and types and those digests in order.
A version's content hash covers its labels and the hash of every split (:func:`version_hash`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from loopwise.errors import DataError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

SPLIT_SUFFIX = ".parquet"
_COMPRESSION = "zstd"
#: a buffered row group is written once it holds this many bytes, even if it has fewer rows than asked for
_ROW_GROUP_BYTES = 2 << 20


@dataclass(frozen=True)
class WrittenSplit:
    """A split file in a staged directory, with what the metadata store records about it."""

    name: str
    path: Path
    rows: int
    label_counts: dict[str, int]
    sha256: str


class _ColumnDigest:
    """The order-sensitive digest of one column's values, fed an Arrow array at a time."""

    def __init__(self) -> None:
        self.values = hashlib.sha256()
        self.shape = hashlib.sha256()

    def update(self, array: pa.Array) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        if not len(array):
            return
        nulls = array.is_null().to_numpy(zero_copy_only=False) if array.null_count else None
        if pa.types.is_integer(array.type) or pa.types.is_floating(array.type):
            values = array.fill_null(0) if nulls is not None else array
            dtype = np.dtype(values.type.to_pandas_dtype()).newbyteorder("<")
            self.values.update(values.to_numpy(zero_copy_only=False).astype(dtype).tobytes())
            self.shape.update(nulls.tobytes() if nulls is not None else bytes(len(array)))
            return
        if not pa.types.is_string(array.type):
            array = pc.cast(array, pa.string())
        if nulls is not None:
            array = array.fill_null("")
        _validity, offsets_buffer, data = array.buffers()
        offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[array.offset : array.offset + len(array) + 1]
        lengths = np.diff(offsets).astype("<i8")
        if nulls is not None:
            lengths[nulls] = -1
        self.shape.update(lengths.tobytes())
        if data is not None and len(offsets):
            self.values.update(memoryview(data)[offsets[0] : offsets[-1]])

    def hexdigests(self) -> list[str]:
        return [self.shape.hexdigest(), self.values.hexdigest()]


class SplitWriter:
    """Append rows to one split file; :meth:`close` returns the :class:`WrittenSplit`.

    :meth:`write` takes an Arrow table or record batch, or a pandas DataFrame. The first write fixes the
    schema: ``text`` and ``label`` as strings first, then the other columns. Every label must be one of
    ``labels`` and no text or label may be null. Rows are buffered into row groups of ``row_group_rows``
    rows or 2 MiB, whichever comes first (so many small writes still make a good file). Not thread-safe.
    """

    def __init__(
        self, directory: Path, name: str, labels: Sequence[str], *, row_group_rows: int = 50_000
    ) -> None:
        self.name = name
        self.path = Path(directory) / f"{name}{SPLIT_SUFFIX}"
        self._labels = list(labels)
        self._counts = dict.fromkeys(self._labels, 0)
        self._writer: Any = None
        self._schema: pa.Schema | None = None
        self._digests: list[_ColumnDigest] = []
        self._rows = 0
        self._row_group_rows = max(1, row_group_rows)
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._pending_bytes = 0

    def write(self, data: pa.Table | pa.RecordBatch | pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        if isinstance(data, pa.RecordBatch):
            table = pa.Table.from_batches([data])
        elif isinstance(data, pa.Table):
            table = data
        else:
            table = pa.Table.from_pandas(data, preserve_index=False)
        if self._schema is None:
            self._schema = _schema_for(table.schema)
            self._digests = [_ColumnDigest() for _ in self._schema.names]
            self._writer = pq.ParquetWriter(self.path, self._schema, compression=_COMPRESSION)
        table = table.select(self._schema.names).cast(self._schema)
        for column in ("text", "label"):
            if table.column(column).null_count:
                raise DataError(f"split {self.name!r}: the {column} column holds nulls")
        counts = pc.value_counts(table.column("label"))
        for entry in counts.to_pylist():
            if entry["values"] not in self._counts:
                raise DataError(
                    f"split {self.name!r} got the label {entry['values']!r}, not one of {self._labels}"
                )
            self._counts[entry["values"]] += entry["counts"]
        for digest, column in zip(self._digests, table.columns, strict=True):
            for array in column.chunks:
                digest.update(array)
        self._rows += table.num_rows
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self._pending_bytes += table.nbytes
        if self._pending_rows >= self._row_group_rows or self._pending_bytes >= _ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._pending:
            table = pa.concat_tables(self._pending)
            self._pending, self._pending_rows, self._pending_bytes = [], 0, 0
            self._writer.write_table(table, row_group_size=self._row_group_rows)

    def close(self) -> WrittenSplit:
        """Finish the file; a split that got no rows is still written, with ``text`` and ``label`` only."""
        import pyarrow as pa

        if self._writer is None:
            self.write(pa.table({"text": pa.array([], pa.string()), "label": pa.array([], pa.string())}))
        assert self._schema is not None
        self._flush()
        self._writer.close()
        header = [[field.name, str(field.type)] for field in self._schema]
        digests = [digest.hexdigests() for digest in self._digests]
        canonical = {"columns": header, "digests": digests, "rows": self._rows}
        sha256 = hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()
        return WrittenSplit(self.name, self.path, self._rows, dict(self._counts), sha256)

    def abort(self) -> None:
        """Close the file without finishing it (on an error); the caller removes the staged directory."""
        if self._writer is not None:
            self._pending = []
            with contextlib.suppress(Exception):  # best effort: the original error is what matters
                self._writer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()


def _schema_for(schema: pa.Schema) -> pa.Schema:
    import pyarrow as pa

    missing = {"text", "label"} - set(schema.names)
    if missing:
        raise DataError(f"split rows need the columns text and label; they lack {sorted(missing)}")
    fields = [pa.field("text", pa.string()), pa.field("label", pa.string())]
    for field in schema:
        if field.name not in ("text", "label"):
            kind = pa.string() if pa.types.is_large_string(field.type) else field.type
            fields.append(pa.field(field.name, kind))
    return pa.schema(fields)


def write_frames(
    directory: Path, frames: Mapping[str, pd.DataFrame], labels: Sequence[str], *, chunk_size: int = 50_000
) -> dict[str, WrittenSplit]:
    """Write in-memory split frames (``name -> frame``) into ``directory``, ``chunk_size`` rows at a time."""
    written = {}
    for name, frame in frames.items():
        with SplitWriter(directory, name, labels, row_group_rows=chunk_size) as writer:
            for start in range(0, len(frame), chunk_size):
                writer.write(frame.iloc[start : start + chunk_size])
            written[name] = writer.close()
    return written


def version_hash(labels: Sequence[str], splits: Mapping[str, WrittenSplit | str]) -> str:
    """The content hash of a version: its labels (in order) and every split's row hash, by split name."""
    digests = {name: s if isinstance(s, str) else s.sha256 for name, s in sorted(splits.items())}
    canonical = json.dumps({"labels": list(labels), "splits": digests}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class ParquetExamples:
    """A split file as :class:`~loopwise.classifiers._base.Examples`, read in record batches.

    Never loads the file whole: each :meth:`iter_chunks` call streams ``text`` and ``label`` batches of at
    most ``chunk_size`` rows from the first row, in file order. Safe to iterate from one thread at a time.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"split file {self.path} is missing; prepare the data set again")
        self._rows: int | None = None

    def __len__(self) -> int:
        if self._rows is None:
            import pyarrow.parquet as pq

            self._rows = int(pq.ParquetFile(self.path).metadata.num_rows)
        return self._rows

    def __repr__(self) -> str:
        return f"ParquetExamples({str(self.path)!r})"

    def iter_chunks(self, chunk_size: int) -> Iterator[tuple[list[str], list[str]]]:
        import pyarrow.parquet as pq

        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        with pq.ParquetFile(self.path, pre_buffer=False) as parquet:  # pre-buffering reads it whole
            for batch in parquet.iter_batches(batch_size=chunk_size, columns=["text", "label"]):
                yield batch.column("text").to_pylist(), batch.column("label").to_pylist()


def read_split(source: Path | str) -> tuple[list[str], list[str]]:
    """All texts and labels of a (small) split file: a local path or ``file://`` URI (a split in the
    artifact store: ``read_split(store.artifacts.local_file(split.uri))``)."""
    from loopwise.storage.artifacts import local_path

    texts: list[str] = []
    labels: list[str] = []
    path = source if isinstance(source, Path) else local_path(source)
    for chunk_texts, chunk_labels in ParquetExamples(path).iter_chunks(65_536):
        texts.extend(chunk_texts)
        labels.extend(chunk_labels)
    return texts, labels


__all__ = ["ParquetExamples", "SplitWriter", "WrittenSplit", "read_split", "version_hash", "write_frames"]
