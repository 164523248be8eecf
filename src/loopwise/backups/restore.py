"""Restoring a backup into an empty database and an empty artifact store, and checking one.

Nothing is merged: a target that holds rows or artifacts of its own is refused before anything is
written. Every part of the backup is checked against ``backup.json`` first (each table file's sha256,
each artifact's files against its manifest, each captured file's sha256), so a damaged backup writes
nothing. Then the store is filled (artifacts before the rows that name them, as when they were made) and
the database loaded in one transaction. A restore that stopped half-way may be run again over what it
left: the artifacts of the same backup are accepted as they are, and the database is still empty.

Where the target store is not where the backup's artifacts lived (another folder, another bucket), the
URIs the rows hold (model versions, data set splits, reports, loop outputs) are moved with them: a string
value that starts with the old store's URL (or a directory store's path) starts with the new one's.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path

import sqlalchemy as sa

from loopwise.backups.bundle import ARTIFACTS_DIR, HOST_DIR, Bundle
from loopwise.backups.create import HOST_FOLDERS, Progress
from loopwise.backups.studies import VERSION_TABLES, create_optuna_tables
from loopwise.config import Settings
from loopwise.errors import BackupError, ChecksumError, MissingExtraError
from loopwise.storage.artifacts import MARKER, ArtifactStore, Manifest, open_artifacts, sha256_of
from loopwise.storage.dump import check_file, load_table, reset_sequences, tables_with_rows
from loopwise.storage.engine import build_engine
from loopwise.storage.migrate import head_revision, known_revisions, upgrade

#: how many of the things that make a target not empty a refusal names
NAMED = 3


def verify_backup(folder: Path, *, progress: Progress | None = None) -> Bundle:
    """Check every part of the backup in ``folder`` against its ``backup.json``; returns what it holds.
    :class:`BackupError` when it is not a backup, :class:`ChecksumError` naming the first damaged part."""
    folder = Path(folder)
    bundle = Bundle.read(folder)
    report = progress or (lambda *_: None)
    for number, table in enumerate(bundle.tables):
        report("database", number, len(bundle.tables))
        check_file(folder, table)
    for number, (key, digest) in enumerate(sorted(bundle.artifacts.items())):
        report("artifacts", number, len(bundle.artifacts))
        copy = folder / ARTIFACTS_DIR / key
        where = f"the copy of artifact {key} at {copy}"
        try:
            manifest = Manifest.from_json((copy / MARKER).read_bytes(), where)
        except OSError:
            raise ChecksumError(f"{where} has no commit marker {MARKER}: the backup is incomplete") from None
        if manifest.digest != digest:
            raise ChecksumError(f"{where} is not the artifact the backup recorded")
        manifest.check(copy, where)
    report("artifacts", len(bundle.artifacts), len(bundle.artifacts))
    for relative, digest in bundle.host_files.items():
        path = folder / HOST_DIR / relative
        if not path.is_file() or sha256_of(path) != digest:
            raise ChecksumError(f"the captured file {path} is missing or not the file the backup wrote")
    return bundle


def restore_backup(settings: Settings, folder: Path, *, progress: Progress | None = None) -> Bundle:
    """Restore the backup in ``folder`` into the database and the artifact store ``settings`` name, both
    empty (see the module's docstring); returns what was restored. :class:`BackupError` when a target is
    not empty or the backup is of a newer loopwise, :class:`ChecksumError` when it is damaged,
    :class:`MissingExtraError` when it holds tuning studies and Optuna is not installed."""
    folder = Path(folder)
    report = progress or (lambda *_: None)
    bundle = verify_backup(folder, progress=report)
    if bundle.revision not in known_revisions():
        raise BackupError(
            f"{folder} holds a database at schema revision {bundle.revision}, which this loopwise does not "
            f"know (its newest is {head_revision()}): restore it with the loopwise that made it, or newer"
        )
    if bundle.optuna_revision is not None and find_spec("optuna") is None:
        raise MissingExtraError(
            "restoring a backup that holds tuning studies needs optuna, which this installation lacks: "
            "pip install 'loopwise[train]'"
        )
    artifacts = open_artifacts(settings)
    url = settings.resolved_database_url
    engine = build_engine(url)
    try:
        refuse_unless_empty(engine, artifacts, bundle)
        for number, (key, digest) in enumerate(sorted(bundle.artifacts.items())):
            report("artifacts", number, len(bundle.artifacts))
            if artifacts.copy_in(folder / ARTIFACTS_DIR / key, key).digest != digest:
                raise ChecksumError(f"artifact {key} of {folder} is not the one the backup recorded")
        for relative in bundle.host_files:
            name, _, inside = relative.partition("/")
            target = artifacts.host_dir(name) / inside
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / HOST_DIR / relative, target)
        report("database", 0, len(bundle.tables))
        upgrade(engine, bundle.revision)
        if bundle.optuna_revision is not None:
            create_optuna_tables(url, bundle.optuna_revision)
        _load(engine, folder, bundle, relocation(bundle, artifacts))
        if bundle.revision != head_revision():
            upgrade(engine)
        report("database", len(bundle.tables), len(bundle.tables))
    finally:
        engine.dispose()
    return bundle


def refuse_unless_empty(engine: sa.Engine, artifacts: ArtifactStore, bundle: Bundle) -> None:
    """:class:`BackupError` unless the database holds no rows and the store nothing but what this
    backup would put there (what an interrupted restore of it left)."""
    where = engine.url.render_as_string(hide_password=True)
    names = [n for n in sa.inspect(engine).get_table_names() if n not in VERSION_TABLES]
    with engine.connect() as connection:
        full = tables_with_rows(connection, names)
    if full:
        raise BackupError(
            f"the database {where} is not empty ({len(full)} tables hold rows: {_some(full)}): restore "
            "into an empty database (createdb, a new schema, or a new SQLite file); a restore never merges"
        )
    foreign = [k for k in artifacts.list() if bundle.artifacts.get(k) != artifacts.manifest(k).digest]
    for name in HOST_FOLDERS:
        root = artifacts.host_dir(name)
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = f"{name}/{path.relative_to(root).as_posix()}"
            if bundle.host_files.get(relative) != sha256_of(path):
                foreign.append(relative)
    if foreign:
        raise BackupError(
            f"the artifact store {artifacts.url} is not empty ({len(foreign)} artifacts or captured files "
            f"that are not this backup's: {_some(foreign)}): restore into an empty store (a new folder "
            "or bucket prefix, LOOPWISE_ARTIFACTS); a restore never merges"
        )


def relocation(bundle: Bundle, target: ArtifactStore) -> Callable[[str], str]:
    """The function that moves a string of the rows from the backup's store to ``target``: a value that
    starts with the old store's URL (or a directory store's path) followed by ``/`` gets the new URL
    instead; any other value is kept."""
    new = target.url
    old = [bundle.store_url] + ([bundle.store_root] if bundle.store_root else [])
    old = [o for o in old if o != new]
    if not old:
        return lambda value: value

    def rewrite(value: str) -> str:
        for prefix in old:
            if value.startswith(prefix + "/"):
                return new + value[len(prefix) :]
        return value

    return rewrite


def _load(engine: sa.Engine, folder: Path, bundle: Bundle, rewrite: Callable[[str], str]) -> None:
    """Load every table of the backup in one transaction, parents before children, then move
    PostgreSQL's sequences past the rows loaded."""
    dumps = {t.name: t for t in bundle.tables}
    with engine.begin() as connection:
        metadata = sa.MetaData()
        try:
            metadata.reflect(bind=connection, only=sorted(dumps))
        except sa.exc.InvalidRequestError as exc:
            raise BackupError(f"the backup holds a table this database does not have: {exc}") from None
        tables = metadata.sorted_tables
        for table in tables:
            load_table(connection, table, folder, dumps[table.name], rewrite)
        reset_sequences(connection, tables)


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:NAMED])
    return shown + (f" and {len(names) - NAMED} more" if len(names) > NAMED else "")
