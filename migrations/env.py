"""Alembic environment: the URL comes from the caller's config or from Settings."""

from __future__ import annotations

from alembic import context

from optimlab.service.db.connection import make_engine
from optimlab.service.db.models import Base
from optimlab.service.settings import get_settings

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    db = make_engine(_url())
    with db.connect() as connection:
        # SQLite alters tables by copying them ("batch" mode); harmless on PostgreSQL.
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    db.dispose()


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().database


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
