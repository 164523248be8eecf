"""``loopwise backup``: a backup of the database and the artifact store restores into an empty PostgreSQL
database and an empty store, and a server on the restored pair answers as the original did; every row of
every table (Optuna's included) survives the move from SQLite; a target that is not empty is refused."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from schema_rows import data_tables, declared_changes, fill, missing

from auth_helpers import admin_token, bearer
from cli_helpers import run
from loopwise import registry
from loopwise.app import background_server
from loopwise.backups import Bundle, create_backup, restore_backup
from loopwise.backups.studies import OPTUNA_TABLES
from loopwise.classifiers import load_classifier
from loopwise.cli import main
from loopwise.config import Settings
from loopwise.data.splits import read_split
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.service import create_endpoint
from loopwise.storage import Store, tables
from loopwise.storage.artifacts import open_artifacts
from loopwise.storage.dump import dump_table, snapshot
from loopwise.storage.engine import build_engine
from loopwise.storage.migrate import current_revision, head_revision, upgrade
from loopwise.training.service import TrainRequest, train

TEXTS = ["awful terrible item", "okay plain item", "great lovely item"]
#: an earlier schema revision, as an older loopwise wrote it
OLD = "0010"


def _loopwise(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], home: Path, url: str, *args: str
) -> tuple[int, str]:
    """``loopwise ARGS`` in this process with LOOPWISE_HOME and LOOPWISE_DATABASE_URL set: its exit
    status and its output, both streams."""
    with monkeypatch.context() as env:
        env.setenv("LOOPWISE_HOME", str(home))
        env.setenv("LOOPWISE_DATABASE_URL", url)
        env.setenv("COLUMNS", "300")
        try:
            main(list(args))
            code = 0
        except SystemExit as stopped:
            code = int(stopped.code or 0)
    out = capsys.readouterr()
    return code, " ".join((out.out + out.err).split())


def approx(labels: list[str], row: Any) -> Any:
    return pytest.approx({label: float(p) for label, p in zip(labels, row, strict=True)})


def _answers(url: str, token: str) -> list[dict[str, object]]:
    """The endpoint's predictions for TEXTS."""
    answer = httpx.post(
        f"{url}/api/v1/endpoints/reviews/predict", json={"texts": TEXTS}, headers=bearer(token), timeout=30
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["predictions"])


@pytest.mark.postgres
def test_a_backup_restores_into_an_empty_postgresql_and_store_and_serves_the_same_answers(
    postgres_url: str,
    tmp_path: Path,
    import_small: Callable[[Store], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = Store.open(Settings(home=tmp_path / "source"))
    dataset = import_small(source)
    train(source, TrainRequest(dataset=dataset, backend="tfidf", model_name="small-tfidf"), progress=False)
    with source.uow() as uow:
        model = registry.set_alias(uow, "small-tfidf:1", "champion")
    create_endpoint(
        source,
        "reviews",
        parse_endpoint_config({"variants": [{"name": "A", "model": "small-tfidf@champion"}]}),
    )
    token = admin_token(source)
    classifier = load_classifier(source.artifacts.local_file(model.uri))
    expected = [
        {"label": classifier.labels[int(row.argmax())], "probabilities": approx(classifier.labels, row)}
        for row in classifier.predict_proba(TEXTS)
    ]
    source.close()

    backup = tmp_path / "backup"
    made = run(tmp_path / "source", "backup", "create", str(backup))  # on SQLite, as it ran
    assert "backed up" in made.stdout and (backup / "backup.json").is_file()
    shutil.rmtree(tmp_path / "source")  # the original is gone: only the backup is left
    target = tmp_path / "target"
    code, said = _loopwise(monkeypatch, capsys, target, postgres_url, "backup", "restore", str(backup))
    assert code == 0 and "restored" in said, said

    restored = Store.open(Settings(home=target, database_url=postgres_url))
    try:
        with restored.uow() as uow:
            assert registry.resolve(uow, "small-tfidf@champion").uri.startswith(restored.artifacts.url + "/")
        with background_server(restored) as (url, _):
            assert _answers(url, token) == expected  # the old token signs in; the same model answers
            assert _answers(url, admin_token(restored)) == expected  # a new row: the sequences moved on
    finally:
        restored.close()

    code, said = _loopwise(monkeypatch, capsys, target, postgres_url, "backup", "restore", str(backup))
    assert code == 1 and "is not empty" in said and "a restore never merges" in said, said


def test_a_backup_restores_into_another_folder_and_refuses_a_store_that_is_not_empty(
    tmp_path: Path, import_small: Callable[[Store], str]
) -> None:
    home = tmp_path / "home"
    store = Store.open(Settings(home=home))
    dataset = import_small(store)
    segment = store.artifacts.host_dir("capture") / "reviews" / "A" / "2026" / "01" / "01" / "00" / "a.jsonl"
    segment.parent.mkdir(parents=True)
    segment.write_bytes(b'{"inference_id":"1"}\n{"inference_id":"2","inp')  # a server writing the second
    store.close()
    backup = tmp_path / "backup"
    assert run(home, "backup", "create", str(backup)).returncode == 0
    assert run(home, "backup", "verify", str(backup)).stdout.startswith(f"{backup}: a sound backup")

    copy = tmp_path / "copy"
    assert "restored" in run(copy, "backup", "restore", str(backup)).stdout
    restored = Store.open(Settings(home=copy))
    with restored.uow() as uow:
        split = uow.datasets.get(dataset.partition(":")[0]).split("train")
    assert split.uri.startswith(restored.artifacts.url + "/")  # the URI moved with the artifacts
    assert read_split(restored.artifacts.local_file(split.uri))[0]
    moved = restored.artifacts.host_dir("capture") / segment.relative_to(home / "artifacts" / "capture")
    assert moved.read_bytes() == b'{"inference_id":"1"}\n'  # up to the last complete record
    restored.close()

    other = tmp_path / "other"
    open_artifacts(Settings(home=other)).put_bytes("models/mine", "classifier.json", b"{}")
    refused = run(other, "backup", "restore", str(backup), check=False)
    assert refused.returncode == 1
    assert "the artifact store" in refused.stderr and "models/mine" in " ".join(refused.stderr.split())
    engine = build_engine(f"sqlite:///{other / 'loopwise.db'}")
    assert sa.inspect(engine).get_table_names() == []  # nothing written: both targets are checked first
    engine.dispose()

    again = run(home, "backup", "create", str(backup), check=False)
    assert again.returncode == 2 and "exists and is not an empty folder" in again.stderr
    (tmp_path / "half").mkdir()
    for args in (("restore", str(tmp_path / "half")), ("verify", str(tmp_path / "nowhere"))):
        usage = run(home, "backup", *args, check=False)
        assert usage.returncode == 2 and len(usage.stderr.strip().splitlines()) == 1, usage.stderr
    damaged = next((backup / "database").iterdir())
    damaged.write_bytes(damaged.read_bytes()[:-1])
    checked = run(home, "backup", "verify", str(backup), check=False)
    assert checked.returncode == 1 and "not the file the backup wrote" in checked.stderr


@pytest.mark.postgres
def test_every_row_of_every_table_survives_a_backup_from_sqlite_restored_on_postgresql(
    postgres_url: str, tmp_path: Path
) -> None:
    import optuna

    settings = Settings(home=tmp_path / "source")
    engine = build_engine(settings.resolved_database_url)
    upgrade(engine)
    rows = fill(engine)  # every table of loopwise: values at the edges of their types, NULLs, non-ASCII
    with engine.begin() as connection:  # where fill left None: SQL's NULL in one column, a JSON null in one
        for table, column, value in (
            (tables.ReviewFlowRow.__table__, "conditions", sa.null()),
            (tables.LabelingJobRow.__table__, "auto_label", sa.JSON.NULL),
        ):
            rows_of = connection.execute(sa.select(table.c.id, table.c[column]))
            empty = [found.id for found in rows_of if found[1] is None]
            connection.execute(sa.update(table).where(table.c.id.in_(empty)).values({column: value}))
    nulls = _sql_nulls_in_json_columns(engine)
    engine.dispose()

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 1e-5, 1.0, log=True)
        trial.report(x / 2, step=1)
        trial.set_user_attr("note", "é中")
        return x

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="job", storage=settings.resolved_database_url)  # a tuning job's
    study.optimize(objective, n_trials=3)
    study.set_user_attr("ended_because", {"reason": "max_trials"})
    create_backup(settings, tmp_path / "backup")
    restore_backup(Settings(home=tmp_path / "target", database_url=postgres_url), tmp_path / "backup")

    target = build_engine(postgres_url)
    try:
        assert missing(target, rows, {"duty_leases": ()}) == []  # leases: a running server's state
        assert _sql_nulls_in_json_columns(target) == nulls
    finally:
        target.dispose()
    restored = optuna.load_study(study_name="job", storage=postgres_url)
    assert restored.trials == study.trials and restored.user_attrs == study.user_attrs
    restored.optimize(objective, n_trials=1)  # new rows after the restored ones: the sequences moved on
    assert len(restored.trials) == 4


def test_a_backup_of_an_older_schema_restores_into_this_loopwise_and_is_migrated(tmp_path: Path) -> None:
    """A backup an older loopwise made (rows of revision OLD) is loaded at OLD, then migrated to head."""
    engine = build_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, OLD)
    rows = fill(engine)
    folder = tmp_path / "backup"
    with snapshot(engine) as connection:  # what the older loopwise wrote: its tables, as they were
        dumps = tuple(
            dump_table(connection, table, folder, f"database/{number:03d}-{table.name}.jsonl.gz")
            for number, table in enumerate(data_tables(engine).sorted_tables)
        )
    engine.dispose()
    Bundle(
        "2025-01-01T00:00:00+00:00", "0.0.1", "sqlite", OLD, None, dumps, {}, {}, "file:///gone", None
    ).write(folder)
    restore_backup(Settings(home=tmp_path / "target"), folder)
    target = build_engine(f"sqlite:///{tmp_path / 'target' / 'loopwise.db'}")
    try:
        assert current_revision(target) == head_revision()
        assert missing(target, rows, declared_changes(OLD)) == []
    finally:
        target.dispose()


def _sql_nulls_in_json_columns(engine: sa.Engine) -> dict[str, int]:
    """How many rows hold SQL's NULL (not a JSON null) in each JSON column of loopwise's tables."""
    with engine.connect() as connection:
        return {
            f"{table.name}.{column.name}": connection.execute(
                sa.select(sa.func.count()).select_from(table).where(column.is_(None))
            ).scalar_one()
            for table in tables.Base.metadata.sorted_tables
            for column in table.columns
            if isinstance(column.type, sa.JSON)
        }


def test_the_backup_knows_every_table_optuna_makes() -> None:
    from optuna.storages._rdb import models

    assert set(models.BaseModel.metadata.tables) == OPTUNA_TABLES
