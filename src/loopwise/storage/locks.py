"""Named locks held across processes and machines that share one database.

On PostgreSQL a lock is a session-level advisory lock (``pg_advisory_lock``) on a connection of its own,
so every machine using the database shares it, and the server frees it when the holder dies. On SQLite
(one machine) it is an ``flock`` on a file beside the database file, freed by the kernel when the holder
dies. An in-memory SQLite database is private to its process: there is nothing to lock.
"""

from __future__ import annotations

import fcntl
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from loopwise._private import open_private

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
