"""Alembic environment: runs against the engine loopwise hands over in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from loopwise.storage.migrate import VERSION_TABLE
from loopwise.storage.tables import Base

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
