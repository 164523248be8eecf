"""Making a backup: the database first, then the artifact store, into one new folder.

The order is what makes the two halves agree. Every artifact is committed before the rows that name it
(a model's files before its model version, a data set's splits before its version, a loop's output
before its status), so a store copied *after* the database's snapshot holds every artifact the snapshot
names; artifacts committed meanwhile come along unnamed, and do no harm. The reverse order would not hold:
a row committed after the store's copy could name an artifact the copy lacks. What can still be missing is
an artifact removed between the snapshot and the copy (a tuning job pruning a checkpoint, a report
replaced); the backup lists those (``Bundle.missing``) rather than failing.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from loopwise import __version__
from loopwise._private import make_private, private_dir
from loopwise.backups.bundle import ARTIFACTS_DIR, DATABASE_DIR, HOST_DIR, Bundle
from loopwise.backups.studies import OPTUNA_TABLES, VERSION_TABLES, optuna_revision
from loopwise.config import Settings
from loopwise.errors import BackupError
from loopwise.storage.artifacts import ArtifactStore, LocalArtifactStore, open_artifacts, sha256_of
from loopwise.storage.dump import TableDump, dump_table, snapshot
from loopwise.storage.engine import build_engine
from loopwise.storage.migrate import current_revision, head_revision
from loopwise.storage.tables import Base

#: runtime state, not data: which server holds each background duty now (a restored server takes its
#: duties afresh; restored leases would only make it wait for them to expire)
SKIPPED_TABLES = frozenset({"duty_leases"})
#: the host folders (ArtifactStore.host_dir) a backup carries: captured requests. The review journal is
#: left out: its records reach the database within milliseconds, and its own server replays the rest.
HOST_FOLDERS = ("capture",)

Progress = Callable[[str, int, int], None]


def create_backup(settings: Settings, folder: Path, *, progress: Progress | None = None) -> Bundle:
    """Back up the database and the artifact store ``settings`` name into ``folder`` (made here, or an
    empty folder), while servers go on serving. Returns what was written; ``progress(phase, done,
    total)`` hears how far it is. :class:`BackupError` when ``folder`` is not new and empty, or the
    database is not at this loopwise's schema revision; on any failure nothing is left in ``folder``."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise BackupError(f"{folder} exists and is not an empty folder: back up into a new one")
    made = not folder.exists()
    artifacts = open_artifacts(settings)
    engine = build_engine(settings.resolved_database_url)
    try:
        _check_revision(engine)
        private_dir(folder)
        bundle = _write(engine, artifacts, folder, progress or (lambda *_: None))
    except BaseException:
        if made:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            for child in folder.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    finally:
        engine.dispose()
    return bundle


def _check_revision(engine: sa.Engine) -> None:
    where = engine.url.render_as_string(hide_password=True)
    revision, head = current_revision(engine), head_revision()
    if revision is None:
        raise BackupError(f"the database {where} holds no loopwise schema: there is nothing to back up")
    if revision != head:
        raise BackupError(
            f"the database {where} is at schema revision {revision}, this loopwise's is {head}: back up "
            "with the loopwise that serves it, or upgrade the database first (loopwise db upgrade)"
        )


def _write(engine: sa.Engine, artifacts: ArtifactStore, folder: Path, progress: Progress) -> Bundle:
    created = datetime.now(UTC).isoformat(timespec="seconds")
    named: set[str] = set()
    prefix = artifacts.url + "/"

    def seen(value: str) -> None:
        if value.startswith(prefix):
            named.add(value)

    with snapshot(engine) as connection:
        present = set(sa.inspect(connection).get_table_names())
        optuna = optuna_revision(connection, present)
        tables = [t for t in Base.metadata.sorted_tables if t.name not in SKIPPED_TABLES]
        studies = sa.MetaData()
        studies.reflect(bind=connection, only=sorted(present & OPTUNA_TABLES - VERSION_TABLES))
        tables += studies.sorted_tables
        dumps: list[TableDump] = []
        for number, table in enumerate(tables):
            progress("database", number, len(tables))
            file = f"{DATABASE_DIR}/{number:03d}-{table.name}.jsonl.gz"
            dumps.append(dump_table(connection, table, folder, file, strings=seen))
    left_out = present - set(Base.metadata.tables) - OPTUNA_TABLES - VERSION_TABLES
    progress("database", len(tables), len(tables))

    keys = artifacts.list()
    copied: dict[str, str] = {}
    for number, key in enumerate(keys):
        progress("artifacts", number, len(keys))
        copied[key] = artifacts.copy_out(key, folder / ARTIFACTS_DIR / key).digest
    progress("artifacts", len(keys), len(keys))
    host = {
        f"{name}/{relative}": digest
        for name in HOST_FOLDERS
        for relative, digest in copy_host_folder(artifacts.host_dir(name), folder / HOST_DIR / name).items()
    }
    make_private(folder)
    bundle = Bundle(
        created_at=created,
        loopwise_version=__version__,
        dialect=engine.dialect.name,
        revision=head_revision(),
        optuna_revision=optuna,
        tables=tuple(dumps),
        artifacts=copied,
        host_files=host,
        store_url=artifacts.url,
        store_root=str(artifacts.root) if isinstance(artifacts, LocalArtifactStore) else None,
        missing=tuple(sorted(u for u in named if _holder(u[len(prefix) :], copied) is None)),
        left_out=tuple(sorted(left_out)),
        sizes={
            "database_bytes": sum((folder / d.file).stat().st_size for d in dumps),
            "artifact_bytes": _size(folder / ARTIFACTS_DIR),
            "host_bytes": _size(folder / HOST_DIR),
        },
    )
    bundle.write(folder)  # last: from here on the folder is a backup
    return bundle


def copy_host_folder(source: Path, target: Path) -> dict[str, str]:
    """Copy the files under ``source`` to ``target``; returns each copy's sha256 by relative path.
    Captured files only grow, a line at a time: a ``.jsonl`` file is copied up to its last complete line,
    so a record a server is appending meanwhile is never cut in half."""
    copied: dict[str, str] = {}
    if not source.is_dir():
        return copied
    for path in sorted(p for p in source.rglob("*") if p.is_file() and not p.is_symlink()):
        relative = path.relative_to(source).as_posix()
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        _copy_prefix(path, destination, path.stat().st_size)
        if path.suffix == ".jsonl":
            _cut_after_last_line(destination)
        copied[relative] = sha256_of(destination)
    return copied


def _copy_prefix(source: Path, destination: Path, size: int) -> None:
    """The first ``size`` bytes of ``source`` (its size when the copy began: it may grow meanwhile)."""
    with open(source, "rb") as reader, open(destination, "wb") as writer:
        while size > 0 and (chunk := reader.read(min(size, 1 << 20))):
            writer.write(chunk)
            size -= len(chunk)


def _cut_after_last_line(path: Path) -> None:
    """Truncate ``path`` just after its last newline (to nothing when it has none)."""
    with open(path, "r+b") as handle:
        end = handle.seek(0, 2)
        while end > 0:
            start = max(0, end - (1 << 16))
            handle.seek(start)
            found = handle.read(end - start).rfind(b"\n")
            if found >= 0:
                handle.truncate(start + found + 1)
                return
            end = start
        handle.truncate(0)


def _holder(inside: str, keys: dict[str, str]) -> str | None:
    """The artifact key among ``keys`` that holds the path ``inside`` the store, if any."""
    parts = inside.strip("/").split("/")
    for cut in range(len(parts), 0, -1):
        key = "/".join(parts[:cut])
        if key in keys:
            return key
    return None


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.is_dir() else 0
