"""Alembic environment: runs against the engine loopwise hands over in ``config.attributes``.

One upgrade is one transaction, on SQLite too (its DDL is transactional): a failed migration leaves the
database at the revision it had.

On SQLite, foreign keys are off while the migrations run: batch mode rebuilds a table by copying it and
dropping the original, and with foreign keys on that drop deletes (``ON DELETE CASCADE``), nulls
(``SET NULL``) or refuses to leave the rows of every table that points at it. Before the commit,
``PRAGMA foreign_key_check`` must find no row pointing nowhere, or the whole upgrade rolls back; a
migration that deletes parent rows deletes their children itself.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from loopwise.errors import MigrationError
from loopwise.storage.migrate import VERSION_TABLE
from loopwise.storage.tables import Base

engine = context.config.attributes["engine"]


def _set_sqlite_foreign_keys(connection: Connection, on: bool) -> None:
    # a PRAGMA foreign_keys inside a transaction does nothing: run it on the driver's connection, which
    # is in autocommit (the engine starts transactions itself, see storage.engine)
    connection.connection.driver_connection.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")  # type: ignore[union-attr]


def _check_foreign_keys(connection: Connection) -> None:
    dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if dangling:
        shown = ", ".join(f"{table} row {rowid} -> {parent}" for table, rowid, parent, _fk in dangling[:5])
        raise MigrationError(
            f"the migration left {len(dangling)} rows pointing at rows that do not exist ({shown}); "
            "nothing was changed: report this to loopwise's maintainers"
        )


with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        _set_sqlite_foreign_keys(connection, on=False)
    try:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            version_table=VERSION_TABLE,
            render_as_batch=sqlite,
            # SQLite runs DDL in transactions too (the engine starts them itself): one transaction for the
            # whole upgrade, so a failed migration leaves the database as it was, not half-way
            transactional_ddl=True,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                _check_foreign_keys(connection)
        connection.commit()
    finally:
        if sqlite:
            connection.rollback()
            _set_sqlite_foreign_keys(connection, on=True)
