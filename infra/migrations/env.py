"""Alembic environment: runs the migrations against the URL set by ``infra.db.alembic_config``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

import infra.cases_db  # noqa: F401 - registers the case tables on Base.metadata
from infra.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Workers and the API started together each migrate: one at a time.
                connection.execute(text("SELECT pg_advisory_xact_lock(7220147)"))
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
