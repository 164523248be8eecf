"""Backups of the two halves of a loopwise installation together: the metadata database and the
artifact store, consistent with each other (:mod:`loopwise.backups.create` says why the database goes
first), and their restore into an empty database and store (:mod:`loopwise.backups.restore`).

A backup is a folder (:mod:`loopwise.backups.bundle`): a portable logical dump of every table
(:mod:`loopwise.storage.dump`), so one made on SQLite restores on PostgreSQL and the other way round, the
artifacts with their manifests, and the captured requests.
"""

from __future__ import annotations

from loopwise.backups.bundle import Bundle
from loopwise.backups.create import create_backup
from loopwise.backups.restore import restore_backup, verify_backup

__all__ = ["Bundle", "create_backup", "restore_backup", "verify_backup"]
