from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from loopwise.config import Settings
from loopwise.data.records import SplitInfo
from loopwise.errors import ConfigurationError, MigrationError, NotFoundError, StorageError
from loopwise.storage import Store
from loopwise.storage.engine import build_engine
from loopwise.storage.migrate import current_revision, ensure_schema, head_revision, upgrade

TABLES = {
    "dataset_versions",
    "dataset_splits",
    "training_runs",
    "run_metrics",
    "model_versions",
    "model_aliases",
    "evaluations",
    "tuning_jobs",
    "endpoints",
    "endpoint_configs",
    "feedback",
    "rollouts",
    "bandit_arms",
}


def _split(name: str = "train") -> SplitInfo:
    return SplitInfo(name, f"file:///tmp/{name}.parquet", 10, {"a": 5, "b": 5}, "0" * 64)


def test_first_use_applies_migrations(store: Store) -> None:
    assert current_revision(store.engine) == head_revision()
    assert set(inspect(store.engine).get_table_names()) >= TABLES


def test_sqlite_default_lives_in_home_with_wal(settings: Settings) -> None:
    store = Store.open(settings)
    try:
        assert (settings.home / "loopwise.db").exists()
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        store.close()


def test_upgrade_is_idempotent(store: Store) -> None:
    assert upgrade(store.engine) == head_revision()
    ensure_schema(store.engine)
    assert current_revision(store.engine) == head_revision()


def test_unknown_revision_from_a_newer_loopwise_is_refused(sqlite_store: Store) -> None:
    with sqlite_store.engine.begin() as connection:
        connection.execute(text("UPDATE loopwise_alembic_version SET version_num = 'fffffff'"))
    with pytest.raises(MigrationError, match="newer loopwise"):
        ensure_schema(sqlite_store.engine)


def test_bad_database_urls_say_what_to_use() -> None:
    with pytest.raises(ConfigurationError, match="not a database URL"):
        build_engine("not a url")
    with pytest.raises(ConfigurationError, match="SQLite and PostgreSQL"):
        build_engine("mysql://root@127.0.0.1/test")


def test_dataset_versions_round_trip_and_count_up(store: Store) -> None:
    with store.uow() as uow:
        first = uow.datasets.add("reviews", "a" * 64, ["-1", "0", "1"], {"recipe": "reviews"}, [_split()])
        second = uow.datasets.add("reviews", "b" * 64, ["-1", "0", "1"], {}, [_split(), _split("test")])
    assert (first.version, second.version) == (1, 2)
    with store.uow() as uow:
        latest = uow.datasets.get("reviews")
        assert latest.version == 2 and set(latest.splits) == {"train", "test"}
        assert uow.datasets.get("reviews", 1).splits["train"].label_counts == {"a": 5, "b": 5}
        assert uow.datasets.find_by_hash("reviews", "a" * 64) == first
        assert uow.datasets.find_by_hash("reviews", "c" * 64) is None


def test_missing_dataset_names_what_exists(store: Store) -> None:
    with store.uow() as uow:
        uow.datasets.add("reviews", "a" * 64, ["x", "y"], {}, [_split()])
    with store.uow() as uow, pytest.raises(NotFoundError, match="known data sets: reviews"):
        uow.datasets.get("nope")


def test_an_error_rolls_the_whole_unit_back(store: Store) -> None:
    with pytest.raises(RuntimeError), store.uow() as uow:
        uow.datasets.add("reviews", "a" * 64, ["x", "y"], {}, [_split()])
        raise RuntimeError("boom")
    with store.uow() as uow:
        assert uow.datasets.list() == []


def test_a_constraint_violation_becomes_a_storage_error_and_keeps_earlier_data(store: Store) -> None:
    with store.uow() as uow:
        uow.datasets.add("reviews", "a" * 64, ["x", "y"], {}, [_split()])
    with pytest.raises(StorageError), store.uow() as uow:
        # the same content hash under the same name violates uq_dataset_versions_name_hash
        uow.datasets.add("reviews", "a" * 64, ["x", "y"], {}, [_split()])
    with store.uow() as uow:
        assert [d.version for d in uow.datasets.list()] == [1]


def test_concurrent_writers_get_distinct_versions(store: Store) -> None:
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            with store.uow() as uow:
                uow.datasets.add("shared", f"{i:064d}", ["x", "y"], {}, [_split()])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with store.uow() as uow:
        assert sorted(d.version for d in uow.datasets.list()) == list(range(1, 9))


def _open_and_write(url: str, home: str, i: int) -> None:
    store = Store.open(Settings(home=Path(home), database_url=url))
    with store.uow() as uow:
        uow.datasets.add("procs", f"{i:064d}", ["x", "y"], {}, [_split()])
    store.close()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_processes_migrate_and_write_at_once(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'many.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_open_and_write, args=(url, str(tmp_path / "home"), i)) for i in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0, 0, 0]
    store = Store.open(Settings(home=tmp_path / "home", database_url=url))
    with store.uow() as uow:
        assert sorted(d.version for d in uow.datasets.list()) == [1, 2, 3, 4]
    store.close()


def test_a_database_from_before_the_own_version_table_is_adopted(store: Store) -> None:
    """Early databases kept loopwise's revision in Alembic's default table, which Optuna needs."""
    with store.engine.begin() as connection:
        revision = connection.execute(text("SELECT version_num FROM loopwise_alembic_version")).scalar()
        connection.execute(text("DROP TABLE loopwise_alembic_version"))
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        connection.execute(text("INSERT INTO alembic_version VALUES (:rev)"), {"rev": revision})
    assert current_revision(store.engine) is None
    ensure_schema(store.engine)
    assert current_revision(store.engine) == head_revision() == revision
    assert "alembic_version" not in inspect(store.engine).get_table_names()
    with store.uow() as uow:
        assert uow.datasets.list() == []


def test_the_migrations_build_exactly_the_tables_the_code_declares(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from loopwise.storage.tables import Base

    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    # Optuna's tables and loopwise's revision table live in the same database but not in Base
    ours = [d for d in differences if not (d[0] == "remove_table" and d[1].name not in Base.metadata.tables)]
    assert ours == []
