"""An upgrade of a SQLite file first keeps a consistent copy of it at the old revision, beside it."""

from __future__ import annotations

import logging
import re
import stat
from pathlib import Path

import pytest
from schema_rows import Remembered, declared_changes, fill, missing
from sqlalchemy import Engine, create_engine

from cli_helpers import run
from loopwise.config import Settings
from loopwise.errors import MigrationError
from loopwise.storage import Store, backup
from loopwise.storage.engine import build_engine
from loopwise.storage.migrate import current_revision, head_revision, upgrade

OLD = "0010"


def _older_database(path: Path) -> tuple[Engine, Remembered]:
    """A SQLite file at revision OLD with rows in every table; the engine stays open (WAL not emptied)."""
    engine = build_engine(f"sqlite:///{path}")
    upgrade(engine, OLD)
    return engine, fill(engine)


def _backups(folder: Path) -> list[Path]:
    return sorted(folder.glob("loopwise.db.bak-*"))


def _assert_is_the_old_database(copy: Path, rows: Remembered) -> None:
    assert re.fullmatch(rf"loopwise\.db\.bak-{OLD}-\d{{8}}T\d{{6}}Z", copy.name)
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    engine = create_engine(f"sqlite:///{copy}")  # no WAL pragma: the copy stays as it was written
    try:
        assert current_revision(engine) == OLD
        assert missing(engine, rows) == []
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "delete"
    finally:
        engine.dispose()
    assert not copy.with_name(copy.name + "-wal").exists()


def test_opening_an_older_database_backs_it_up_first(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    database = settings.home / "loopwise.db"
    writer, rows = _older_database(database)
    try:
        # the rows are still in the write-ahead log: a plain file copy would miss them
        assert database.with_name("loopwise.db-wal").stat().st_size > 0
        with caplog.at_level(logging.WARNING, logger="loopwise.storage.migrate"):
            store = Store.open(settings)
        store.close()
    finally:
        writer.dispose()
    [copy] = _backups(database.parent)
    assert str(copy) in caplog.text
    _assert_is_the_old_database(copy, rows)
    engine = build_engine(f"sqlite:///{database}")
    try:
        assert current_revision(engine) == head_revision()
        assert missing(engine, rows, declared_changes(OLD)) == []
    finally:
        engine.dispose()

    Store.open(settings).close()
    assert _backups(database.parent) == [copy], "nothing to migrate, nothing backed up"


def _loopwise(home: Path, *args: str) -> str:
    return run(home, *args, columns=300).stdout


def test_db_upgrade_prints_the_backup_and_makes_none_at_the_head(tmp_path: Path) -> None:
    home = tmp_path / "home"
    engine, rows = _older_database(home / "loopwise.db")
    engine.dispose()

    printed = _loopwise(home, "db", "upgrade")

    [copy] = _backups(home)
    assert f"backed up the database before upgrading it: {copy}" in printed
    assert f"database at revision {head_revision()}" in printed
    _assert_is_the_old_database(copy, rows)

    again = _loopwise(home, "db", "upgrade")
    assert "backed up" not in again
    assert _backups(home) == [copy]


def test_a_new_database_is_not_backed_up(tmp_path: Path) -> None:
    engine = build_engine(f"sqlite:///{tmp_path / 'loopwise.db'}")
    made: list[Path] = []
    try:
        assert upgrade(engine, on_backup=made.append) == head_revision()
    finally:
        engine.dispose()
    assert made == [] and _backups(tmp_path) == []


@pytest.mark.postgres
def test_postgresql_is_upgraded_without_a_file_copy(postgres_url: str, tmp_path: Path) -> None:
    engine = build_engine(postgres_url)
    made: list[Path] = []
    try:
        upgrade(engine, OLD)
        rows = fill(engine)
        assert upgrade(engine, on_backup=made.append) == head_revision()
        assert missing(engine, rows, declared_changes(OLD)) == []
    finally:
        engine.dispose()
    assert made == []


def test_a_failed_backup_stops_the_upgrade(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, rows = _older_database(tmp_path / "loopwise.db")
    monkeypatch.setattr(backup, "_new_file", lambda source, revision: tmp_path / "gone" / "copy")
    try:
        with pytest.raises(MigrationError, match=r"could not back up .* before upgrading it"):
            upgrade(engine)
        assert current_revision(engine) == OLD
        assert missing(engine, rows) == []
    finally:
        engine.dispose()
