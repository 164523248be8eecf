"""Chunked readers for CSV, JSON lines and Parquet, and the checks every imported row goes through.

Readers yield :class:`Chunk` objects: an Arrow table of at most ``chunk_size`` rows holding only the
requested columns as non-null strings (a missing value is ``""``), and the 0-based data row number of its
first row. :func:`locate` turns a row number into a place a person can find (``line 17`` in a text file,
``row 17`` in Parquet). Error messages name the file, that place and the field, and say what to do.

Memory stays bounded by the chunk: CSV goes through Arrow's streaming reader in blocks, JSON lines are
parsed a line at a time, Parquet is read a record batch at a time.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from loopwise.errors import DataError, DataFormatError

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("csv", "jsonl", "parquet")
_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
_BLOCK = 1 << 20
#: Bytes the CSV reader parses at once (Arrow keeps a few dozen blocks in flight); grown for longer records.
_CSV_BLOCK = 256 << 10
_CSV_MAX_BLOCK = 256 << 20
DEFAULT_CHUNK_SIZE = 50_000


@dataclass(frozen=True)
class Chunk:
    """Consecutive rows of a file: the requested columns as strings, and the first row's 0-based number."""

    table: pa.Table
    first_row: int

    def __len__(self) -> int:
        return self.table.num_rows

    def to_pandas(self) -> pd.DataFrame:
        """The rows as a DataFrame indexed by their data row numbers in the file."""
        import pandas as pd

        frame = self.table.to_pandas()
        frame.index = pd.RangeIndex(self.first_row, self.first_row + len(frame))
        return frame


def detect_format(path: Path, format: str | None = None) -> str:
    """``format`` if given (checked), else the format its suffix names."""
    if format is not None:
        if format not in FORMATS:
            raise DataError(f"unknown format {format!r}; use one of: {', '.join(FORMATS)}")
        return format
    found = _SUFFIXES.get(Path(path).suffix.lower())
    if found is None:
        raise DataError(
            f"cannot tell the format of {path} from its suffix; name it with --format "
            f"({', '.join(FORMATS)}) or rename the file to .csv, .jsonl or .parquet"
        )
    return found


def check_utf8(path: Path) -> str:
    """Raise :class:`DataFormatError` naming the line of the first bytes that are not UTF-8.

    Streams the file once in blocks; returns its hex sha256 as a by-product (the source's fingerprint).
    """
    digest = hashlib.sha256()
    lines_before = 0
    carry = b""
    with open(path, "rb") as handle:
        while True:
            block = handle.read(_BLOCK)
            digest.update(block)
            data = carry + block
            # UTF-8 never uses the byte 0x0A inside a multi-byte sequence, so whole lines decode on their own.
            cut = data.rfind(b"\n") + 1 if block else len(data)
            complete, carry = data[:cut], data[cut:]
            try:
                codecs.utf_8_decode(complete, "strict", True)
            except UnicodeDecodeError as exc:
                line = lines_before + complete.count(b"\n", 0, exc.start) + 1
                bad = complete[exc.start : exc.start + 4]
                raise DataFormatError(
                    f"{path}, line {line}: bytes {bad!r} are not UTF-8 ({exc.reason}); "
                    "convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8) and import it again"
                ) from None
            lines_before += complete.count(b"\n")
            if not block:
                return digest.hexdigest()


def columns_of(path: Path, format: str) -> list[str]:
    """The column names: the CSV header, the Parquet schema, or the keys of the first JSON record."""
    if format == "csv":
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
            for header in csv.reader(handle):
                if header:
                    return header
        raise DataFormatError(f"{path} is empty: it has no header line")
    if format == "parquet":
        return list(pq.ParquetFile(path).schema_arrow.names)
    for _line, record in _json_records(path):
        return list(record)
    return []


def require_columns(path: Path, available: Sequence[str], required: Sequence[str]) -> None:
    """Raise :class:`DataFormatError` naming the first missing column and the columns that exist."""
    for column in required:
        if column not in available:
            raise DataFormatError(
                f"{path} has no column {column!r}; its columns are: "
                f"{', '.join(map(repr, available)) or 'none'}. "
                "Name the right ones with --text-column and --label-column."
            )


def read_chunks(
    path: Path, columns: Sequence[str], *, format: str | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Iterator[Chunk]:
    """Yield the ``columns`` of ``path`` as strings, at most ``chunk_size`` rows at a time.

    Checks that the columns exist first. Missing values become ``""``; numbers become their decimal text
    (``1`` and ``1.0`` -> ``"1"``).
    """
    path = Path(path)
    format = detect_format(path, format)
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    columns = list(dict.fromkeys(columns))
    require_columns(path, columns_of(path, format), columns)
    if format == "csv":
        batches: Iterator[pa.RecordBatch] = _csv_batches(path, columns)
    elif format == "jsonl":
        batches = _jsonl_batches(path, columns, chunk_size)
    else:
        batches = _parquet_batches(path, columns, chunk_size)
    texts = (
        pa.RecordBatch.from_arrays([_as_text(path, n, batch.column(n)) for n in columns], names=columns)
        for batch in batches
    )
    first = 0
    for table in _rebatch(texts, chunk_size):
        yield Chunk(table, first)
        first += table.num_rows


def locate(path: Path, format: str, row: int) -> str:
    """Where data row ``row`` (0-based) lies, for a message: ``line N`` in CSV/JSON lines, else ``row N``.

    Rescans text files (call it on the error path only); the line is where the record starts.
    """
    if format == "csv":
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
            reader = csv.reader(handle)
            header_seen, index, previous = False, 0, 0
            for record in reader:
                if record:
                    if not header_seen:
                        header_seen = True
                    elif index == row:
                        return f"line {previous + 1}"
                    else:
                        index += 1
                previous = reader.line_num
    elif format == "jsonl":
        for index, (line, _record) in enumerate(_json_records(path)):
            if index == row:
                return f"line {line}"
    return f"row {row + 1}"


def validate_chunk(
    chunk: Chunk,
    *,
    path: Path,
    format: str,
    text_column: str,
    label_column: str,
    labels: Sequence[str] | None = None,
    skip_empty: bool = False,
) -> tuple[pa.Table, int]:
    """The chunk's rows as a table with columns ``text`` and ``label``, and how many rows were dropped.

    A row whose text or label is empty (or only whitespace) is dropped when ``skip_empty``, else raises
    :class:`DataFormatError` naming the file, line and field. A label outside ``labels`` (when given) raises,
    naming the label and the known ones.
    """
    text = chunk.table.column(text_column)
    label = chunk.table.column(label_column)
    empty_text = _blank(text)
    empty = empty_text | _blank(label)
    dropped = int(empty.sum())
    if dropped:
        if not skip_empty:
            at = int(empty.argmax())
            field = text_column if empty_text[at] else label_column
            raise DataFormatError(
                f"{path}, {locate(path, format, chunk.first_row + at)}: field {field!r} is empty; fill it "
                "in, or drop such rows with --skip-empty"
            )
        keep = pa.array(~empty)
        text, label = text.filter(keep), label.filter(keep)
        positions = np.flatnonzero(~empty)
    else:
        positions = None
    if labels is not None:
        unknown = np.asarray(pc.invert(pc.is_in(label, value_set=pa.array(list(labels), pa.string()))))
        if unknown.any():
            at = int(unknown.argmax())
            row = chunk.first_row + int(positions[at] if positions is not None else at)
            raise DataFormatError(
                f"{path}, {locate(path, format, row)}: unknown label {label[at].as_py()!r} in field "
                f"{label_column!r}; the known labels are {', '.join(map(repr, labels))}. Fix the row or add "
                "the label to --labels."
            )
    return pa.table([text, label], names=["text", "label"]), dropped


def label_text(value: Any) -> str:
    """A value as label text: ``1`` and ``1.0`` -> ``"1"``, True -> ``"true"``; None and NaN -> ``""``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _blank(array: pa.Array) -> np.ndarray:
    """True where a (non-null) string is empty or only whitespace; no copy of the strings is made."""
    return np.asarray(pc.or_(pc.equal(array, ""), pc.utf8_is_space(array)))


def _rebatch(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.Table]:
    """Tables of exactly ``size`` rows (the last one shorter), made of slices of the incoming batches."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        while batch.num_rows:
            take = min(size - count, batch.num_rows)
            pending.append(batch.slice(0, take))
            batch = batch.slice(take)
            count += take
            if count == size:
                yield pa.Table.from_batches(pending)
                pending, count = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def _as_text(path: Path, name: str, array: pa.Array) -> pa.Array:
    """A column as a non-null string array (see :func:`read_chunks`)."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        array, kind = array.dictionary_decode(), kind.value_type
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        raise DataFormatError(f"{path}: column {name!r} holds bytes, not text; store it as UTF-8 strings")
    if pa.types.is_floating(kind):
        values = array.to_numpy(zero_copy_only=False)  # nulls become NaN here
        missing = np.isnan(values)
        if int(missing.sum()) == array.null_count and np.all(np.mod(values[~missing], 1) == 0):
            array = pc.cast(array, pa.int64(), safe=False)
    if not pa.types.is_string(array.type):
        try:
            array = pc.cast(array, pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataFormatError(f"{path}: column {name!r} ({kind}) cannot be read as text: {exc}") from None
    return array.fill_null("") if array.null_count else array


def _csv_batches(path: Path, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """Arrow's streaming CSV reader; when a record is longer than a block, read again with larger blocks,
    skipping the rows already yielded."""
    block, emitted = _CSV_BLOCK, 0
    while True:
        seen = 0
        try:
            for batch in _csv_blocks(path, columns, block):
                if seen + batch.num_rows > emitted:
                    piece = batch.slice(max(emitted - seen, 0))
                    emitted += piece.num_rows
                    yield piece
                seen += batch.num_rows
            return
        except _RecordTooLong:
            if block >= _CSV_MAX_BLOCK:
                raise DataFormatError(
                    f"{path} has a record longer than {_CSV_MAX_BLOCK >> 20} MiB; is it really CSV?"
                ) from None
            block *= 4


class _RecordTooLong(Exception):
    pass


def _csv_blocks(path: Path, columns: list[str], block: int) -> Iterator[pa.RecordBatch]:
    invalid: list[Any] = []

    def on_invalid(row: Any) -> str:
        invalid.append(row)
        return "error"

    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=block, use_threads=False, encoding="utf8"),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                include_columns=columns,
                column_types=dict.fromkeys(columns, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            yield batch
    except pa.ArrowInvalid as exc:
        if "straddl" in str(exc):
            raise _RecordTooLong from None
        if invalid:
            row = invalid[0]
            where = f"line {row.number}" if row.number is not None else f"the record {row.text[:80]!r}"
            raise DataFormatError(
                f"{path}, {where}: {row.actual_columns} fields where the header has {row.expected_columns}; "
                "quote fields that contain commas"
            ) from None
        raise DataFormatError(f"{path} is not well-formed CSV: {exc}") from None


def _json_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each non-blank line."""
    with open(path, encoding="utf-8-sig") as handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataFormatError(f"{path}, line {number}: not valid JSON ({exc.msg})") from None
                if not isinstance(record, dict):
                    raise DataFormatError(
                        f"{path}, line {number}: a JSON lines record must be an object, not "
                        f"{type(record).__name__}"
                    )
                yield number, record
        except UnicodeDecodeError as exc:
            raise DataFormatError(f"{path} is not UTF-8 ({exc}); convert it to UTF-8") from None


def _jsonl_batches(path: Path, columns: list[str], chunk_size: int) -> Iterator[pa.RecordBatch]:
    values: dict[str, list[str]] = {column: [] for column in columns}
    for number, record in _json_records(path):
        for column in columns:
            if column not in record:
                raise DataFormatError(
                    f"{path}, line {number}: no field {column!r}; this record has: "
                    f"{', '.join(map(repr, record)) or 'no fields'}"
                )
            value = record[column]
            values[column].append(value if isinstance(value, str) else label_text(value))
        if len(values[columns[0]]) == chunk_size:
            yield pa.RecordBatch.from_pydict(values, schema=_string_schema(columns))
            values = {column: [] for column in columns}
    if values[columns[0]]:
        yield pa.RecordBatch.from_pydict(values, schema=_string_schema(columns))


def _parquet_batches(path: Path, columns: list[str], chunk_size: int) -> Iterator[pa.RecordBatch]:
    with pq.ParquetFile(path, pre_buffer=False) as parquet:  # pre-buffering reads the whole file
        yield from parquet.iter_batches(batch_size=chunk_size, columns=columns, use_threads=False)


def _string_schema(columns: Sequence[str]) -> pa.Schema:
    return pa.schema([pa.field(column, pa.string()) for column in columns])


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "FORMATS",
    "Chunk",
    "check_utf8",
    "columns_of",
    "detect_format",
    "label_text",
    "locate",
    "read_chunks",
    "require_columns",
    "validate_chunk",
]
