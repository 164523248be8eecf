"""``loopwise db``: the metadata database."""

from __future__ import annotations

import typer

from loopwise.cli._common import console, settings
from loopwise.storage.engine import build_engine
from loopwise.storage.migrate import current_revision, head_revision
from loopwise.storage.migrate import upgrade as upgrade_schema

app = typer.Typer(
    help="Manage the metadata database (SQLite by default, PostgreSQL via LOOPWISE_DATABASE_URL)."
)


@app.command()
def upgrade() -> None:
    """Apply the shipped migrations up to the newest revision (also done automatically on first use).

    A SQLite database with something to migrate is first copied beside itself
    (loopwise.db.bak-REVISION-TIMESTAMP, readable by its owner only); the copy's path is printed.
    """
    engine = build_engine(settings().resolved_database_url)
    try:
        revision = upgrade_schema(
            engine,
            on_backup=lambda path: console.print(
                f"backed up the database before upgrading it: {path}", markup=False, highlight=False
            ),
        )
        console.print(f"database at revision {revision} ({engine.url.render_as_string(hide_password=True)})")
    finally:
        engine.dispose()


@app.command()
def current() -> None:
    """Show the database URL, its schema revision and the newest revision this loopwise knows."""
    engine = build_engine(settings().resolved_database_url)
    try:
        console.print(f"url:      {engine.url.render_as_string(hide_password=True)}")
        console.print(f"revision: {current_revision(engine) or 'none (empty database)'}")
        console.print(f"head:     {head_revision()}")
    finally:
        engine.dispose()
