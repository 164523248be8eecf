"""Backups of a SQLite database file, taken before an upgrade changes its schema."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from loopwise.errors import MigrationError


def sqlite_file(engine: Engine) -> Path | None:
    """The database file behind ``engine``, or None for PostgreSQL, in-memory SQLite or a missing file."""
    database = engine.url.database
    if (
        engine.dialect.name != "sqlite"
        or not database
        or database == ":memory:"
        or database.startswith("file:")
    ):
        return None
    path = Path(database).expanduser()
    return path if path.is_file() else None


def backup_sqlite(engine: Engine, revision: str) -> Path | None:
    """Copy the SQLite database of ``engine`` next to it as ``NAME.bak-REVISION-YYYYMMDDTHHMMSSZ`` (UTC).

    The copy is made with SQLite's online backup API, so it is consistent even while other connections
    write and with pages still in the write-ahead log; it is a single file (rollback journal mode), readable
    and writable by its owner only (0600). Returns its path, or None when there is no file to back up
    (PostgreSQL, in-memory SQLite, a database not created yet). Raises :class:`MigrationError` when the
    copy cannot be made; a half-written copy is removed.
    """
    source_path = sqlite_file(engine)
    if source_path is None:
        return None
    target = _new_file(source_path, revision)
    try:
        with engine.connect() as connection:
            source = connection.connection.driver_connection
            assert isinstance(source, sqlite3.Connection)
            copy = sqlite3.connect(target)
            try:
                source.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")
            finally:
                copy.close()
    except (OSError, sqlite3.Error) as exc:
        target.unlink(missing_ok=True)
        raise MigrationError(
            f"could not back up {source_path} to {target} before upgrading it: {exc}; "
            "make room (the copy is as large as the database) or make the folder writable, then retry"
        ) from exc
    return target


def _new_file(source: Path, revision: str) -> Path:
    """Create the backup file empty with mode 0600, so the copy is never readable by others."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for attempt in range(100):
        suffix = f"-{attempt}" if attempt else ""
        target = source.with_name(f"{source.name}.bak-{revision}-{stamp}{suffix}")
        try:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            continue
        except OSError as exc:
            raise MigrationError(
                f"could not create the backup {target} before upgrading {source}: {exc}; "
                "make the folder writable, then retry"
            ) from exc
        os.chmod(target, 0o600)
        return target
    raise MigrationError(
        f"too many backups of {source} named {source.name}.bak-{revision}-{stamp}: remove some"
    )
