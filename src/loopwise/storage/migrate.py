"""Alembic migrations shipped in the package, applied on first use and by ``loopwise db upgrade``.

Before an upgrade changes a SQLite database that has a schema already, a copy of the file is kept beside
it (see :mod:`loopwise.storage.backup`). On PostgreSQL, back up before upgrading: ``loopwise backup
create`` (:mod:`loopwise.backups`) or ``pg_dump`` (docs/deploy.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from loopwise.errors import MigrationError
from loopwise.storage.backup import backup_sqlite
from loopwise.storage.locks import named_lock

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
#: loopwise's own Alembic version table; Optuna keeps its tables (and its own ``alembic_version``) in the
#: same database for tuning studies, so the default name would be shared and each would refuse the other.
VERSION_TABLE = "loopwise_alembic_version"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(
            connection, opts={"version_table": VERSION_TABLE}
        ).get_current_revision()


def upgrade(
    engine: Engine, revision: str = "head", *, on_backup: Callable[[Path], None] | None = None
) -> str | None:
    """Bring the schema to ``revision``; safe when several processes do it at once.

    When a SQLite file at an older revision is about to change, it is first copied beside itself
    (``NAME.bak-FROM-TIMESTAMP``, mode 0600); the copy's path goes to ``on_backup``, or is logged. No
    copy is made for an empty database, one already at ``revision``, or PostgreSQL. Raises
    :class:`MigrationError` when the copy or a migration fails; the database then keeps its revision.
    """
    try:
        with _migration_lock(engine):
            _adopt_legacy_revision(engine)
            _backup_before(engine, revision, on_backup)
            command.upgrade(alembic_config(engine), revision)
    except MigrationError:
        raise
    except Exception as exc:
        raise MigrationError(
            f"could not upgrade the database {engine.url.render_as_string(hide_password=True)}: {exc}. "
            "Check that the database is reachable and was not written by a newer loopwise."
        ) from exc
    return current_revision(engine)


def ensure_schema(engine: Engine) -> None:
    """Upgrade to head unless the schema is already there (the fast path costs one query)."""
    head = head_revision()
    try:
        current = current_revision(engine)
    except Exception as exc:
        raise MigrationError(
            f"cannot read the schema revision of {engine.url.render_as_string(hide_password=True)}: {exc}"
        ) from exc
    if current == head:
        return
    if current is not None and current not in known_revisions():
        raise MigrationError(
            f"the database is at revision {current}, which this loopwise does not know; "
            "it was written by a newer loopwise: upgrade loopwise"
        )
    upgrade(engine)


def _backup_before(engine: Engine, revision: str, on_backup: Callable[[Path], None] | None) -> None:
    current = current_revision(engine)
    if current is None:
        return
    try:
        target = ScriptDirectory(str(MIGRATIONS)).as_revision_number(revision)
    except Exception:
        target = None  # not a plain revision: copy, to be safe
    if current == target:
        return
    backup = backup_sqlite(engine, current)
    if backup is None:
        return
    if on_backup is not None:
        on_backup(backup)
    else:
        log.warning("upgrading the database from revision %s; its copy is at %s", current, backup)


def _adopt_legacy_revision(engine: Engine) -> None:
    """Databases written before loopwise had its own version table kept its revision in Alembic's default
    ``alembic_version`` (which Optuna needs for itself): move it over, once."""
    tables = set(inspect(engine).get_table_names())
    if VERSION_TABLE in tables or "alembic_version" not in tables or "dataset_versions" not in tables:
        return
    with engine.begin() as connection:
        rows = [row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))]
        ours = [revision for revision in rows if revision in known_revisions()]
        if not ours:
            return
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        context.stamp(ScriptDirectory(str(MIGRATIONS)), ours[0])
        connection.execute(text("DELETE FROM alembic_version WHERE version_num = :rev"), {"rev": ours[0]})
        if len(rows) == 1:
            connection.execute(text("DROP TABLE alembic_version"))


def known_revisions() -> set[str]:
    """Every schema revision this loopwise ships, the oldest to the head."""
    return {script.revision for script in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}


def _migration_lock(engine: Engine) -> AbstractContextManager[None]:
    return named_lock(engine, "migrate")
