"""Engines for the metadata database: SQLite (WAL) by default, PostgreSQL through psycopg 3."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from loopwise._private import FILE_MODE, private_dir, private_file
from loopwise.errors import ConfigurationError


def build_engine(url: str) -> Engine:
    """Create an engine for ``url``; for SQLite, create the database private (:func:`_private_database`)
    and turn on WAL and foreign keys."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(
            f"LOOPWISE_DATABASE_URL {url!r} is not a database URL; "
            "use sqlite:///PATH or postgresql+psycopg://USER@HOST:5432/DB"
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            _private_database(Path(parsed.database).expanduser())
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite defers BEGIN, and a deferred transaction that later writes fails at once with "database is
        # locked" when another writer got there first (SQLite skips the busy handler to avoid deadlock).
        # BEGIN IMMEDIATE takes the write lock up front, so concurrent units of work queue on busy_timeout.
        # Readers are not blocked in WAL mode; units of work are kept short.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.get_driver_name() not in ("psycopg", ""):
            raise ConfigurationError(f"use the psycopg 3 driver: postgresql+psycopg://..., not {url!r}")
        if parsed.get_driver_name() == "":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True)
    raise ConfigurationError(
        f"unsupported database {parsed.get_backend_name()!r} in {url!r}: "
        "loopwise supports SQLite and PostgreSQL"
    )


def _private_database(path: Path) -> None:
    """The SQLite database file (and its missing folders) made before SQLite opens it: the file 0600, new
    folders 0700. SQLite gives the ``-wal`` and ``-shm`` files it makes the database file's mode, and
    loopwise makes its lock files 0600; the files beside it an older loopwise left (``loopwise.db-wal``,
    ``loopwise.db.migrate.lock``) are set to 0600 here."""
    private_dir(path.parent, repair=False)
    private_file(path)
    for companion in path.parent.glob(glob.escape(path.name) + "?*"):
        if companion.is_file() and not companion.is_symlink():
            os.chmod(companion, FILE_MODE)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Turn off pysqlite's implicit transactions; the "begin" listener above starts them.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
