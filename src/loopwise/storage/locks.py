"""Named locks held across processes and machines that share one database.

On PostgreSQL a lock is a session-level advisory lock (``pg_advisory_lock``) on a connection of its own,
so every machine using the database shares it, and the server frees it when the holder dies. On SQLite
(one machine) it is an ``flock`` on a file beside the database file, freed by the kernel when the holder
dies. An in-memory SQLite database is private to its process: there is nothing to lock.
"""

from __future__ import annotations

import fcntl
import os
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from loopwise._private import open_private
from loopwise.errors import ConfigurationError

#: the first key of loopwise's two-key advisory locks ("lw" in ASCII): keeps clear of other applications
_NAMESPACE = 0x6C77


@contextmanager
def named_lock(engine: Engine, name: str) -> Iterator[None]:
    """Hold the lock ``name`` (any string) for the ``with`` block; blocks until it is free."""
    if engine.dialect.name == "postgresql":
        keys = {"ns": _NAMESPACE, "key": zlib.crc32(name.encode("utf-8")) - 2**31}  # signed 32-bit ints
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:ns, :key)"), keys)
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:ns, :key)"), keys)
                connection.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    path = Path(database).with_name(f"{Path(database).name}.{safe}.lock")
    with open_private(path, "ab") as handle:  # beside the database, private like it
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def only_server(engine: Engine) -> Iterator[None]:
    """Hold, for the ``with`` block, the right to be the one server process on a SQLite database: an
    exclusive ``flock`` on ``loopwise.db.server.lock`` beside it, taken without waiting (the kernel frees
    it when the process dies). A second server is refused with :class:`ConfigurationError`: SQLite is
    the embedded database of one process, and replicas need PostgreSQL. PostgreSQL (and an in-memory
    database) take nothing: replicas share the work through duty leases (``storage.leases``)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    path = Path(database).with_name(f"{Path(database).name}.server.lock")
    with open_private(path, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().decode("ascii", "replace").strip() or "unknown"
            raise ConfigurationError(
                f"another loopwise server (pid {pid}) already serves the SQLite database {database}: "
                "SQLite allows one server; stop that one, or run several on PostgreSQL "
                "(LOOPWISE_DATABASE_URL=postgresql+psycopg://USER@HOST:5432/DB)"
            ) from None
        try:
            handle.truncate(0)
            handle.write(str(os.getpid()).encode("ascii"))
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
