"""The metadata store (SQLAlchemy 2, Alembic) and the artifact store.

``Store.open(settings)`` builds the engine, applies migrations on first use (copying a SQLite file at an
older revision beside itself first, see :func:`loopwise.storage.migrate.upgrade`), and hands out units of
work.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from loopwise._private import private_dir
from loopwise.config import Settings
from loopwise.storage.artifacts import ArtifactStore, LocalArtifactStore, open_artifacts
from loopwise.storage.engine import build_engine
from loopwise.storage.migrate import ensure_schema
from loopwise.storage.session import UnitOfWork, session_factory


@dataclass
class Store:
    engine: Engine
    sessions: sessionmaker[Session]
    artifacts: ArtifactStore
    settings: Settings

    @classmethod
    def open(cls, settings: Settings, *, migrate: bool = True) -> Store:
        """The store ``settings`` describe. Its home is a 0700 directory and what loopwise keeps in it (the
        SQLite database, the artifacts) only its owner may read: see :mod:`loopwise._private`."""
        private_dir(settings.home)
        artifacts = open_artifacts(settings)  # first: a bad LOOPWISE_ARTIFACTS stops before the database
        engine = build_engine(settings.resolved_database_url)
        if migrate:
            ensure_schema(engine)
        return cls(engine, session_factory(engine), artifacts, settings)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.sessions)

    def close(self) -> None:
        self.engine.dispose()


__all__ = ["ArtifactStore", "LocalArtifactStore", "Store", "UnitOfWork"]
