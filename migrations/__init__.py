"""Alembic migrations: the only way the schema is created or changed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from optimlab.service.db.connection import make_engine

LOCATION = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Upgraded:
    """What an upgrade did: the revision before (None: an empty database), the one after,
    and the revisions it applied, oldest first."""

    before: str | None
    after: str | None
    applied: list[str]

    def describe(self) -> str:
        if not self.applied:
            return f"database already at head (revision {self.after}): nothing to apply"
        start = "an empty database" if self.before is None else f"revision {self.before}"
        count = len(self.applied)
        return (f"database upgraded from {start} to revision {self.after}: applied "
                f"{count} migration{'s' if count > 1 else ''} ({', '.join(self.applied)})")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(LOCATION))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def current_revision(database_url: str) -> str | None:
    """The revision the database is at; None for a database never migrated."""
    db = make_engine(database_url)
    try:
        with db.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        db.dispose()


def upgrade(database_url: str, revision: str = "head") -> Upgraded:
    """``alembic upgrade``, and what it did."""
    before = current_revision(database_url)
    command.upgrade(alembic_config(database_url), revision)
    after = current_revision(database_url)
    script = ScriptDirectory.from_config(alembic_config(database_url))
    applied = [] if after == before else [
        r.revision for r in reversed(list(script.iterate_revisions(after, before)))]
    return Upgraded(before, after, applied)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)
