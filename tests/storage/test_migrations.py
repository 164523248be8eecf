"""Upgrades never lose data: a database at every earlier revision, full of rows, upgraded to the head.

The revisions come from the shipped migrations, so a new migration is covered without editing this file.
A migration that changes stored values on purpose (a backfill that rewrites a column, a table whose rows
move elsewhere) says so in a module attribute, and only there is a difference allowed::

    changes_data = {"labeling_items": ["status"], "old_table": []}  # [] = the whole table
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from schema_rows import Remembered, data_tables, declared_changes, fill, missing
from sqlalchemy import Engine

from loopwise.errors import MigrationError
from loopwise.storage import migrate
from loopwise.storage.engine import build_engine
from loopwise.storage.migrate import current_revision, head_revision, upgrade

SHIPPED_HEAD = head_revision()


def _earlier_revisions() -> list[str]:
    """Every shipped revision but the head, oldest first."""
    scripts = ScriptDirectory(str(migrate.MIGRATIONS))
    newest_first = [script.revision for script in scripts.walk_revisions()]
    return [revision for revision in reversed(newest_first) if revision != scripts.get_current_head()]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database on each supported backend, through loopwise's own engine settings."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'loopwise.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    built = build_engine(url)
    yield built
    built.dispose()


def test_there_are_earlier_revisions_to_upgrade_from() -> None:
    assert len(_earlier_revisions()) >= 12
    assert head_revision() not in _earlier_revisions()


@pytest.mark.parametrize("revision", _earlier_revisions())
def test_every_row_survives_the_upgrade_to_head(engine: Engine, revision: str) -> None:
    upgrade(engine, revision)
    assert current_revision(engine) == revision
    rows = fill(engine)
    assert set(rows.rows) == set(data_tables(engine).tables), "every table holds rows"
    assert rows.count() >= 2 * len(rows.rows)

    assert upgrade(engine) == head_revision()

    assert missing(engine, rows, declared_changes(revision)) == []


def _upgrade_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, start: str = "head", declare: str = ""
) -> tuple[Engine, Remembered]:
    """A SQLite database filled at ``start`` (the shipped head unless told), about to be upgraded through
    one more migration running ``body``; returns the engine (open) and the rows filled in."""
    engine = build_engine(f"sqlite:///{tmp_path / 'loopwise.db'}")
    upgrade(engine, start)
    rows = fill(engine)
    monkeypatch.setattr(migrate, "MIGRATIONS", _add_migration(tmp_path, body, declare))
    return engine, rows


def test_the_check_sees_a_migration_that_changes_a_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The survival check itself: one extra migration that rewrites a value is caught."""
    engine, rows = _upgrade_through(
        tmp_path,
        monkeypatch,
        'op.execute("UPDATE run_metrics SET value = value + 1 WHERE id = (SELECT min(id) FROM run_metrics)")',
    )
    try:
        upgrade(engine)
        problems = missing(engine, rows)
    finally:
        engine.dispose()
    assert len(problems) == 1 and problems[0].startswith("run_metrics: row")


def test_a_change_the_migration_declares_is_allowed_and_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, rows = _upgrade_through(
        tmp_path,
        monkeypatch,
        'op.execute("UPDATE run_metrics SET value = 0")\n'
        "    op.execute(\"UPDATE webhooks SET url = url || '/moved'\")",
        declare='changes_data = {"run_metrics": ["value"], "webhooks": []}',
    )
    try:
        upgrade(engine)
        assert missing(engine, rows, declared_changes(SHIPPED_HEAD)) == []
        assert len(missing(engine, rows)) == 4
        assert len(missing(engine, rows, {"run_metrics": {"name"}})) == 4
    finally:
        engine.dispose()


def test_the_check_sees_a_migration_that_drops_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, rows = _upgrade_through(tmp_path, monkeypatch, 'op.execute("DELETE FROM dataset_splits")')
    try:
        upgrade(engine)
        problems = missing(engine, rows)
    finally:
        engine.dispose()
    assert [problem.split(":")[0] for problem in problems] == ["dataset_splits", "dataset_splits"]


@pytest.mark.parametrize("parent", ["labeling_items", "model_versions", "workers"])
def test_rebuilding_a_table_on_sqlite_keeps_the_rows_that_point_at_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parent: str
) -> None:
    """Batch mode copies the table and drops the original: with foreign keys on, that drop would delete
    the rows pointing at it (ON DELETE CASCADE), null them (SET NULL) or fail (no action)."""
    engine, rows = _upgrade_through(
        tmp_path,
        monkeypatch,
        f'with op.batch_alter_table("{parent}", recreate="always") as batch:\n'
        '        batch.add_column(sa.Column("added", sa.Integer(), nullable=True))',
    )
    try:
        assert upgrade(engine) == "9999"
        assert missing(engine, rows) == []
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_a_migration_that_leaves_rows_pointing_nowhere_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, rows = _upgrade_through(tmp_path, monkeypatch, 'op.execute("DELETE FROM workers")')
    try:
        with pytest.raises(MigrationError, match=r"left 10 rows pointing at rows that do not exist"):
            upgrade(engine)
        assert current_revision(engine) == SHIPPED_HEAD
        assert missing(engine, rows) == []
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_a_failed_upgrade_leaves_the_database_where_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All the migrations of one upgrade run in one transaction, on SQLite too: no half-way revision."""
    first = _earlier_revisions()[0]
    engine, rows = _upgrade_through(
        tmp_path, monkeypatch, 'op.execute("UPDATE no_such_table SET x = 1")', start=first
    )
    try:
        tables = set(data_tables(engine).tables)
        with pytest.raises(MigrationError, match="no such table"):
            upgrade(engine)
        assert current_revision(engine) == first
        assert set(data_tables(engine).tables) == tables
        assert missing(engine, rows) == []
    finally:
        engine.dispose()


def _add_migration(tmp_path: Path, body: str, declare: str = "") -> Path:
    """A copy of the shipped migrations with one more revision, 9999, on top whose upgrade runs ``body``
    (``declare``: more module-level lines)."""
    copy = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "versions" / "9999_lossy.py").write_text(
        f'"""a lossy migration for the test"""\n\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
        f'revision = "9999"\ndown_revision = "{head_revision()}"\n'
        f"branch_labels = None\ndepends_on = None\n{declare}\n\n\n"
        f"def upgrade() -> None:\n    {body}\n",
        encoding="utf-8",
    )
    return copy
