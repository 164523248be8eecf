"""What a backup is on disk: one folder, described by ``backup.json``, which is written last.

Layout::

    backup.json                 this module's Bundle: what the backup holds, each part's checksum
    database/NNN-<table>.jsonl.gz   each table's rows (loopwise.storage.dump), in foreign-key order
    artifacts/<key>/...         each committed artifact's files and its commit marker (its manifest)
    host/capture/...            captured requests (files appended in place, which no artifact holds)

A folder without ``backup.json`` is not a backup (one that stopped half-way); every part is checked
against what ``backup.json`` recorded before anything is restored from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopwise._private import open_private
from loopwise.errors import BackupError
from loopwise.storage.dump import TableDump

BUNDLE_FILE = "backup.json"
FORMAT = "loopwise-backup"
#: the layout's version; a backup of a later layout is refused with the advice to upgrade loopwise
VERSION = 1
DATABASE_DIR = "database"
ARTIFACTS_DIR = "artifacts"
HOST_DIR = "host"


@dataclass(frozen=True)
class Bundle:
    """What one backup holds.

    ``revision``: loopwise's schema revision of the rows; ``optuna_revision``: the schema revision of
    Optuna's tables (tuning studies), None when the database had none. ``tables``: in the order they
    load. ``artifacts``: key -> manifest digest. ``host_files``: captured files, path (under ``host/``)
    -> sha256. ``store_url`` and ``store_root`` (a directory store's path, else None): where the
    artifacts lived, so a restore into another store can move the URIs the rows hold. ``missing``: URIs
    the rows named that the store no longer held when it was copied (reported, never restored).
    ``left_out``: tables of the database that are neither loopwise's nor Optuna's."""

    created_at: str
    loopwise_version: str
    dialect: str
    revision: str
    optuna_revision: str | None
    tables: tuple[TableDump, ...]
    artifacts: dict[str, str]
    host_files: dict[str, str]
    store_url: str
    store_root: str | None
    missing: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def write(self, folder: Path) -> None:
        """Write ``backup.json`` into ``folder``: from here on the folder is a backup."""
        document = {
            "format": FORMAT,
            "version": VERSION,
            "created_at": self.created_at,
            "loopwise_version": self.loopwise_version,
            "database": {
                "dialect": self.dialect,
                "revision": self.revision,
                "optuna_revision": self.optuna_revision,
                "tables": [t.to_json() for t in self.tables],
                "left_out": list(self.left_out),
            },
            "store": {
                "url": self.store_url,
                "root": self.store_root,
                "artifacts": self.artifacts,
                "host_files": self.host_files,
                "missing": list(self.missing),
            },
            "sizes": self.sizes,
        }
        with open_private(folder / BUNDLE_FILE, "wb") as handle:
            handle.write(json.dumps(document, indent=1, sort_keys=True).encode())

    @classmethod
    def read(cls, folder: Path) -> Bundle:
        """The backup in ``folder``; :class:`BackupError` when ``backup.json`` is missing, unreadable, of
        another format, or of a later layout than this loopwise reads."""
        path = folder / BUNDLE_FILE
        try:
            document = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise BackupError(
                f"{folder} is not a complete loopwise backup: it has no {BUNDLE_FILE} "
                "(a backup writes it last; one that stopped half-way has none)"
            ) from None
        except (OSError, ValueError) as exc:
            raise BackupError(f"{path} cannot be read: {exc}") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise BackupError(f"{path} is not a loopwise backup's description (no format {FORMAT!r})")
        if not isinstance(document.get("version"), int) or document["version"] > VERSION:
            raise BackupError(
                f"{folder} was written by a newer loopwise (layout {document.get('version')!r}; this "
                f"loopwise reads up to {VERSION}): upgrade loopwise to restore it"
            )
        try:
            return _parse(document)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BackupError(f"{path} is damaged: {exc!r} is missing or malformed") from None


def _parse(document: dict[str, Any]) -> Bundle:
    database, store = document["database"], document["store"]
    return Bundle(
        created_at=str(document["created_at"]),
        loopwise_version=str(document["loopwise_version"]),
        dialect=str(database["dialect"]),
        revision=str(database["revision"]),
        optuna_revision=None if database["optuna_revision"] is None else str(database["optuna_revision"]),
        tables=tuple(TableDump.from_json(t) for t in database["tables"]),
        artifacts={str(k): str(v) for k, v in store["artifacts"].items()},
        host_files={str(k): str(v) for k, v in store["host_files"].items()},
        store_url=str(store["url"]),
        store_root=None if store["root"] is None else str(store["root"]),
        missing=tuple(str(u) for u in store["missing"]),
        left_out=tuple(str(t) for t in database["left_out"]),
        sizes={str(k): int(v) for k, v in document.get("sizes", {}).items()},
    )
