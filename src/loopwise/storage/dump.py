"""A portable logical dump of database tables: each table's rows as gzipped JSON lines, read from one
snapshot of the database and loaded, in foreign-key order, into SQLite or PostgreSQL, whichever wrote it.

A table's file holds one JSON array a row, its values in the order of ``TableDump.columns`` and the rows in
primary-key order (so a row that points at an earlier row of its own table, a model version at its
parent, loads after it). Values are written as JSON holds them: strings, numbers (floats exactly, NaN and
infinities as Python's ``json`` writes them), booleans, null; timestamps as ISO 8601 (with their offset
when they have one); bytes as base64; a JSON column's value wrapped in a one-element list, so that SQL
NULL (``null``) and a JSON ``null`` (``[null]``) stay apart. Loading turns each value back by the type of
the target table's column, so the target's tables may come from reflection (nothing here knows loopwise's
tables).
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, event

from loopwise._private import open_private
from loopwise.errors import ChecksumError

#: rows read or inserted at a time
BATCH = 1000


@dataclass(frozen=True)
class TableDump:
    """One table's file: its name, the file (relative to the dump's folder), the columns in the order
    each row lists them, how many rows, and the file's sha256."""

    name: str
    file: str
    columns: tuple[str, ...]
    rows: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file,
            "columns": list(self.columns),
            "rows": self.rows,
            "sha256": self.sha256,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableDump:
        return cls(
            str(data["name"]),
            str(data["file"]),
            tuple(str(c) for c in data["columns"]),
            int(data["rows"]),
            str(data["sha256"]),
        )


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only connection whose every read sees the database at one moment, while others write on:
    on PostgreSQL a ``REPEATABLE READ READ ONLY`` transaction; on SQLite a deferred read transaction (WAL
    keeps its snapshot from the first read; the engine loopwise writes through begins ``IMMEDIATE``,
    which would hold the write lock for the whole dump, so a plain engine reads)."""
    if engine.dialect.name == "sqlite":
        reader = sa.create_engine(engine.url, connect_args={"timeout": 30}, poolclass=sa.pool.NullPool)

        def deferred(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # pysqlite's own BEGINs off: the listener below begins

        event.listen(reader, "connect", deferred)
        event.listen(reader, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        try:
            with reader.connect() as connection:
                yield connection
                connection.rollback()
        finally:
            reader.dispose()
        return
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection:
        connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        yield connection
        connection.rollback()


def dump_table(
    connection: Connection,
    table: sa.Table,
    folder: Path,
    file: str,
    *,
    strings: Callable[[str], None] | None = None,
) -> TableDump:
    """Write every row of ``table`` to ``folder / file`` (created 0600) and describe the file;
    ``strings`` sees every string value written (inside JSON values too)."""
    columns = list(table.columns)
    json_columns = {i for i, c in enumerate(columns) if _is_json(c.type)}
    # a JSON column reads SQL NULL and a JSON null both as None: its IS NULL tells them apart
    nulls = [columns[i].is_(None) for i in sorted(json_columns)]
    query = sa.select(*columns, *nulls).order_by(*table.primary_key.columns)
    digest = hashlib.sha256()
    count = 0
    path = folder / file
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        open_private(path, "wb") as raw,
        gzip.GzipFile(fileobj=_Hashing(raw, digest), mode="wb", mtime=0) as packed,
    ):
        for row in connection.execution_options(yield_per=BATCH).execute(query):
            is_null = dict(zip(sorted(json_columns), row[len(columns) :], strict=True))
            values = [
                (None if is_null[i] else [_encode(v)]) if i in json_columns else _encode(v)
                for i, v in enumerate(row[: len(columns)])
            ]
            if strings is not None:
                _visit(values, strings)
            packed.write(json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode())
            packed.write(b"\n")
            count += 1
    return TableDump(table.name, file, tuple(c.name for c in columns), count, digest.hexdigest())


def check_file(folder: Path, dump: TableDump) -> None:
    """:class:`ChecksumError` unless ``dump``'s file is there with its recorded sha256."""
    path = folder / dump.file
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise ChecksumError(f"the rows of table {dump.name} ({path}) cannot be read: {exc}") from None
    if digest.hexdigest() != dump.sha256:
        raise ChecksumError(f"the rows of table {dump.name} ({path}) are not the file the backup wrote")


def load_table(
    connection: Connection, table: sa.Table, folder: Path, dump: TableDump, rewrite: Callable[[str], str]
) -> int:
    """Insert the rows of ``dump`` into ``table`` (checked against the file's sha256 first), each string
    value through ``rewrite``; returns how many. :class:`ChecksumError` for a damaged file or columns
    the table lacks."""
    check_file(folder, dump)
    unknown = [c for c in dump.columns if c not in table.columns]
    if unknown:
        raise ChecksumError(f"table {dump.name} here has no column {', '.join(unknown)} of the backup's rows")
    decoders = [_decoder(table.columns[c], rewrite) for c in dump.columns]
    count = 0
    batch: list[dict[str, Any]] = []
    with gzip.open(folder / dump.file, "rt", encoding="utf-8") as lines:
        for line in lines:
            values = json.loads(line)
            batch.append({c: d(v) for c, d, v in zip(dump.columns, decoders, values, strict=True)})
            if len(batch) >= BATCH:
                count += _insert(connection, table, batch)
                batch = []
    count += _insert(connection, table, batch)
    if count != dump.rows:
        raise ChecksumError(f"table {dump.name}: {count} rows read, the backup recorded {dump.rows}")
    return count


def reset_sequences(connection: Connection, tables: list[sa.Table]) -> None:
    """On PostgreSQL, move each serial column's sequence past the largest value loaded, so the next
    insert does not collide with a restored row; nothing elsewhere (SQLite takes max + 1 itself)."""
    if connection.dialect.name != "postgresql":
        return
    quote = connection.dialect.identifier_preparer.quote
    for table in tables:
        for column in table.columns:
            if not isinstance(column.type, sa.Integer):
                continue
            sequence = connection.execute(
                sa.text("SELECT pg_get_serial_sequence(:table, :column)"),
                {"table": quote(table.name), "column": column.name},
            ).scalar()
            if sequence is None:
                continue
            name, col = quote(table.name), quote(column.name)
            connection.execute(
                sa.text(
                    f"SELECT setval(:sequence, COALESCE((SELECT MAX({col}) FROM {name}), 1), "
                    f"(SELECT MAX({col}) FROM {name}) IS NOT NULL)"
                ),
                {"sequence": sequence},
            )


def tables_with_rows(connection: Connection, names: list[str]) -> list[str]:
    """Those of the tables ``names`` that hold a row."""
    quote = connection.dialect.identifier_preparer.quote
    return [
        name
        for name in names
        if connection.execute(sa.text(f"SELECT 1 FROM {quote(name)} LIMIT 1")).first() is not None
    ]


class _Hashing:
    """A binary file that hashes what is written through it."""

    def __init__(self, raw: Any, digest: Any) -> None:
        self.raw, self.digest = raw, digest

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return int(self.raw.write(data))

    def flush(self) -> None:
        self.raw.flush()


def _insert(connection: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> int:
    if rows:
        connection.execute(table.insert(), rows)
    return len(rows)


def _base_type(type_: sa.types.TypeEngine[Any]) -> sa.types.TypeEngine[Any]:
    return type_.impl_instance if isinstance(type_, sa.types.TypeDecorator) else type_


def _is_json(type_: sa.types.TypeEngine[Any]) -> bool:
    return isinstance(_base_type(type_), sa.JSON)


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _visit(value: Any, seen: Callable[[str], None]) -> None:
    if isinstance(value, str):
        seen(value)
    elif isinstance(value, list):
        for item in value:
            _visit(item, seen)
    elif isinstance(value, dict):
        for item in value.values():
            _visit(item, seen)


def _rewritten(value: Any, rewrite: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return rewrite(value)
    if isinstance(value, list):
        return [_rewritten(v, rewrite) for v in value]
    if isinstance(value, dict):
        return {k: _rewritten(v, rewrite) for k, v in value.items()}
    return value


def _decoder(column: sa.Column[Any], rewrite: Callable[[str], str]) -> Callable[[Any], Any]:
    """How a value of the dump becomes a value for ``column``."""
    kind = _base_type(column.type)
    if isinstance(kind, sa.JSON):
        return lambda v: (
            sa.null() if v is None else sa.JSON.NULL if v[0] is None else _rewritten(v[0], rewrite)
        )
    if isinstance(kind, sa.DateTime):
        return lambda v: None if v is None else dt.datetime.fromisoformat(v)
    if isinstance(kind, sa.Date):
        return lambda v: None if v is None else dt.date.fromisoformat(v)
    if isinstance(kind, sa.Time):
        return lambda v: None if v is None else dt.time.fromisoformat(v)
    if isinstance(kind, sa.LargeBinary):
        return lambda v: None if v is None else base64.b64decode(v)
    if isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float) and kind.asdecimal:
        return lambda v: None if v is None else Decimal(v)
    return lambda v: rewrite(v) if isinstance(v, str) else v
