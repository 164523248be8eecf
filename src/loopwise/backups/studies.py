"""Optuna's tables in a backup: the tuning jobs' studies live in loopwise's database, in tables Optuna
makes and versions itself (its own ``alembic_version`` and ``version_info``).

A backup carries their rows and Optuna's schema revision; a restore lets Optuna create its tables in the
target (as a tuning job would) and loads the rows when the revision it made is the backup's. Making
Optuna's tables needs Optuna (``loopwise[train]``): a serving host restores a database without studies.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from loopwise._extras import needs_extra
from loopwise.errors import BackupError

#: the tables Optuna makes (tests/backups checks the list against the installed Optuna's models)
OPTUNA_TABLES = frozenset(
    {
        "studies",
        "study_directions",
        "study_system_attributes",
        "study_user_attributes",
        "trial_heartbeats",
        "trial_intermediate_values",
        "trial_params",
        "trial_system_attributes",
        "trial_user_attributes",
        "trial_values",
        "trials",
        "version_info",
    }
)
#: tables that version a schema rather than hold data: recorded in the backup, never loaded as rows
VERSION_TABLES = frozenset({"loopwise_alembic_version", "alembic_version", "version_info"})


def optuna_revision(connection: Connection, tables: set[str]) -> str | None:
    """Optuna's schema revision in the database whose tables are ``tables``; None without its tables."""
    if "studies" not in tables or "alembic_version" not in tables:
        return None
    found = [row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))]
    if len(found) != 1:
        raise BackupError(
            f"Optuna's alembic_version table holds {len(found)} revisions ({', '.join(found) or 'none'}), "
            "not one: run a tuning command once (Optuna repairs it), then back up again"
        )
    return str(found[0])


def create_optuna_tables(database_url: str, revision: str) -> None:
    """Let Optuna create its tables in the database at ``database_url``; :class:`BackupError` when the
    schema it makes is not at ``revision`` (the backup's), :class:`MissingExtraError` without Optuna."""
    with needs_extra("restoring a backup that holds tuning studies"):
        import optuna
        from optuna.storages import RDBStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = RDBStorage(database_url, skip_compatibility_check=True)
    try:
        made = storage.get_current_version()
    finally:
        storage.engine.dispose()
    if made != revision:
        raise BackupError(
            f"the backup's tuning studies are at Optuna's schema revision {revision}, and the Optuna "
            f"installed here ({optuna.__version__}) writes {made}: restore with the Optuna the backup was "
            "made with, then upgrade the studies with `optuna storage upgrade --storage URL`"
        )
