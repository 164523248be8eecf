"""Rows for any reflected schema: values made from the column types, for the migration survival tests.

``fill(engine)`` reflects the database as it is, inserts two rows into every table (parents before
children, each child row pointing at a parent row of its own) and returns them; ``missing(engine, rows)``
reflects the database again (after an upgrade) and returns every remembered row that is no longer there
with the same values in the columns that still exist. Nothing here knows loopwise's tables: a new
migration is covered without editing it.

The first row of a table sets every column to a value at the edge of its type (strings as long as the
column allows, integers near the top of their range, floats exact only as doubles, datetimes to the
microsecond); the second leaves the nullable columns NULL. Every value is unique within its column (so
unique constraints hold), strings carry non-ASCII text and newlines, and enums and ``col IN (...)``
checks take one of their values.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from loopwise.storage import migrate

#: Alembic's version tables (loopwise's own, and Optuna's): not data
VERSION_TABLES = frozenset({"loopwise_alembic_version", "alembic_version"})
ROWS_PER_TABLE = 2
_EPOCH = datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
_IN_CHECK = re.compile(r"^\s*\(?\s*\"?(\w+)\"?\s+IN\s*\((.*)\)\s*\)?\s*$", re.IGNORECASE | re.DOTALL)


@dataclass
class Remembered:
    """The rows inserted into one database, by table, as the values that were written."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def count(self) -> int:
        return sum(len(rows) for rows in self.rows.values())


def data_tables(engine: Engine) -> sa.MetaData:
    """The database's tables as they are now, without Alembic's version tables."""
    metadata = sa.MetaData()
    metadata.reflect(bind=engine, only=lambda name, _meta: name not in VERSION_TABLES)
    return metadata


def fill(engine: Engine) -> Remembered:
    """Insert ``ROWS_PER_TABLE`` rows into every table of the database and return them."""
    metadata = data_tables(engine)
    remembered = Remembered()
    counter = _Counter()
    with engine.begin() as connection:
        for table in metadata.sorted_tables:
            rows = [_row(table, i, remembered, counter) for i in range(ROWS_PER_TABLE)]
            for row in rows:  # one by one: a row may point at itself
                connection.execute(table.insert().values(**row))
            remembered.rows[table.name] = rows
    return remembered


def missing(
    engine: Engine, remembered: Remembered, changed: Mapping[str, Collection[str]] | None = None
) -> list[str]:
    """Every remembered row that is gone or changed, described; empty when all survived.

    ``changed`` names what may change on purpose: table -> its columns, or no columns for the whole table.
    """
    changed = changed or {}
    metadata = data_tables(engine)
    problems = []
    with engine.connect() as connection:
        for name, rows in remembered.rows.items():
            if name in changed and not changed[name]:
                continue
            if name not in metadata.tables:
                problems.append(f"table {name} is gone, with its {len(rows)} rows")
                continue
            table = metadata.tables[name]
            kept = [column for column in rows[0] if column in table.c and column not in changed.get(name, ())]
            found = [
                tuple(_normal(row[column]) for column in kept)
                for row in connection.execute(sa.select(*(table.c[column] for column in kept))).mappings()
            ]
            for row in rows:
                wanted = tuple(_normal(row[column]) for column in kept)
                if wanted in found:
                    found.remove(wanted)
                else:
                    near = [dict(zip(kept, other, strict=True)) for other in found]
                    problems.append(f"{name}: row {dict(zip(kept, wanted, strict=True))} not found in {near}")
    return problems


class _Counter:
    def __init__(self) -> None:
        self._next = 1000

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        self._next += 1
        return self._next


def _row(table: sa.Table, i: int, remembered: Remembered, counter: _Counter) -> dict[str, Any]:
    row: dict[str, Any] = {}
    pointers = _foreign_keys(table)
    sparse = i % 2 == 1
    for column in table.columns:
        if column.name in pointers:
            continue
        if sparse and column.nullable and not column.primary_key:
            row[column.name] = None
        else:
            row[column.name] = _value(table, column, i, next(counter))
    for constraint in table.foreign_key_constraints:
        local = [element.parent.name for element in constraint.elements]
        remote = [element.column.name for element in constraint.elements]
        nullable = all(table.c[name].nullable and not table.c[name].primary_key for name in local)
        if sparse and nullable:
            row.update(dict.fromkeys(local, None))
            continue
        parent_name = constraint.elements[0].column.table.name
        # a table that points at itself points at this very row
        parent = [row] if parent_name == table.name else remembered.rows[parent_name]
        target = parent[i % len(parent)]
        row.update({name: target[other] for name, other in zip(local, remote, strict=True)})
    return row


def _foreign_keys(table: sa.Table) -> set[str]:
    return {
        element.parent.name for constraint in table.foreign_key_constraints for element in constraint.elements
    }


def _value(table: sa.Table, column: sa.Column[Any], i: int, n: int) -> Any:
    choices = _choices(table, column)
    if choices:
        return choices[i % len(choices)]
    kind = column.type
    try:
        python = kind.python_type
    except NotImplementedError:
        python = object
    if isinstance(kind, sa.JSON) or python in (dict, list):
        return {"n": n, "list": [1, 2.5, "ü", None, True], "nested": {"text": f"naïve {n}", "empty": {}}}
    if python is bool:
        return i % 2 == 0
    if python is int:
        # the full row's integers are near the top of their type, so a narrower type cannot keep them
        if i % 2 == 1 or isinstance(kind, sa.SmallInteger):
            return n
        return (2**62 if isinstance(kind, sa.BigInteger) else 2**31 - 100_000) + n
    if python is float:
        return n + 0.1  # exact as a double, not as a single
    if python is Decimal:
        return Decimal(f"{n}.25")
    if python is datetime:
        moment = _EPOCH + timedelta(days=n, microseconds=n)
        return moment if getattr(kind, "timezone", False) else moment.replace(tzinfo=None)
    if python is date:
        return (_EPOCH + timedelta(days=n)).date()
    if python is time:
        return time(n % 24, n % 60, n % 60, n)
    if python is bytes:
        return f"bytes {n}".encode() + b"\x00\xff"
    if python is uuid.UUID:
        return uuid.UUID(int=n)
    if python is str or isinstance(kind, sa.String):
        return _text(column, n, full=i % 2 == 0)
    raise TypeError(f"no sample value for {table.name}.{column.name} of type {kind!r}: teach schema_rows")


def _text(column: sa.Column[Any], n: int, full: bool) -> str:
    """A string unique by ``n``; the full row's fills the column's length, so a shorter one cannot keep it."""
    length = getattr(column.type, "length", None)
    text = f"{n}-{column.name}-é\u00fc\u4e2d\nline two 'quoted' \"double\""
    if length is None:
        return text * 3 if full else text
    if len(str(n)) > length:
        return str(n)[-length:]
    if full:
        return (text * (length // len(text) + 1))[:length]
    return text[:length]


def _choices(table: sa.Table, column: sa.Column[Any]) -> list[str]:
    if isinstance(column.type, sa.Enum) and column.type.enums:
        return list(column.type.enums)
    for constraint in table.constraints:
        if isinstance(constraint, sa.CheckConstraint):
            match = _IN_CHECK.match(str(constraint.sqltext))
            if match and match.group(1) == column.name:
                return re.findall(r"'((?:[^']|'')*)'", match.group(2))
    return []


def _normal(value: Any) -> Any:
    """Values as both databases give them back: datetimes as naive UTC, JSON as parsed."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, dict):
        return tuple(sorted((key, _normal(item)) for key, item in value.items()))
    if isinstance(value, list):
        return tuple(_normal(item) for item in value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def declared_changes(after: str) -> dict[str, set[str]]:
    """What the migrations after revision ``after`` declare they change on purpose (``changes_data``)."""
    declared: dict[str, set[str]] = {}
    for script in ScriptDirectory(str(migrate.MIGRATIONS)).iterate_revisions("heads", after):
        if script.revision == after:
            continue
        for table, columns in getattr(script.module, "changes_data", {}).items():
            whole = (table in declared and not declared[table]) or not columns
            declared[table] = set() if whole else declared.get(table, set()) | set(columns)
    return declared
